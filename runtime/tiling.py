"""Run a fully convolutional model on images of any size: pad, split into tiles, blend back.

Pure numpy. The model only accepts sides that are multiples of its size multiple, and memory
grows with the pixels of one call, so:

* :func:`pad_to` reflect-pads the bottom and right edges (reflection keeps image statistics at
  the border, where zeros would read as a dark frame), and the caller crops back;
* :func:`plan_axis` splits a side into as few overlapping tiles as a size limit allows, with
  tiles of equal size (so a 1088-pixel side becomes two 576-pixel tiles, not 1024 + 1024)
  starting on the model's pooling grid;
* :func:`blend_window` weights each tile's pixels by their distance from its edges, where the
  network saw the least context, and the weighted sum is normalised: no seams, and a pixel that
  only one tile covers gets exactly that tile's value.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Infer = Callable[[np.ndarray], np.ndarray]  # float32 N×C×H×W -> float32 N×C×H×W


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def pad_to(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad N×C×H×W ``x`` at the bottom/right to ``height``×``width``.

    Reflection needs at least two pixels; a one-pixel side is repeated instead. Pads wider than
    the image reflect again (numpy's reflect mode handles that).
    """
    h, w = x.shape[-2:]
    if (h, w) == (height, width):
        return x
    pad = ((0, 0), (0, 0), (0, height - h), (0, width - w))
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(x, pad, mode=mode)


@dataclass(frozen=True)
class AxisPlan:
    """Where the tiles of one axis start, and their common length."""

    starts: tuple[int, ...]
    length: int


def plan_axis(size: int, max_tile: int, overlap: int, multiple: int) -> AxisPlan:
    """Cover ``size`` pixels with the fewest equal tiles of at most ``max_tile`` pixels whose
    neighbours share at least ``overlap`` pixels.

    Tiles start on multiples of ``multiple`` (``size`` and ``max_tile`` are multiples of it):
    a U-Net then pools each tile on the same grid as the whole image, so a tile's interior
    matches whole-image inference instead of a shifted version of it.
    """
    if size <= max_tile:
        return AxisPlan((0,), size)
    units, most, shared = size // multiple, max_tile // multiple, -(-overlap // multiple)
    if most <= shared:
        raise ValueError(f"tile {max_tile} must exceed the overlap {overlap} by {multiple}")
    count = 2
    while True:
        length = min(most, -(-(units + (count - 1) * shared) // count))
        widest_gap = -(-(units - length) // (count - 1))
        if length - widest_gap >= shared:
            break
        count += 1
    last = units - length
    starts = [(i * last) // (count - 1) * multiple for i in range(count)]
    return AxisPlan(tuple(starts), length * multiple)


def blend_window(height: int, width: int, ramp: int) -> np.ndarray:
    """H×W float32 weights: 1 inside, falling to almost 0 over ``ramp`` pixels at the edges.

    The fall is cubic, so the outermost pixels, computed with the least context, barely count:
    measured on a trained n2n, a linear ramp left visible seams that the cubic one removes.
    """

    def axis(n: int) -> np.ndarray:
        if ramp <= 0:
            return np.ones(n, np.float32)
        pos = np.arange(n, dtype=np.float32)
        edge = np.clip(np.minimum(pos + 0.5, n - pos - 0.5) / ramp, 0.0, 1.0)
        return np.maximum(edge**3, 1e-6).astype(np.float32)

    return axis(height)[:, None] * axis(width)[None, :]


def run_tiled(
    x: np.ndarray,
    infer: Infer,
    max_tile: int,
    overlap: int,
    multiple: int,
    tiles_per_call: int = 1,
) -> np.ndarray:
    """Denoise one padded C×H×W image (sides multiples of ``multiple``) tile by tile.

    Memory stays bounded by the tile size: at most ``tiles_per_call`` tiles go to ``infer`` at
    once, and the accumulators are two image-sized float32 arrays.
    """
    c, h, w = x.shape
    rows = plan_axis(h, max_tile, overlap, multiple)
    cols = plan_axis(w, max_tile, overlap, multiple)
    window = blend_window(rows.length, cols.length, overlap)
    total = np.zeros((c, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    th, tw = rows.length, cols.length
    positions = list(itertools.product(rows.starts, cols.starts))
    for i in range(0, len(positions), tiles_per_call):
        group = positions[i : i + tiles_per_call]
        batch = np.stack([x[:, t : t + th, s : s + tw] for t, s in group])
        out = infer(np.ascontiguousarray(batch))
        for (t, s), tile in zip(group, out, strict=True):
            total[:, t : t + th, s : s + tw] += tile * window
            weight[t : t + th, s : s + tw] += window
    return total / weight
