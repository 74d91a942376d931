"""Text-to-image retrieval (reidlib.directions.text, chapter 6, survey §5): the bag of words
by hand, CLIP's loss against a plain loop, text mAP against a brute-force AP, chance AP by
enumerating every ranking, and a short training on the smoke world that must beat the
untrained encoder."""

import itertools
import math

import numpy as np
import pytest
import torch

from reidlib.data.synthetic import load_world
from reidlib.directions.text import (
    TextEncoder,
    Vocabulary,
    ambiguous_share,
    chance_ap,
    clip_loss,
    describe,
    evaluate_text_queries,
    fit_text_encoder,
    identity_texts,
    text_queries,
    text_to_image_map,
)
from reidlib.models import build_model
from reidlib.training.features import extract_features

# --- describe and the vocabulary ------------------------------------------------------------


def test_describe_fixed_order():
    words = {"top": "slate blue checks, long sleeves", "lower": "navy trousers",
             "bag": "none", "hair": "short", "also": "hat, scarf"}
    assert describe(words) == ("slate blue checks top, long sleeves, navy trousers, no bag, "
                               "short hair, hat, scarf")
    plain = {**words, "bag": "backpack", "also": "-"}
    assert describe(plain).endswith("navy trousers, backpack, short hair")
    with pytest.raises(ValueError, match="missing"):
        describe({"top": "red solid, short sleeves"})


def test_tokenize_binds_modifiers_to_their_head():
    vocab = Vocabulary()
    assert vocab.tokenize("Red hstripes top, wearing long hair") == [
        "red", "hstripes", "top", "red top", "hstripes top", "long", "hair", "long hair"]
    # a multi-word colour is one token, not "slate" + "blue"
    assert vocab.tokenize("slate blue trousers") == ["slate blue", "trousers",
                                                    "slate blue trousers"]
    # colours swapped between garments: same words, different pairs
    a, b = vocab.tokenize("red top, blue trousers"), vocab.tokenize("blue top, red trousers")
    assert sorted(t for t in a if " " not in t) == sorted(t for t in b if " " not in t)
    assert "red top" in a and "red top" not in b


def test_encode_counts_tokens_by_hand():
    vocab = Vocabulary(colours=["red", "blue"])
    bow = vocab.encode(["red top, red trousers, backpack", "blue skirt, no bag"])
    assert bow.shape == (2, len(vocab)) and bow.dtype == torch.float32
    expected = np.zeros((2, len(vocab)), np.float32)
    for token, count in {"red": 2, "top": 1, "red top": 1, "trousers": 1, "red trousers": 1,
                         "backpack": 1}.items():
        expected[0, vocab.tokens.index(token)] = count
    for token in ("blue", "skirt", "blue skirt", "no", "bag", "no bag"):
        expected[1, vocab.tokens.index(token)] = 1
    np.testing.assert_array_equal(bow.numpy(), expected)


def test_unknown_words_are_an_error():
    vocab = Vocabulary()
    with pytest.raises(ValueError, match=r"unknown words \['jacket', 'trosers'\]"):
        vocab.tokenize("red jacket, blue trosers")
    with pytest.raises(ValueError, match="sequence of str"):
        vocab.encode("red top")


# --- the encoder and CLIP's loss ------------------------------------------------------------


def test_encoder_output_and_shape_errors():
    vocab = Vocabulary()
    torch.manual_seed(0)
    encoder = TextEncoder(vocab, dim=8)
    out = encoder.embed(["red top", "blue skirt, hat"])
    assert out.shape == (2, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match=r"\(N, V=\d+\) bag of words"):
        encoder(torch.zeros(2, len(vocab) + 1))


def test_clip_loss_equals_a_plain_loop():
    gen = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=1)
    image = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=1)
    t = 0.07
    total = 0.0
    for i in range(5):
        sims_t = [math.exp(float(text[i] @ image[j]) / t) for j in range(5)]
        sims_i = [math.exp(float(image[i] @ text[j]) / t) for j in range(5)]
        total += -math.log(sims_t[i] / sum(sims_t)) - math.log(sims_i[i] / sum(sims_i))
    assert clip_loss(text, image, t).item() == pytest.approx(total / 10, rel=1e-5)


# --- text-to-image mAP ----------------------------------------------------------------------


