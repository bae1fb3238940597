"""Anime-style augmentation of labelled portraits: teach a face parser what anime eyes, noses and hair look like.

No labelled anime set ships (see DESIGN.md), and a parser trained on photos misreads anime faces: the large eyes come
out as skin or brows, the face as hair.  This turns a (photo, mask) pair into a (drawing-like photo, mask) pair with
the labels still exact, because image and mask go through the same warp:

* **geometry** — each eye is magnified (more vertically than horizontally, as drawn eyes are taller than real ones),
  the nose and mouth are shrunk;
* **appearance** — edge-preserving smoothing and colour posterisation (flat shading), pale skin, a random hair hue,
  drawn irises (a saturated colour, a dark upper lash line, a white highlight), a flat (often white) backdrop and dark
  outlines along region borders.

An addition to the paper (which trains its anime parser on Danbooru-Parsing); used by ``data.anime_style`` of the parser
trainer to build the teacher that pseudo-labels the shipped anime faces.  Input and output are (S, S, 3) uint8 RGB and
(S, S) uint8 label ids in ``label_set`` order, with 255 = ignore kept.
"""
from __future__ import annotations

import numpy as np

from .. import labels as L

__all__ = ["animeize_pair", "bulge_map"]


def bulge_map(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float],
              strength: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse sampling maps (map_x, map_y), float32 (H, W), of a smooth local zoom for :func:`cv2.remap`.

    Inside the ellipse ``radii`` = (rx, ry) around ``centre`` = (cx, cy) an output pixel at offset d samples the input
    at ``d · (1 − s·(1 − u²)²)`` (u = elliptic radius in [0, 1), s per axis): the zoom is about 1 / (1 − s) over the
    inner part, so s > 0 magnifies, s < 0 shrinks, and the map is the identity on and outside the ellipse's border
    (continuous).  Monotonic, hence one-to-one, for s in [-1, 0.9].
    """
    h, w = shape
    cx, cy = centre
    rx, ry = max(radii[0], 1e-3), max(radii[1], 1e-3)
    sx, sy = strength
    if not (-1.0 <= sx <= 0.9 and -1.0 <= sy <= 0.9):
        raise ValueError(f"bulge strength must be in [-1, 0.9], got {strength}")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    fall = np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0).astype(np.float32)
    return (cx + dx * (1.0 - sx * fall)).astype(np.float32), (cy + dy * (1.0 - sy * fall)).astype(np.float32)


def _warp(img: np.ndarray, mask: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    mx, my = maps
    img = cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.remap(mask, mx, my, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=L.IGNORE_INDEX)
    return img, mask


def _region(mask: np.ndarray, ids: list[int]) -> np.ndarray:
    return np.isin(mask, ids)


def _geometry(img: np.ndarray, mask: np.ndarray, label_set: str,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Magnify the eyes, shrink the nose and mouth (one warp each, applied in turn)."""
    names = L.class_names(label_set)
    size = img.shape[0]
    eyes = [n for n in ("l_eye", "r_eye") if n in names]
    zoom_x, zoom_y = rng.uniform(1.5, 2.3), rng.uniform(2.4, 4.0)  # the same for both eyes of a face
    for name in eyes:
        ys, xs = np.nonzero(mask == names.index(name))
        if len(xs) < 4:
            continue
        cx, cy = float(xs.mean()), float(ys.mean())
        half_w = max(0.5 * float(xs.max() - xs.min() + 1), 0.02 * size)
        radii = (half_w * rng.uniform(1.8, 2.2), half_w * rng.uniform(2.0, 2.6))
        strength = (min(0.9, 1.0 - 1.0 / zoom_x), min(0.9, 1.0 - 1.0 / zoom_y))
        img, mask = _warp(img, mask, bulge_map(mask.shape, (cx, cy), radii, strength))
    shrink = [n for n in ("nose",) if n in names], [n for n in ("mouth", "u_lip", "l_lip") if n in names]
    for group, (lo, hi) in zip(shrink, ((0.5, 0.85), (0.2, 0.6))):
        ids = [names.index(n) for n in group]
        ys, xs = np.nonzero(_region(mask, ids))
        if len(xs) < 4:
            continue
        cx, cy = float(xs.mean()), float(ys.mean())
        r = 0.6 * max(float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)) + 0.02 * size
        s = -rng.uniform(lo, hi)
        img, mask = _warp(img, mask, bulge_map(mask.shape, (cx, cy), (r * 1.3, r * 1.3), (s, s)))
    # drawn faces are cropped tighter than aligned photos: zoom in about the face
    ys, xs = np.nonzero(_region(mask, [names.index("skin")]))
    if len(xs) >= 4:
        import cv2

        z = rng.uniform(1.0, 1.4)
        cx, cy = float(xs.mean()), float(ys.mean()) - 0.05 * size
        m = np.array([[z, 0, size / 2 - z * cx], [0, z, size / 2 - z * cy]], dtype=np.float64)
        img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=L.IGNORE_INDEX)
    return img, mask


