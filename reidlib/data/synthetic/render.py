"""Turn sampled parameters into pixels, a whole batch at once, in torch.

Why by hand: no library renders re-id crops. The renderer paints soft-edged boxes and
ellipses (one-pixel ramps, so small images are anti-aliased) in painter's order, then
applies the camera: light and colour cast, resolution loss, blur and sensor noise. It
runs on any torch device, so the ``full`` profile renders on a GPU when one is present.
All randomness comes from the parameters and one seeded ``torch.Generator`` per batch,
so the same seed gives byte-identical images on the same device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.data.synthetic.spec import HAIR_COLOURS, SKIN_TONES
from reidlib.utils import progress_enabled

Tensor = torch.Tensor


def _col(x: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1) for broadcasting against the (1, H, W) pixel grid."""
    return x.reshape(-1, 1, 1)


def _box(X: Tensor, Y: Tensor, xc, yc, hx, hy, px: float) -> Tensor:
    """Soft mask of an axis-aligned box (centre, half sizes) in image units."""
    d = torch.maximum((X - xc).abs() - hx, (Y - yc).abs() - hy)
    return (0.5 - d * px).clamp(0, 1)


def _ellipse(X: Tensor, Y: Tensor, xc, yc, rx, ry, px: float) -> Tensor:
    r = torch.sqrt(((X - xc) / rx) ** 2 + ((Y - yc) / ry) ** 2)
    d = (r - 1) * torch.minimum(rx, ry)
    return (0.5 - d * px).clamp(0, 1)


def _paint(canvas: Tensor, mask: Tensor, colour: Tensor) -> Tensor:
    """Alpha-blend ``colour`` ((B,3) or (B,3,H,W)) over ``canvas`` where ``mask`` (B,H,W)."""
    if colour.dim() == 2:
        colour = colour[:, :, None, None]
    m = mask[:, None]
    return canvas * (1 - m) + colour * m


