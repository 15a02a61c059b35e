"""Between the arrays apps hold and the float32 planes a model takes, and back.

Apps hand over H×W (grey), H×W×1, H×W×2 (grey + alpha), H×W×3 (RGB) or H×W×4 (RGBA) arrays of
uint8, uint16 or floats in [0, 1] (values outside are clipped to it: the model was trained on
that range). The model sees float32 colour planes in [0, 1]; alpha never goes through it and
comes back untouched. The result has the input's shape and dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from n2nkit.errors import UserInputError

INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def native(values: object) -> np.ndarray:
    """``values`` as an array in this machine's byte order: big-endian arrays (from a FITS or
    a raw file) hold the same numbers, and every check and kernel here expects native ones."""
    array = np.asarray(values)
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def channel_count(pixels: np.ndarray) -> int:
    """Samples per pixel of an H×W or H×W×C array."""
    return 1 if pixels.ndim == 2 else pixels.shape[2]


@dataclass(frozen=True)
class Layout:
    """An image's (or batch's) shape and dtype, and how many of its channels are colour."""

    shape: tuple[int, ...]
    dtype: np.dtype
    colour: int  # 1 (grey) or 3 (RGB)


def describe(image: np.ndarray, batched: bool = False) -> Layout:
    """Check an image (or an N×... batch) and say how to split it; :class:`UserInputError` if
    its shape or dtype is not one the runtime handles."""
    image = np.asarray(image)
    spatial = image.shape[1:] if batched else image.shape
    what = "batch" if batched else "image"
    expect = "N×H×W or N×H×W×C" if batched else "H×W or H×W×C"
    if len(spatial) not in (2, 3):
        raise UserInputError(f"{what} has shape {image.shape}; expected {expect} (C = 1 to 4)")
    channels = 1 if len(spatial) == 2 else spatial[2]
    if channels not in (1, 2, 3, 4):
        raise UserInputError(
            f"{what} has {channels} channels; expected 1 (grey), 2 (grey + alpha), 3 (RGB) "
            "or 4 (RGBA) along the last axis"
        )
    if spatial[0] < 1 or spatial[1] < 1 or (batched and image.shape[0] < 1):
        raise UserInputError(f"{what} of shape {image.shape} is empty")
    if image.dtype not in INTEGER_SCALE and image.dtype not in FLOATS:
        raise UserInputError(
            f"{what} dtype {image.dtype} is not supported: use uint8, uint16, or floats in [0, 1]"
        )
    if image.dtype in FLOATS:
        check_float_range(image, what)
    return Layout(image.shape, image.dtype, 3 if channels >= 3 else 1)


# Float pixels are on a 0-1 scale. Simulated noise takes single values far outside it (shot
# noise at a tenth of a photon, tens), but not their mean (zero-mean noise); a 0-255 image's
# mean is far above it, and clipping it would turn the image white.
FLOAT_MEAN_RANGE = (-0.5, 1.5)


def check_float_range(values: np.ndarray, what: str) -> None:
    """:class:`UserInputError` for NaN, infinities or floats on another scale than 0-1."""
    mean = float(np.mean(values, dtype=np.float64))  # one pass; NaN and ±inf make it non-finite
    if not math.isfinite(mean):
        raise UserInputError(f"{what} holds NaN or infinite values")
    if not FLOAT_MEAN_RANGE[0] <= mean <= FLOAT_MEAN_RANGE[1]:
        raise UserInputError(
            f"{what} holds floats averaging {mean:.4g}; float pixels are on a 0-1 scale: "
            "divide 8-bit values by 255 and 16-bit ones by 65535 (or pass the integer array)"
        )


def check_planes(planes: np.ndarray) -> np.ndarray:
    """Float N×C×H×W planes (C = 1 or 3) on the 0-1 scale, as float32; one clear error for
    anything else (integer planes, another layout, another scale)."""
    if planes.dtype not in FLOATS:
        raise UserInputError(
            f"planes are floats on a 0-1 scale, got {planes.dtype}: divide 8-bit values by 255"
        )
    if planes.ndim != 4 or planes.shape[1] not in (1, 3) or 0 in planes.shape:
        raise UserInputError(
            f"planes have shape {planes.shape}; expected N×C×H×W with C = 1 or 3, none empty "
            "(an H×W×C image goes to the Denoiser itself)"
        )
    check_float_range(planes, "planes")
    return np.asarray(planes, dtype=np.float32)


def to_planes(images: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray | None]:
    """N×H×W[×C] images -> (float32 N×colour×H×W in [0, 1], alpha N×H×W or None)."""
    x = images if images.ndim == 4 else images[..., None]
    alpha = x[..., layout.colour] if x.shape[-1] in (2, 4) else None
    colour = x[..., : layout.colour]
    scale = INTEGER_SCALE.get(layout.dtype)
    planes = np.ascontiguousarray(colour.transpose(0, 3, 1, 2), dtype=np.float32)
    if np.shares_memory(planes, images):  # float32 grey comes through as a view: never
        planes = planes.copy()  # write into the caller's array (it may be read-only too)
    if scale is not None:
        planes *= np.float32(1.0 / scale)
    else:  # the model's value range: what it was trained on (8-bit photos are in it anyway)
        np.clip(planes, 0.0, 1.0, out=planes)
    return planes, alpha


def from_planes(planes: np.ndarray, alpha: np.ndarray | None, layout: Layout) -> np.ndarray:
    """Inverse of :func:`to_planes`: clip to [0, 1], back to the layout's shape and dtype."""
    x = np.clip(planes, 0.0, 1.0).transpose(0, 2, 3, 1)
    scale = INTEGER_SCALE.get(layout.dtype)
    x = np.rint(x * scale).astype(layout.dtype) if scale is not None else x.astype(layout.dtype)
    if alpha is not None:
        x = np.concatenate([x, alpha[..., None].astype(layout.dtype, copy=False)], axis=-1)
    return np.ascontiguousarray(x.reshape(layout.shape))  # N×H×W×C in the caller's shape