def _hsv_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    """A random RGB colour (3,) float in [0, 255] with saturation and value in the given ranges."""
    import cv2

    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _appearance(img: np.ndarray, mask: np.ndarray, label_set: str, rng: np.random.Generator) -> np.ndarray:
    """Flat shading, pale skin, random hair colour, drawn irises and outlines; the mask is unchanged."""
    import cv2

    names = L.class_names(label_set)
    ids = lambda *ns: [names.index(n) for n in ns if n in names]  # noqa: E731
    out = img
    for _ in range(int(rng.integers(1, 3))):
        out = cv2.bilateralFilter(out, 7, float(rng.uniform(40, 90)), 7)
    f = out.astype(np.float32)
    # hair: keep the shading (luminance), give it a random colour, often a saturated one
    hair = _region(mask, ids("hair"))
    if hair.any():
        colour = _hsv_colour(rng, (0.2, 0.9), (0.5, 1.0))
        lum = f[hair].mean(axis=1, keepdims=True)
        shade = np.clip(lum / max(float(lum.mean()), 1.0), 0.4, 1.6)
        mix = rng.uniform(0.6, 1.0)
        f[hair] = (1 - mix) * f[hair] + mix * np.clip(colour[None] * shade, 0, 255)
    # skin: pale and even, as drawn skin is
    skin = _region(mask, ids("skin", "nose", "l_ear", "r_ear", "neck"))
    if skin.any():
        tone = np.array([255.0, rng.uniform(215, 240), rng.uniform(195, 225)], dtype=np.float32)
        mix = rng.uniform(0.3, 0.8)
        f[skin] = (1 - mix) * f[skin] + mix * tone[None]
    # eyes: a saturated iris with a vertical gradient, a dark lash line on top and a white highlight
    colour = _hsv_colour(rng, (0.5, 1.0), (0.4, 0.9))  # one iris colour for both eyes
    for name in ("l_eye", "r_eye"):
        if name not in names:
            continue
        eye = mask == names.index(name)
        ys, xs = np.nonzero(eye)
        if len(xs) < 4:
            continue
        y0, y1 = ys.min(), ys.max() + 1
        t = (np.arange(y0, y1, dtype=np.float32) - y0) / max(1, y1 - y0 - 1)
        grad = (0.35 + 0.9 * t)[:, None] * colour[None]  # dark at the top, light at the bottom
        sub = eye[y0:y1]
        rows = np.repeat(grad[:, None, :], img.shape[1], axis=1)
        f[y0:y1][sub] = np.clip(rows[sub], 0, 255)
        lash = max(1, int(round(0.18 * (y1 - y0))))
        top = np.zeros_like(eye)
        top[y0:y0 + lash] = eye[y0:y0 + lash]
        f[top] = rng.uniform(10, 50)
        r = max(1, int(round(0.1 * (xs.max() - xs.min() + 1))))
        hx, hy = int(xs.mean() + rng.uniform(-0.3, 0.1) * (xs.max() - xs.min())), int(y0 + 0.35 * (y1 - y0))
        spot = np.zeros(eye.shape, dtype=np.uint8)
        cv2.circle(spot, (hx, hy), r, 1, -1)
        f[(spot > 0) & eye] = 255.0
    # background: drawn faces sit on flat, often white, backdrops (a photo parser calls white "hair" or "skin")
    bg = mask == names.index("background")
    if bg.any() and rng.random() < 0.7:
        base = np.full(3, rng.uniform(225, 255), np.float32) if rng.random() < 0.6 else _hsv_colour(rng, (0.0, 0.4),
                                                                                                    (0.6, 1.0))
        tilt = rng.uniform(-0.25, 0.25, size=2).astype(np.float32)
        yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]].astype(np.float32) / mask.shape[0] - 0.5
        ramp = 1.0 + tilt[0] * xx + tilt[1] * yy
        f[bg] = np.clip(base[None] * ramp[bg][:, None], 0, 255)
    out = np.clip(f, 0, 255).astype(np.uint8)
    # flat shading: posterise
    levels = int(rng.integers(5, 12))
    step = 256.0 / levels
    out = np.clip((np.floor(out.astype(np.float32) / step) + 0.5) * step, 0, 255).astype(np.uint8)
    out = cv2.bilateralFilter(out, 5, 30, 5)
    # outlines along region borders (label changes), dark and 1-2 px wide
    m = mask.astype(np.int16)
    edge = np.zeros(mask.shape, dtype=bool)
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    edge[1:, :] |= m[1:, :] != m[:-1, :]
    edge &= mask != L.IGNORE_INDEX
    if "nose" in names:  # a drawn nose is a mark, not an outlined shape
        nose = (mask == names.index("nose")).astype(np.uint8)
        edge &= cv2.dilate(nose, np.ones((3, 3), np.uint8)) == 0
    if rng.random() < 0.8:
        k = int(rng.integers(1, 3))
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        dark = rng.uniform(0.1, 0.5)
        out[edge] = (out[edge].astype(np.float32) * dark).astype(np.uint8)
    return out


def animeize_pair(img: np.ndarray, mask: np.ndarray, label_set: str,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 photo + (S, S) uint8 mask → an anime-styled photo and its (warped) mask; see the module doc."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or mask.shape != img.shape[:2]:
        raise ValueError(f"expected an (S, S, 3) uint8 image and an (S, S) mask, "
                         f"got {img.shape} {img.dtype} / {mask.shape}")
    img, mask = _geometry(np.ascontiguousarray(img), np.ascontiguousarray(mask), label_set, rng)
    return _appearance(img, mask, label_set, rng), mask