def _blur(img: Tensor, sigma: Tensor) -> Tensor:
    """Separable 5-tap Gaussian blur with a per-image sigma (shifted sums: deterministic)."""
    taps = torch.arange(-2, 3, device=img.device, dtype=img.dtype)
    w = torch.exp(-0.5 * (taps[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    w = (w / w.sum(1, keepdim=True))[:, :, None, None, None]  # (B,5,1,1,1)
    for dim in (2, 3):
        pad = [0, 0, 2, 2] if dim == 2 else [2, 2, 0, 0]
        padded = F.pad(img, pad, mode="replicate")
        size = img.shape[dim]
        img = sum(w[:, i] * padded.narrow(dim, i, size) for i in range(5))
    return img


def _lowres(img: Tensor, factor: Tensor) -> Tensor:
    """Lose resolution like a distant or cheap camera: down-sample, then back up."""
    out = img.clone()
    h, w = img.shape[-2:]
    for f in factor.unique().tolist():
        if f <= 1:
            continue
        sel = factor == f
        small = F.interpolate(
            img[sel], size=(max(4, round(h / f)), max(2, round(w / f))), mode="area"
        )
        out[sel] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return out


def _background(p: dict[str, Tensor], X: Tensor, Y: Tensor, px: float) -> Tensor:
    """Camera scene: a wall with vertical structure, a floor below the horizon, clutter."""
    b = X.new_zeros(len(p["scene"]), 3, *X.shape[-2:])
    wall = (p["scene"] * p["scene_jitter"])[:, :, None, None]
    stripes = torch.sin(2 * np.pi * (_col(p["wall_freq"]) * (X + 0.5) + _col(p["scene_shift"])))
    wall = wall * (1 + 0.15 * (stripes > 0.3).float()[:, None])
    floor_mask = ((Y - _col(p["horizon"])) * px + 0.5).clamp(0, 1)
    b = _paint(wall.expand_as(b), floor_mask, p["floor"] * p["scene_jitter"].sqrt())
    clutter = _ellipse(
        X,
        Y,
        _col(p["clutter_x"]),
        _col(p["horizon"]) - 0.05,
        X.new_tensor(0.09).expand(len(b)).reshape(-1, 1, 1),
        X.new_tensor(0.2).expand(len(b)).reshape(-1, 1, 1),
        px,
    )
    return _paint(b, clutter * 0.8, p["clutter_rgb"])


def _upper_texture(p: dict[str, Tensor], X: Tensor, Y: Tensor) -> Tensor:
    """Garment pattern in the person's own frame, so it moves with the body (B,3,H,W)."""
    pat = p["upper_pattern"].long()
    u = (X - _col(p["cx"])) / _col(p["h"])
    v = (Y - _col(p["top"])) / _col(p["h"])
    f = _col(p["stripe_freq"])
    hs = (torch.sin(2 * np.pi * f * v * 2.2) > 0).float()
    vs = (torch.sin(2 * np.pi * f * u * 2.2) > 0).float()
    second = torch.zeros_like(X.expand(len(pat), -1, -1))
    second = torch.where(_col(pat == 1), hs, second)
    second = torch.where(_col(pat == 2), vs, second)
    second = torch.where(_col(pat == 3), (hs + vs) % 2, second)
    second = torch.where(_col(pat == 4), (v > 0.34).float(), second)
    logo = ((u.abs() < 0.035) & ((v - 0.27).abs() < 0.04)).float() * _col(p["view"] == 0)
    second = torch.where(_col(pat == 5), logo, second)
    s = second[:, None]
    return p["rgb_upper"][:, :, None, None] * (1 - s) + p["rgb_upper2"][:, :, None, None] * s


def _person(canvas: Tensor, p: dict[str, Tensor], X: Tensor, Y: Tensor, px: float) -> Tensor:
    """Paint one person per image in painter's order (back to front)."""
    h, top, cx = _col(p["h"]), _col(p["top"]), _col(p["cx"])
    bw = _col(p["body_width"]) * 1.3  # a detector box is mostly person
    front, back, side = (_col(p["view"] == k).float() for k in range(3))
    facing = _col(p["direction"])
    torso_hw = 0.12 * bw * (1 - 0.35 * side)

    def at(x, y):  # person units (0 = head top, 1 = feet) -> image units
        return cx + x * h, top + y * h

    def box(x, y, hx, hy):
        xc, yc = at(x, y)
        return _box(X, Y, xc, yc, hx * h, hy * h, px)

    skin = p["rgb_skin"]
    swing = torch.sin(_col(p["phase"]))
    # legs: in side view they swing apart along the walking direction
    leg_dx = 0.05 * bw * (1 - side) + 0.07 * swing * side * facing
    coat_len = 0.18 * _col(p["coat"]).float()
    lower_t = p["lower_type"].long()
    legs_top = 0.52
    for s in (-1, 1):
        x = s * leg_dx
        leg = box(x, 0.74, 0.045 * bw, 0.22)
        trousers = (lower_t == 0).float()[:, None]
        lower_top = 0.52
        lower_bottom = torch.where(_col(lower_t == 0), 0.96, 0.68)
        cloth = (
            _box(X, Y, *at(x, 0), 0.047 * bw * h, h, px)
            * ((Y >= top + lower_top * h) & (Y <= top + lower_bottom * h)).float()
        )
        canvas = _paint(canvas, leg, skin)
        canvas = _paint(canvas, cloth * leg.gt(0).float(), p["rgb_lower"] * (0.9 + 0.1 * trousers))
        canvas = _paint(
            canvas, box(x + 0.01 * facing * side, 0.975, 0.05 * bw, 0.025), p["rgb_shoes"]
        )
    skirt = box(0, 0.6, 0.14 * bw, 0.09) * _col(lower_t == 2).float()
    canvas = _paint(canvas, skirt, p["rgb_lower"])
    del legs_top

    # bag carried behind the body in side view, and long hair seen from the front
    bag = p["bag"].long()
    backpack_side = (
        box(-facing * (torso_hw / h + 0.05) / 1, 0.32, 0.05, 0.12) * side * _col(bag == 1).float()
    )
    canvas = _paint(canvas, backpack_side, p["rgb_bag"])
    long_hair = box(0, 0.16, 0.065 * bw, 0.08) * _col(p["hair_long"] == 1).float()
    canvas = _paint(canvas, long_hair * front, p["rgb_hair"])

    # arms (sleeves), torso with its pattern, coat
    for s in (-1, 1):
        ax = s * (torso_hw / h + 0.028) * (1 - side) + 0.05 * swing * s * side
        arm = box(ax, 0.32, 0.026, 0.16)
        sleeve_bottom = torch.where(_col(p["long_sleeve"] == 1), 0.49, 0.25)
        cloth = arm * (Y <= top + sleeve_bottom * h).float()
        canvas = _paint(canvas, arm, skin)
        canvas = _paint(canvas, cloth, p["rgb_upper"])
    torso = box(0, 0.33 + coat_len / 2, torso_hw / h, 0.19 + coat_len / 2)
    canvas = _paint(canvas, torso, _upper_texture(p, X, Y))

    # a scarf: a band at the neck, its loose end hanging in front
    scarf = _col(p["scarf"] == 1).float()
    canvas = _paint(canvas, box(0, 0.155, 0.075 * bw, 0.022) * scarf, p["rgb_scarf"])
    canvas = _paint(canvas, box(0.04 * bw, 0.22, 0.018, 0.06) * scarf * front, p["rgb_scarf"])

    # bags over the torso: a backpack from behind, its straps from the front, a handbag at the hip
    canvas = _paint(
        canvas, box(0, 0.3, 0.085 * bw, 0.13) * back * _col(bag == 1).float(), p["rgb_bag"]
    )
    for s in (-1, 1):
        strap = box(s * 0.06 * bw, 0.26, 0.012, 0.1) * front * _col(bag == 1).float()
        canvas = _paint(canvas, strap, p["rgb_bag"])
    hb_side = _col(p["bag_side"]) * torch.where(back > 0, -1.0, 1.0)
    handbag = box(hb_side * (torso_hw / h + 0.045), 0.5, 0.045, 0.055) * _col(bag == 2).float()
    canvas = _paint(canvas, handbag, p["rgb_bag"])

    # head, hair, hat
    hx, hy = at(0, 0.075)
    head = _ellipse(X, Y, hx, hy, 0.055 * h * bw.sqrt(), 0.07 * h, px)
    canvas = _paint(canvas, head, skin)
    hair_cap = head * (Y < hy - 0.02 * h).float()
    hair = torch.where(back > 0, head, hair_cap)
    canvas = _paint(canvas, hair, p["rgb_hair"])
    canvas = _paint(canvas, long_hair * back, p["rgb_hair"])
    hat = box(0, 0.025, 0.062 * bw, 0.03) * _col(p["hat"] == 1).float()
    return _paint(canvas, hat, p["rgb_hat"])


def _occluder(canvas: Tensor, p: dict[str, Tensor], X: Tensor, Y: Tensor, px: float) -> Tensor:
    """Something between camera and person: a low wall/car, a pole, or a passer-by."""
    kind, pos = p["occluder"].long(), _col(p["occ_pos"])
    n = len(kind)
    ones = X.new_ones(n).reshape(-1, 1, 1)
    low = _box(X, Y, 0 * ones, 1.0 * ones, ones, (0.15 + 0.25 * pos), px) * _col(kind == 1)
    pole = _box(X, Y, (pos - 0.5) * 0.4, 0.5 * ones, 0.03 * ones, ones, px) * _col(kind == 2)
    side = torch.where(pos > 0.5, 1.0, -1.0)
    passer = _ellipse(X, Y, side * 0.26, 0.55 * ones, 0.09 * ones, 0.5 * ones, px) * _col(kind == 3)
    return _paint(canvas, (low + pole + passer).clamp(0, 1), p["occ_rgb"])


def render_batch(
    p: dict[str, Tensor], height: int, width: int, generator: torch.Generator
) -> Tensor:
    """Render a batch described by per-image parameter tensors -> (B, H, W, 3) uint8."""
    dev = p["scene"].device
    ys = (torch.arange(height, device=dev, dtype=torch.float32) + 0.5) / height
    xs = (
        ((torch.arange(width, device=dev, dtype=torch.float32) + 0.5) / width - 0.5)
        * width
        / height
    )
    Y, X = ys[None, :, None].expand(1, height, width), xs[None, None, :].expand(1, height, width)
    px = float(height)  # pixels per image unit (the image is one unit high)

    img = _background(p, X, Y, px)
    person = _person(img, p, X, Y, px)
    img = torch.where(_col(p["no_person"] == 1)[:, None], img, person)
    img = _occluder(img, p, X, Y, px)

    light = p["gain"] * _col(p["brightness"]).reshape(-1, 1) * p["light_jitter"]
    shade = 1 + 0.25 * (0.5 - Y)  # light from above
    img = img * light[:, :, None, None] * shade[:, None]
    img = _lowres(img, p["lowres"])
    img = _blur(img, p["blur"] * height / 64 + 0.05)
    noise = torch.randn(img.shape, generator=generator, device=dev, dtype=img.dtype)
    img = img + noise * p["noise"].reshape(-1, 1, 1, 1)
    img = img.clamp(0, 1) ** p["gamma"].reshape(-1, 1, 1, 1)
    return (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def image_parameters(
    people: dict[str, np.ndarray],
    cameras: dict[str, np.ndarray],
    walks: dict[str, np.ndarray],
    nuisances: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Gather one flat table of per-image numbers from people, cameras and walks."""
    person, cam = walks["person"], walks["camid"]
    out = {k: v[person] for k, v in people.items()}
    out.update({k: v[cam] for k, v in cameras.items() if k not in ("position", "views")})
    out.update(nuisances)
    out["rgb_skin"] = np.asarray(SKIN_TONES)[out["skin"]]
    out["rgb_hair"] = np.asarray(HAIR_COLOURS)[out["hair_colour"]]
    out["h"] = out["scale"] * out["body_height"]
    out["top"] = 0.5 - out["h"] / 2 + out["dy"]
    out["cx"] = out["dx"]
    return out


def render_images(
    params: dict[str, np.ndarray],
    height: int,
    width: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
    progress: bool = True,
) -> np.ndarray:
    """Render every image in ``params`` -> (N, H, W, 3) uint8 numpy array."""
    from tqdm.auto import tqdm

    n = len(params["scene"])
    out = np.empty((n, height, width, 3), np.uint8)
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=f"render {height}x{width}",
                      disable=not progress_enabled(progress), leave=False):
        sl = slice(start, start + batch_size)
        batch = {
            k: torch.as_tensor(v[sl], dtype=torch.float32, device=device) for k, v in params.items()
        }
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)
        out[sl] = render_batch(batch, height, width, gen).cpu().numpy()
    return out
