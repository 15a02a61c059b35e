"""Noise models that synthesise training pairs: ``gaussian:25``, ``poisson:30``, ``text:0.2`` ...

A spec is ``KIND`` or ``KIND:LEVEL`` or ``KIND:LOW-HIGH``; a range draws the level uniformly per
image, so one model learns every level in it (Noise2Noise's "blind" training). Every image, and
every call, is an independent draw: Noise2Noise needs two independent corruptions of one scene.

All kinds run as batched torch ops on the tensor's own device (CPU or CUDA), so the GPU training
path never leaves the GPU. :meth:`NoiseSpec.apply` returns the raw corruption (it may leave
[0, 1]); :func:`add_noise` with ``clip=True`` also clamps and quantizes to 8 bits like a photo.

Kinds and their LEVEL (see :data:`KINDS`):

* ``gaussian``   additive N(0, sigma²), sigma in 0-255 units.
* ``poisson``    shot noise with ``peak`` photons at white: Poisson(x·peak)/peak.
* ``bernoulli``  each pixel (all channels) dropped to 0 with probability p (multiplicative).
* ``impulse``    each pixel replaced by a uniform random colour with probability p.
* ``text``       random characters in random colours cover about fraction p of the pixels;
                 glyphs are rendered once with Pillow's built-in font into an atlas tensor and
                 then placed with tensor ops (no per-image Python).
* ``pixelate``   block means over b×b blocks, shown at full size (block-downsample then
                 nearest-upsample: the corruption in the report's own data). The block grid's
                 offset is random per image, so two draws of one scene differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from n2nkit.errors import UnknownNameError, UserInputError


@dataclass(frozen=True)
class Kind:
    name: str
    default: float
    minimum: float
    maximum: float | None
    integer: bool
    meaning: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        # beyond σ = 255 (the whole range) a clipped image holds no more signal to learn from
        Kind("gaussian", 25.0, 0.0, 255.0, False, "sigma in 0-255 units"),
        # above ~1e10 float32 rates lose the image; at 1e6 the noise is under a grey level
        Kind("poisson", 30.0, 1e-3, 1e6, False, "photons at white (lower = noisier)"),
        # at 1 every pixel is dropped or replaced: nothing of the image is left to learn from
        Kind("bernoulli", 0.5, 0.0, 0.99, False, "fraction of pixels dropped to black"),
        Kind("impulse", 0.3, 0.0, 0.99, False, "fraction of pixels set to random colours"),
        Kind("text", 0.2, 0.0, 0.9, False, "fraction of pixels covered by text"),
        Kind("pixelate", 4.0, 1.0, 64.0, True, "block size in pixels"),
    )
}


def noise_kinds() -> list[str]:
    return list(KINDS)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec; ``low == high`` for a fixed level."""

    kind: str
    low: float
    high: float

    def __str__(self) -> str:
        if self.low == self.high:
            return f"{self.kind}:{_fmt(self.low)}"
        return f"{self.kind}:{_fmt(self.low)}-{_fmt(self.high)}"

    @property
    def zero_mean(self) -> bool:
        """True when E[noisy] = clean before clipping (the Noise2Noise target stays unbiased)."""
        return self.kind in ("gaussian", "poisson")

    def levels(
        self, n: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One level per image (float32, shape ``n``), uniform in [low, high]."""
        if self.low == self.high:
            return torch.full((n,), float(self.low), device=device)
        u = _rand((n,), generator, device)
        lv = self.low + (self.high - self.low) * u
        if KINDS[self.kind].integer:  # every integer in the range equally likely
            lv = torch.floor(self.low + (self.high - self.low + 1) * u).clamp_(max=self.high)
        return lv

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Corrupt N×C×H×W float images in [0, 1]; a new independent draw on every call."""
        if x.dim() != 4:
            raise UserInputError(f"noise expects N×C×H×W images, got shape {tuple(x.shape)}")
        x = x if x.is_floating_point() else x.float() / 255.0
        level = self.levels(x.shape[0], x.device, generator)
        return _APPLY[self.kind](x, level, generator)


def parse_noise(spec: str | NoiseSpec) -> NoiseSpec:
    """``gaussian:25``, ``gaussian:0-50`` or ``text`` -> :class:`NoiseSpec`, or a clear error."""
    if isinstance(spec, NoiseSpec):
        return spec
    text = str(spec).strip().lower()
    name, _, arg = text.partition(":")
    name = name.strip()
    if name not in KINDS:
        raise UnknownNameError("noise kind", name or text, noise_kinds())
    kind = KINDS[name]
    arg = arg.strip()
    try:
        if not arg:
            low = high = kind.default
        elif (cut := _range_dash(arg)) is not None:
            low, high = float(arg[:cut]), float(arg[cut + 1 :])
        else:
            low = high = float(arg)
    except ValueError:
        raise UserInputError(
            f"malformed noise spec {spec!r}: write KIND:LEVEL or KIND:LOW-HIGH, "
            f"e.g. {name}:{_fmt(kind.default)} ({name} level = {kind.meaning})"
        ) from None
    for v in (low, high):
        bad = not math.isfinite(v) or v < kind.minimum
        bad = bad or (kind.maximum is not None and v > kind.maximum)
        bad = bad or (kind.integer and not float(v).is_integer())
        if bad:
            upper = f" and <= {_fmt(kind.maximum)}" if kind.maximum is not None else ""
            whole = " a whole number" if kind.integer else ""
            raise UserInputError(
                f"noise spec {spec!r}: {name} level ({kind.meaning}) must be{whole} "
                f">= {_fmt(kind.minimum)}{upper}"
            )
    if low > high:
        raise UserInputError(f"noise spec {spec!r}: range low {low:g} exceeds high {high:g}")
    return NoiseSpec(name, float(low), float(high))


def _range_dash(arg: str) -> int | None:
    """Where ``LOW-HIGH`` splits: the first ``-`` that is neither a leading sign nor an
    exponent's (``1e-3`` is one level, ``1e-3-0.5`` a range)."""
    for i, char in enumerate(arg):
        if char == "-" and i > 0 and arg[i - 1] not in "eE":
            return i
    return None


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8 bits: what a saved photo holds."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def add_noise(
    x: torch.Tensor,
    spec: str | NoiseSpec,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """Noisy copy of ``x`` (N×C×H×W in [0, 1]); ``clip`` clamps and quantizes like a real photo."""
    noisy = parse_noise(spec).apply(x, generator)
    return quantize(noisy) if clip else noisy


# --------------------------------------------------------------------------- random draws
def _rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, normal=False
) -> torch.Tensor:
    """Draw on the generator's device, then move: a CPU generator also serves CUDA tensors."""
    fn = torch.randn if normal else torch.rand
    if generator is None or generator.device.type == torch.device(device).type:
        return fn(shape, generator=generator, device=device)
    return fn(shape, generator=generator, device=generator.device).to(device)


