"""Procedural training images with natural-image statistics ("dead leaves"), made on the device.

Why: the bundled photos are few and two of them (space, retina) hold most of their pixels, while
synthetic images of occluding shapes with power-law sizes carry the statistics a denoiser needs
from natural photos: edges at every scale, flat and shaded regions, texture, blur. Achddou,
Gousseau & Ladjal ("Synthetic images as a regularity prior for image restoration neural
networks", SSVM 2021) train denoisers on such images alone to within a fraction of a dB of
training on photos; mixed with photos they add the variety that a small photo set lacks.

How: a pool of ``pool`` square images of side ``size`` lives on the training device as uint8.
Each image is painted back to front: ``leaves`` shapes (discs, ellipses, rotated rectangles)
with radii drawn from p(r) ∝ r^-3 between ``r_min`` and ``r_max``, each filled with a colour
sampled from a palette (pixels of the user's photos when there are any), a linear shading
gradient and, for some, a sinusoidal texture; edges are anti-aliased over one pixel. Some images
are then blurred (depth of field). Every ``refresh_every`` draws one image of the pool is
painted anew, so over a run the network sees thousands of different images; crops, flips and
rotations are drawn from the pool with the same gather as the photos (:class:`CropBank`).
Nothing touches the disk and nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

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


def _radii(n: int, r_min: float, r_max: float, g: torch.Generator, device) -> torch.Tensor:
    """Inverse-CDF draws of p(r) ∝ r^-POWER on [r_min, r_max]."""
    u = torch.rand(n, generator=g, device=device)
    a, b = r_min ** (1 - POWER), r_max ** (1 - POWER)
    return (a + u * (b - a)) ** (1.0 / (1 - POWER))


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a 3×H×W float image (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(img[None], (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(3, 1, 1, -1).contiguous(), groups=3)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(3, 1, -1, 1).contiguous(), groups=3)
    return y[0]


def dead_leaves(
    size: int,
    palette: torch.Tensor,
    g: torch.Generator,
    *,
    leaves: int = 2000,
    r_min: float = 2.0,
    r_max: float | None = None,
    blur_probability: float = 0.3,
) -> torch.Tensor:
    """One dead-leaves image: 3×size×size uint8 on ``palette``'s device.

    Painted back to front, each shape only inside its bounding box, so the cost is the sum of
    the shapes' areas (mostly small ones) rather than leaves × pixels.
    """
    dev = palette.device
    r_max = r_max if r_max is not None else size * 0.75
    rand = lambda *shape: torch.rand(*shape, generator=g, device=dev)  # noqa: E731
    # Background: one palette colour with a gentle gradient, so uncovered pixels are not flat.
    yy, xx = torch.meshgrid(
        torch.arange(size, device=dev, dtype=torch.float32),
        torch.arange(size, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    bg = palette[torch.randint(len(palette), (1,), generator=g, device=dev)].view(3, 1, 1)
    tilt = (rand(2) - 0.5) * 0.3 / size
    img = (bg + tilt[0] * (yy - size / 2) + tilt[1] * (xx - size / 2)).expand(3, -1, -1).clone()

    radii = _radii(leaves, r_min, r_max, g, dev).tolist()
    # Centres in the square grown by each radius, so large shapes enter from outside it.
    cy = (rand(leaves) * (size + 1.0) - 0.5).tolist()
    cx = (rand(leaves) * (size + 1.0) - 0.5).tolist()
    kinds = (rand(leaves) * 3).long().tolist()  # 0 disc, 1 ellipse, 2 rotated rectangle
    angles = (rand(leaves) * math.pi).tolist()
    aspects = (0.4 + rand(leaves) * 0.6).tolist()
    colours = palette[torch.randint(len(palette), (leaves,), generator=g, device=dev)]
    shades = (rand(leaves, 2) - 0.5) * 0.3  # a slight shading: change across the shape per radius
    textured = (rand(leaves) < 0.25).tolist()
    freqs = (0.3 + rand(leaves) * 1.2).tolist()  # radians per pixel
    amps = (rand(leaves) * 0.08).tolist()
    for i in range(leaves):
        r = radii[i]
        y0, y1 = max(0, int(cy[i] - r) - 1), min(size, int(cy[i] + r) + 2)
        x0, x1 = max(0, int(cx[i] - r) - 1), min(size, int(cx[i] + r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy[i], xx[y0:y1, x0:x1] - cx[i]
        c, s = math.cos(angles[i]), math.sin(angles[i])
        u, v = c * dx + s * dy, -s * dx + c * dy
        if kinds[i] == 0:
            dist = torch.sqrt(u * u + v * v)
        elif kinds[i] == 1:
            dist = torch.sqrt(u * u + (v / aspects[i]) ** 2)
        else:
            dist = torch.maximum(u.abs(), v.abs() / aspects[i])
        alpha = (r - dist + 0.5).clamp_(0.0, 1.0)  # one-pixel anti-aliased edge
        fill = colours[i].view(3, 1, 1) + (shades[i, 0] * dy + shades[i, 1] * dx) / max(r, 1.0)
        if textured[i]:
            fill = fill + amps[i] * torch.sin(freqs[i] * u + 7.0 * i)
        patch = img[:, y0:y1, x0:x1]
        patch += alpha * (fill - patch)
    if rand(1).item() < blur_probability:
        img = _blur(img, 0.4 + 1.6 * rand(1).item())
    return (img.clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)


class SyntheticBank:
    """A refreshed pool of dead-leaves images on ``device`` that draws crops like :class:`CropBank`.

    ``draw`` returns ``[uint8 n×3×crop×crop]``; one pool image is repainted every
    ``refresh_every`` draws (the cost of one image is spread over many training steps).
    """

    def __init__(
        self,
        crop: int,
        device: torch.device,
        palette: np.ndarray,
        *,
        size: int = 256,
        pool: int = 48,
        refresh_every: int = 8,
        seed: int = 0,
    ) -> None:
        self.size = max(size, crop)
        self.refresh_every = refresh_every
        self.palette = torch.as_tensor(palette, dtype=torch.float32, device=device)
        # Its own random stream: repainting never shifts the photos' crops or the noise.
        self.generator = torch.Generator(device=device).manual_seed(seed + 7919)
        images = [dead_leaves(self.size, self.palette, self.generator) for _ in range(pool)]
        self.bank = CropBank([torch.stack(images)], crop, device)
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

    def repaint(self, index: int) -> None:
        image = dead_leaves(self.size, self.palette, self.generator)
        start = index * self.numel
        self.bank.buffers[0][start : start + self.numel] = image.reshape(-1)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "draws": self._draws, "next": self._next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the repaint stream (the pool itself is repainted fresh, not restored)."""
        if state.get("generator") is not None and self.generator.device.type == "cpu":
            self.generator.set_state(state["generator"])
        self._draws, self._next = int(state.get("draws", 0)), int(state.get("next", 0))


class MixedBank:
    """Photos and synthetic images in one draw: a ``fraction`` of every batch is synthetic.

    The synthetic count is rounded at random, so the expected share is exact at any batch size.
    """

    def __init__(self, photos: CropBank | None, synthetic: SyntheticBank, fraction: float) -> None:
        self.photos, self.synthetic = photos, synthetic
        self.fraction = 1.0 if photos is None else fraction
        self.device = synthetic.bank.device
        self.crop = synthetic.bank.crop

    def draw(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        share = n * self.fraction
        u = torch.rand((), generator=generator, device=self.device)
        k = int(math.floor(share)) + int(float(u) < share - math.floor(share))
        parts = []
        if k:
            parts.append(self.synthetic.draw(k, generator)[0])
        if n - k:
            parts.append(self.photos.draw(n - k, generator)[0])
        return [torch.cat(parts)] if len(parts) > 1 else parts
