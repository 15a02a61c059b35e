"""Between the arrays apps hold and the float32 planes a model takes, and back.

Apps hand over H×W (grey), H×W×1, H×W×2 (grey + alpha), H×W×3 (RGB) or H×W×4 (RGBA) arrays of
uint8, uint16 or floats in [0, 1] (values outside are clipped to it: the model was trained on
that range). The model sees float32 colour planes in [0, 1]; alpha never goes through it and
comes back untouched. The result has the input's shape and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from n2nkit.errors import UserInputError

INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


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
    if image.dtype in FLOATS and not np.isfinite(image).all():
        raise UserInputError(f"{what} holds NaN or infinite values")
    return Layout(image.shape, image.dtype, 3 if channels >= 3 else 1)


def to_planes(images: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray | None]:
    """N×H×W[×C] images -> (float32 N×colour×H×W in [0, 1], alpha N×H×W or None)."""
    x = images if images.ndim == 4 else images[..., None]
    alpha = x[..., layout.colour] if x.shape[-1] in (2, 4) else None
    colour = x[..., : layout.colour]
    scale = INTEGER_SCALE.get(layout.dtype)
    planes = np.ascontiguousarray(colour.transpose(0, 3, 1, 2), dtype=np.float32)
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


def fit_channels(planes: np.ndarray, model_channels: int) -> tuple[np.ndarray, int]:
    """Adapt N×c×H×W planes to a model of ``model_channels`` (1 or 3) channels.

    Grey into an RGB model: the plane is repeated and the three outputs averaged afterwards.
    RGB into a grey model: each channel goes through as its own image. Returns the planes to
    feed and the number of images that were folded into the batch axis per input.
    """
    c = planes.shape[1]
    if c == model_channels:
        return planes, 1
    if c == 1 and model_channels == 3:
        return np.repeat(planes, 3, axis=1), 1
    n, _, h, w = planes.shape
    return planes.reshape(n * c, 1, h, w), c


def unfit_channels(out: np.ndarray, colour: int, folded: int) -> np.ndarray:
    """Undo :func:`fit_channels` on the model's output."""
    if folded > 1:
        n = out.shape[0] // folded
        return out.reshape(n, folded, *out.shape[2:])
    if out.shape[1] != colour:
        return out.mean(axis=1, keepdims=True)
    return out