def _per_image(level: torch.Tensor) -> torch.Tensor:
    return level.view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- the kinds
def _gaussian(x: torch.Tensor, level: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return x + _rand(tuple(x.shape), g, x.device, normal=True) * _per_image(level / 255.0)


def _poisson(x: torch.Tensor, level: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    peak = _per_image(level)
    rate = x.clamp(min=0.0) * peak
    if g is None or g.device.type == x.device.type:
        counts = torch.poisson(rate, generator=g)
    else:
        counts = torch.poisson(rate.to(g.device), generator=g).to(x.device)
    return counts / peak


def _pixel_mask(x: torch.Tensor, p: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    return _rand((n, 1, h, w), g, x.device) < _per_image(p)


def _bernoulli(x: torch.Tensor, level: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return x.masked_fill(_pixel_mask(x, level, g), 0.0)


def _impulse(x: torch.Tensor, level: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    colours = _rand(tuple(x.shape), g, x.device)
    return torch.where(_pixel_mask(x, level, g), colours, x)


def _pixelate(x: torch.Tensor, level: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """Block means over a per-image b×b grid with a random offset, via one scatter-add."""
    n, c, h, w = x.shape
    b = level.to(torch.long).clamp(min=1)
    oy = torch.floor(_rand((n,), g, x.device) * b).long()
    ox = torch.floor(_rand((n,), g, x.device) * b).long()
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    by = (ys[None, :] + oy[:, None]) // b[:, None]  # n×h block row of each pixel row
    bx = (xs[None, :] + ox[:, None]) // b[:, None]  # n×w
    cols = w // int(b.min()) + 2
    rows = h // int(b.min()) + 2
    ids = (by[:, :, None] * cols + bx[:, None, :]).view(n, 1, h * w)  # n×1×hw block index
    flat = x.reshape(n, c, h * w)
    sums = torch.zeros(n, c, rows * cols, device=x.device, dtype=x.dtype)
    sums.scatter_add_(2, ids.expand(n, c, h * w), flat)
    counts = torch.zeros(n, 1, rows * cols, device=x.device, dtype=x.dtype)
    counts.scatter_add_(2, ids, torch.ones_like(flat[:, :1]))
    means = sums / counts.clamp(min=1.0)
    return means.gather(2, ids.expand(n, c, h * w)).view(n, c, h, w)


# Text: glyphs rendered once per device, then placed as whole lines of text.
TEXT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ATLAS: dict[tuple[str, int], torch.Tensor] = {}


def glyph_atlas(device: torch.device, size: int = 11) -> torch.Tensor:
    """K×gh×gw float masks of :data:`TEXT_CHARS` drawn with Pillow's built-in font (cached)."""
    key = (str(device), size)
    if key not in _ATLAS:
        import numpy as np
        from PIL import Image, ImageDraw, ImageFont

        try:
            font: Any = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: the fixed bitmap font
            font = ImageFont.load_default()
        boxes = [font.getbbox(ch) for ch in TEXT_CHARS]
        gw = max(r - left for left, _, r, _ in boxes) + 1
        top = min(t for _, t, _, _ in boxes)
        gh = max(bot for _, _, _, bot in boxes) - top + 1
        masks = []
        for ch in TEXT_CHARS:
            img = Image.new("L", (gw, gh), 0)
            ImageDraw.Draw(img).text((0, -top), ch, fill=255, font=font)
            masks.append(np.asarray(img, dtype=np.float32) / 255.0)
        _ATLAS[key] = torch.from_numpy(np.stack(masks)).to(device)
    return _ATLAS[key]


def _text_layer(
    n: int, h: int, w: int, atlas: torch.Tensor, fill: float, g: torch.Generator | None, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of text lines at a random offset: (alpha n×1×h×w, colour n×3×h×w)."""
    k, gh, gw = atlas.shape
    rows, cols = h // gh + 2, w // gw + 2
    chars = torch.floor(_rand((n, rows, cols), g, device) * k).long().clamp_(max=k - 1)
    keep = (_rand((n, rows, cols), g, device) < fill).float()
    cells = atlas[chars] * keep[..., None, None]  # n×rows×cols×gh×gw
    sheet = cells.permute(0, 1, 3, 2, 4).reshape(n, rows * gh, cols * gw)
    line_colour = _rand((n, 3, rows), g, device)  # one colour per line of text
    colour = line_colour.repeat_interleave(gh, dim=2)[..., None].expand(n, 3, rows * gh, cols * gw)
    oy = torch.floor(_rand((n,), g, device) * gh).long()
    ox = torch.floor(_rand((n,), g, device) * gw).long()
    ys = (torch.arange(h, device=device)[None, :] + oy[:, None])[:, :, None]  # n×h×1
    xs = (torch.arange(w, device=device)[None, :] + ox[:, None])[:, None, :]  # n×1×w
    idx = (ys * sheet.shape[2] + xs).view(n, h * w)
    alpha = sheet.reshape(n, -1).gather(1, idx).view(n, 1, h, w)
    col = colour.reshape(n, 3, -1).gather(2, idx[:, None].expand(n, 3, h * w)).view(n, 3, h, w)
    return alpha, col


def _text(x: torch.Tensor, level: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """Stack sparse text layers until each image's covered fraction reaches its level."""
    n, c, h, w = x.shape
    size = max(11, min(h, w) // 12)  # legible on 32×32 crops, proportionate on photos
    atlas = glyph_atlas(x.device, size)
    out = x.clone()
    covered = torch.zeros(n, 1, h, w, device=x.device)
    for _ in range(64):
        frac = covered.mean(dim=(1, 2, 3))
        todo = frac < level
        if not bool(todo.any()):
            break
        alpha, col = _text_layer(n, h, w, atlas, 0.35, g, x.device)
        alpha = (alpha > 0.5).float() * _per_image(todo.float())  # crisp glyphs, done images off
        out = out * (1 - alpha) + col[:, :c] * alpha
        covered = torch.maximum(covered, alpha)
    return out


_APPLY = {
    "gaussian": _gaussian,
    "poisson": _poisson,
    "bernoulli": _bernoulli,
    "impulse": _impulse,
    "text": _text,
    "pixelate": _pixelate,
}