def brute_force_ap(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one query from a full sort by decreasing score (no ties in the tests' data)."""
    order = np.argsort(-scores, kind="stable")
    hits, total = 0, 0.0
    for rank, item in enumerate(order, start=1):
        if relevant[item]:
            hits += 1
            total += hits / rank
    return total / relevant.sum()


def test_text_map_hand_case():
    # 1-D features: the score is the product, so the ranking is easy to write down.
    text = torch.tensor([[1.0], [-1.0]])
    gallery = torch.tensor([[0.9], [0.5], [0.1], [-0.2], [-0.8]])
    gallery_pids = np.array([1, 0, 1, -1, 2])
    # text 1 ranks 0.9 (hit), 0.5 (distractor), 0.1 (hit): AP = (1 + 2/3) / 2
    # text 2 ranks -0.8 first (hit): AP = 1; a distractor / junk image is never relevant
    result = text_to_image_map(text, np.array([1, 2]), gallery, gallery_pids)
    assert result["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert result["rank1"] == 1.0 and result["n_queries"] == 2
    assert result["chance_rank1"] == pytest.approx((2 / 5 + 1 / 5) / 2)


def test_text_map_random_case_against_brute_force():
    rng = np.random.default_rng(3)
    text = torch.from_numpy(rng.normal(size=(7, 6))).float()
    gallery = torch.from_numpy(rng.normal(size=(40, 6))).float()
    gallery_pids = rng.integers(-1, 6, size=40)
    text_pids = np.array([1, 2, 3, 4, 5, 5, 9])  # pid 9 has no image: skipped
    scores = (text @ gallery.T).numpy()
    aps, firsts = [], []
    for i, pid in enumerate(text_pids):
        relevant = gallery_pids == pid
        if relevant.any():
            aps.append(brute_force_ap(scores[i], relevant))
            firsts.append(relevant[np.argmax(scores[i])])
    result = text_to_image_map(text, text_pids, gallery, gallery_pids)
    assert result["n_queries"] == len(aps) == 6
    assert result["mAP"] == pytest.approx(np.mean(aps), abs=1e-12)
    assert result["rank1"] == pytest.approx(np.mean(firsts))


def test_chance_ap_enumerates_every_ranking():
    for n_items, n_rel in ((1, 1), (2, 1), (4, 2), (5, 3), (6, 1)):
        relevant = np.zeros(n_items, bool)
        relevant[:n_rel] = True
        aps = [brute_force_ap(-np.asarray(order, float), relevant)
               for order in itertools.permutations(range(n_items))]
        assert chance_ap(np.array([n_rel]), n_items)[0] == pytest.approx(np.mean(aps))


def test_text_map_shape_errors():
    text, gallery = torch.zeros(2, 4), torch.zeros(3, 4)
    with pytest.raises(ValueError, match="D=4 columns"):
        text_to_image_map(text, [1, 2], torch.zeros(3, 5), [1, 2, 0])
    with pytest.raises(ValueError, match=r"text_pids must be \(2,\)"):
        text_to_image_map(text, [1, 2, 3], gallery, [1, 2, 0])
    with pytest.raises(ValueError, match="real identities"):
        text_to_image_map(text, [1, 0], gallery, [1, 2, 0])
    with pytest.raises(ValueError, match="no text query"):
        text_to_image_map(text, [7, 8], gallery, [1, 2, 0])


def test_ambiguous_share():
    assert ambiguous_share(["a", "b", "a", "c"]) == 0.5
    assert ambiguous_share(["a", "b"]) == 0.0


# --- training on the smoke world -------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke():
    world = load_world("A", "smoke")
    model = build_model("small", weights="synthetic").eval()
    train = world.train.subset(world.train.pids > 0)
    return {"world": world, "train": train,
            "train_features": extract_features(model, train, flip=False, progress=False),
            "gallery_features": extract_features(model, world.gallery, flip=False,
                                                 progress=False)}


def test_text_queries_cover_the_query_identities(smoke):
    world = smoke["world"]
    texts, pids = text_queries(world)
    query_ids = np.unique(world.query.pids[world.query.pids > 0])
    np.testing.assert_array_equal(pids, query_ids)
    assert texts[0] == describe(world.describe_people(pids[:1])[0])
    assert not set(pids) & set(identity_texts(world, world.train.pids))  # test ids are new


def test_training_beats_the_untrained_encoder(smoke):
    world, train = smoke["world"], smoke["train"]
    dim = smoke["train_features"].shape[1]
    torch.manual_seed(0)
    untrained = TextEncoder(Vocabulary(), dim).eval()
    before = evaluate_text_queries(untrained, world, smoke["gallery_features"])
    torch.manual_seed(0)
    encoder = TextEncoder(Vocabulary(), dim)
    history = fit_text_encoder(encoder, identity_texts(world, train.pids),
                               smoke["train_features"], train.pids, epochs=30, seed=0,
                               progress=False)
    after = evaluate_text_queries(encoder, world, smoke["gallery_features"])
    assert history[-1] < history[0]
    assert after["mAP"] > max(2 * before["mAP"], 4 * after["chance_mAP"])
    assert after["n_queries"] == len(np.unique(world.query.pids[world.query.pids > 0]))


def test_fit_checks_its_inputs(smoke):
    train = smoke["train"]
    features = smoke["train_features"]
    encoder = TextEncoder(Vocabulary(), features.shape[1])
    texts = identity_texts(smoke["world"], train.pids)
    with pytest.raises(ValueError, match="no description for pids"):
        fit_text_encoder(encoder, {}, features, train.pids, epochs=1, progress=False)
    with pytest.raises(ValueError, match=f"D={features.shape[1]} columns"):
        fit_text_encoder(encoder, texts, features[:, :8], train.pids, epochs=1, progress=False)
    with pytest.raises(ValueError, match="one per feature row"):
        fit_text_encoder(encoder, texts, features, train.pids[:-1], epochs=1, progress=False)
