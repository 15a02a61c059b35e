"""Procedural training images with natural-image statistics ("dead leaves"), made as training runs.

Why: the bundled photos are few and two of them (space, retina) hold most of their pixels, while
synthetic images of occluding shapes with power-law sizes carry the statistics a denoiser needs
from natural photos: edges at every scale, flat and shaded regions, texture, blur. Achddou,
Gousseau & Ladjal ("Synthetic images as a regularity prior for image restoration neural
networks", SSVM 2021) train denoisers on such images alone to within a fraction of a dB of
training on photos; mixed with photos they add the variety that a small photo set lacks.

How: a pool of ``pool`` square images of side ``size`` lives on the training device as uint8.
Each image is painted (on the CPU, in numpy; see :func:`dead_leaves`) back to front:
``leaves`` shapes (discs, ellipses, rotated rectangles) with radii drawn from
p(r) ∝ r^-3 between ``r_min`` and ``r_max``, each filled with a colour
sampled from a palette (pixels of the user's photos when there are any), a linear shading
gradient and, for some, a sinusoidal texture; edges are anti-aliased over one pixel. Some images
are then blurred (depth of field). Every ``refresh_every`` draws one image of the pool is
painted anew, so over a run the network sees thousands of different images; crops, flips and
rotations are drawn from the pool with the same gather as the photos (:class:`CropBank`).
Nothing touches the disk and nothing is downloaded; only the new image (196 KB) crosses to a
GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from n2nkit.training.gpu_batches import CropBank

POWER = 3.0  # p(r) ∝ r^-POWER: the scale-invariant exponent of natural images
PALETTE_SIZE = 4096


def palette_from_images(
    images: Sequence[Any], count: int = PALETTE_SIZE, seed: int = 0
) -> np.ndarray:
    """``count`` RGB colours (float32 in [0, 1]) sampled uniformly from the pixels of ``images``.

    Accepts H×W×3 arrays or uint8 N×3×H×W tensors; an empty sequence gives uniform colours.
    """
    rng = np.random.default_rng(seed)
    pixels = []
    for im in images:
        arr = im.permute(1, 2, 0).numpy() if isinstance(im, torch.Tensor) else np.asarray(im)
        flat = arr.reshape(-1, arr.shape[-1])[:, :3]
        pick = rng.integers(0, len(flat), size=max(1, count // max(1, len(images))))
        pixels.append(flat[pick])
    if not pixels:
        return rng.random((count, 3), dtype=np.float32)
    return (np.concatenate(pixels)[:count].astype(np.float32) / 255.0).clip(0.0, 1.0)


def _radii(n: int, r_min: float, r_max: float, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draws of p(r) ∝ r^-POWER on [r_min, r_max]."""
    a, b = r_min ** (1 - POWER), r_max ** (1 - POWER)
    return (a + rng.random(n) * (b - a)) ** (1.0 / (1 - POWER))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an H×W×3 float image (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(k[i] * pad[i : i + img.shape[0]] for i in range(len(k)))
    return sum(k[i] * rows[:, i : i + img.shape[1]] for i in range(len(k)))


def dead_leaves(
    size: int,
    palette: np.ndarray,
    rng: np.random.Generator,
    *,
    leaves: int = 2000,
    r_min: float = 2.0,
    r_max: float | None = None,
    blur_probability: float = 0.3,
) -> np.ndarray:
    """One dead-leaves image: size×size×3 uint8.

    Painted back to front, each shape only inside its bounding box, so the cost is the sum of
    the shapes' areas (mostly small ones) rather than leaves × pixels. numpy rather than torch:
    thousands of tiny array operations are cheap there, with no thread pool to synchronise
    (torch's made this 100× slower on a busy machine); an image is ~60 ms of one CPU core.
    """
    r_max = r_max if r_max is not None else size * 0.75
    coords = np.arange(size, dtype=np.float32)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    # Background: one palette colour with a gentle gradient, so uncovered pixels are not flat.
    tilt = (rng.random(2) - 0.5) * 0.3 / size
    ramp = tilt[0] * (yy - size / 2) + tilt[1] * (xx - size / 2)
    img = (palette[rng.integers(len(palette))] + ramp[..., None]).astype(np.float32)

    radii = _radii(leaves, r_min, r_max, rng)
    cy = rng.random(leaves) * (size + 1.0) - 0.5
    cx = rng.random(leaves) * (size + 1.0) - 0.5
    kinds = rng.integers(0, 3, leaves)  # 0 disc, 1 ellipse, 2 rotated rectangle
    angles = rng.random(leaves) * math.pi
    aspects = 0.4 + rng.random(leaves) * 0.6
    colours = palette[rng.integers(0, len(palette), leaves)]
    shades = (rng.random((leaves, 2)) - 0.5) * 0.3  # a slight shading: change per radius
    textured = rng.random(leaves) < 0.25
    freqs = 0.3 + rng.random(leaves) * 1.2  # radians per pixel
    amps = rng.random(leaves) * 0.08
    for i in range(leaves):
        r = radii[i]
        y0, y1 = max(0, int(cy[i] - r) - 1), min(size, int(cy[i] + r) + 2)
        x0, x1 = max(0, int(cx[i] - r) - 1), min(size, int(cx[i] + r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy[i], xx[y0:y1, x0:x1] - cx[i]
        c, s = math.cos(angles[i]), math.sin(angles[i])
        u, v = c * dx + s * dy, c * dy - s * dx
        if kinds[i] == 0:
            dist = np.sqrt(u * u + v * v)
        elif kinds[i] == 1:
            dist = np.sqrt(u * u + (v / aspects[i]) ** 2)
        else:
            dist = np.maximum(np.abs(u), np.abs(v) / aspects[i])
        alpha = np.clip(r - dist + 0.5, 0.0, 1.0)[..., None]  # one-pixel anti-aliased edge
        shade = (shades[i, 0] * dy + shades[i, 1] * dx) / max(r, 1.0)
        if textured[i]:
            shade = shade + amps[i] * np.sin(freqs[i] * u + 7.0 * i)
        patch = img[y0:y1, x0:x1]
        patch += alpha * (colours[i] + shade[..., None] - patch)
    if rng.random() < blur_probability:
        img = _blur(img, 0.4 + 1.6 * rng.random())
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


class SyntheticBank:
    """A refreshed pool of dead-leaves images on ``device`` that draws crops like :class:`CropBank`.

    ``draw`` returns ``[uint8 n×3×crop×crop]``; one pool image is repainted every
    ``refresh_every`` draws (the cost of one image is spread over many training steps).
    ``permute_colours`` reorders each crop's RGB channels at random, as for the photos.
    """

    def __init__(
        self,
        crop: int,
        device: torch.device,
        palette: np.ndarray,
        *,
        size: int = 256,
        pool: int = 48,
        refresh_every: int | None = None,
        seed: int = 0,
        permute_colours: bool = False,
    ) -> None:
        self.size = max(size, crop)
        # One image (~60 ms of CPU) per 8 CPU steps, or per 64 much faster GPU steps.
        self.refresh_every = refresh_every or (64 if torch.device(device).type == "cuda" else 8)
        self.palette = np.asarray(palette, dtype=np.float32)
        # Its own random stream: repainting never shifts the photos' crops or the noise.
        self.rng = np.random.default_rng(seed + 7919)
        pool_images = [self._paint() for _ in range(pool)]
        self.bank = CropBank([pool_images], crop, device, permute_colours=permute_colours)
        self.pool = pool
        self.numel = 3 * self.size * self.size
        self._draws = 0
        self._next = 0

    def draw(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        self._draws += 1
        if self._draws % self.refresh_every == 0:
            self.repaint(self._next)
            self._next = (self._next + 1) % self.pool
        return self.bank.draw(n, generator)

    def _paint(self) -> np.ndarray:
        return dead_leaves(self.size, self.palette, self.rng)

    def repaint(self, index: int) -> None:
        image = torch.from_numpy(self._paint()).permute(2, 0, 1).reshape(-1)
        start = index * self.numel
        self.bank.buffers[0][start : start + self.numel] = image.to(self.bank.device)


class MixedBank:
    """Photos and synthetic images in one draw: a ``fraction`` of every batch is synthetic.

    The synthetic count is rounded at random, so the expected share is exact at any batch size;
    that draw is on the CPU, so a GPU batch costs no device-to-host sync.
    """

    def __init__(
        self, photos: CropBank | None, synthetic: SyntheticBank, fraction: float, seed: int = 0
    ) -> None:
        self.photos, self.synthetic = photos, synthetic
        self.rng = np.random.default_rng(seed + 104729)
        self.fraction = 1.0 if photos is None else fraction

    def draw(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        share = n * self.fraction
        k = int(math.floor(share)) + int(self.rng.random() < share - math.floor(share))
        parts = []
        if k:
            parts.append(self.synthetic.draw(k, generator)[0])
        if n - k:
            parts.append(self.photos.draw(n - k, generator)[0])
        return [torch.cat(parts)] if len(parts) > 1 else parts