# Polyphase grey -> RGB: the four 2×2 phases of a grey image (00, 01, 10, 11) go through an RGB
# model three at a time as colour channels. Each phase appears once in every channel slot, so
# every phase is denoised three times, once in each slot, and the three estimates are averaged.
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))
PHASE_TRIPLES = ((0, 1, 2), (3, 2, 1), (1, 3, 0), (2, 0, 3))


@dataclass(frozen=True)
class Fit:
    """How :func:`fit_channels` reshaped the planes, for :func:`unfit_channels`."""

    kind: str  # "same", "polyphase" (grey into RGB), "split" (RGB into grey)
    n: int
    channels: int
    height: int
    width: int


def fit_channels(planes: np.ndarray, model_channels: int) -> tuple[np.ndarray, Fit]:
    """Adapt N×c×H×W planes to a model of ``model_channels`` (1 or 3) channels.

    RGB into a grey model: each channel goes through as its own image.

    Grey into an RGB model: repeating the plane three times would hand the model noise that is
    identical in all channels, which a network trained on independent per-channel noise takes
    for image detail (measured on the shipped n2n at σ=25: +0.1 dB). Instead the four 2×2
    phases of the image, whose noise *is* independent while their content nearly matches, go
    through as the colour channels (+6.6 and +9.3 dB on the two built-in test photos).
    """
    n, c, h, w = planes.shape
    fit = Fit("same", n, c, h, w)
    if c == model_channels:
        return planes, fit
    if c == 1 and model_channels == 3:
        even = np.pad(planes, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="edge")
        phases = [even[:, 0, i::2, j::2] for i, j in PHASES]
        stacked = np.stack(
            [np.stack([phases[k] for k in triple], axis=1) for triple in PHASE_TRIPLES], axis=1
        )  # N × 4 triples × 3 × H/2 × W/2
        return stacked.reshape(n * 4, 3, *stacked.shape[-2:]), Fit("polyphase", n, c, h, w)
    return planes.reshape(n * c, 1, h, w), Fit("split", n, c, h, w)


def unfit_channels(out: np.ndarray, fit: Fit) -> np.ndarray:
    """Undo :func:`fit_channels` on the model's output (cropped to the fed planes' size)."""
    if fit.kind == "split":
        return out.reshape(fit.n, fit.channels, *out.shape[2:])
    if fit.kind == "polyphase":
        out = out.reshape(fit.n, len(PHASE_TRIPLES), 3, *out.shape[2:])
        estimates = np.zeros((fit.n, len(PHASES), *out.shape[3:]), dtype=np.float32)
        for t, triple in enumerate(PHASE_TRIPLES):
            for slot, phase in enumerate(triple):
                estimates[:, phase] += out[:, t, slot]
        estimates /= 3.0  # every phase sits in three triples
        grey = np.empty((fit.n, 1, 2 * out.shape[3], 2 * out.shape[4]), dtype=np.float32)
        for phase, (i, j) in enumerate(PHASES):
            grey[:, 0, i::2, j::2] = estimates[:, phase]
        return grey[:, :, : fit.height, : fit.width]
    return out
