"""Image rows (chapter 0's figures): only real images are laid out, never filler tiles."""

import numpy as np
import pytest

from reidlib.viz.grids import MATCH_COLOR, WRONG_COLOR, image_grid, image_rows


def solid_images(n, h=16, w=8):
    """n images, each one flat colour whose red channel is its row: panels can be identified."""
    images = np.zeros((n, h, w, 3), np.uint8)
    images[..., 0] = np.arange(n)[:, None, None]
    images[..., 1] = 200
    return images


def shown(ax):
    """The image row an axes shows (the red channel of its flat picture)."""
    return int(np.asarray(ax.images[0].get_array())[0, 0, 0])


def test_rows_of_different_lengths_get_exactly_one_panel_per_image():
    rows = [[4, 1, 7], [2], [0, 5]]
    fig = image_rows(solid_images(8), rows, titles=[["a", "b", "c"], ["d"], ["e", "f"]],
                     row_labels=["id 1", "id 2", "id 3"])
    assert len(fig.axes) == 6  # no padding panel, hidden or black
    assert all(ax.axison and len(ax.images) == 1 for ax in fig.axes)
    assert [shown(ax) for ax in fig.axes] == [4, 1, 7, 2, 0, 5]
    assert [ax.get_title() for ax in fig.axes] == list("abcdef")
    # no panel is a filler: every drawn picture is one of the given images
    assert all(np.asarray(ax.images[0].get_array())[..., 1].min() == 200 for ax in fig.axes)
    # rows are laid out left-aligned on one grid: each row starts in the first column
    x0 = [ax.get_position().x0 for ax in fig.axes]
    assert x0[0] == pytest.approx(x0[3]) == pytest.approx(x0[4])
    assert x0[0] < x0[1] < x0[2]
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels == ["id 1", "id 2", "id 3"]


def test_row_label_room_keeps_panels_inside_the_figure():
    fig = image_rows(solid_images(3), [[0, 1, 2]], row_labels=["a long row label"])
    assert all(0 <= ax.get_position().x0 and ax.get_position().x1 <= 1 for ax in fig.axes)
    left = fig.axes[0].get_position().x0 * fig.get_figwidth()
    assert left > 0.25  # inches left free for the label


def test_border_colours_follow_the_rows():
    fig = image_rows(solid_images(3), [[0, 1, 2]],
                     border_colors=[[None, WRONG_COLOR, MATCH_COLOR]])
    visible = [ax.spines["top"].get_visible() for ax in fig.axes]
    assert visible == [False, True, True]


def test_image_rows_rejects_bad_input():
    images = solid_images(3)
    with pytest.raises(ValueError, match="at least one image"):
        image_rows(images, [[0], []])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        image_rows(images, [[0, 3]])
    with pytest.raises(ValueError, match="shaped like rows"):
        image_rows(images, [[0, 1]], titles=[["a"]])
    with pytest.raises(ValueError, match="row_labels"):
        image_rows(images, [[0, 1]], row_labels=["a", "b"])
    with pytest.raises(TypeError, match="pixel array"):
        from reidlib.data.imageset import ImageSet

        image_rows(ImageSet(images, np.arange(3), np.zeros(3)), [[0]])


def test_image_grid_draws_no_black_tile_for_a_short_last_row():
    fig = image_grid(solid_images(5), ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert [shown(ax) for ax in drawn] == [0, 1, 2, 3, 4]
    assert all(not ax.axison for ax in fig.axes if not ax.images)
