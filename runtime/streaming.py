"""Denoise one large image tile by tile without float copies of the whole image.

:func:`.tiling.run_tiled` works on float32 planes of the whole (padded) image and blends into
two more image-sized float32 accumulators: with the conversions around it, a 20000×20000 RGB
photo held about five full-size float32 copies (≈24 GB). Here each tile is read straight from
the caller's uint8/uint16/float array (padding by reflection through index maps, the channel
fitting of :func:`.pixels.fit_channels` done per tile), run, blended into a band of rows only
one tile high, and every row the band is done with is converted into the output array. Peak
memory is the input, the output (same dtype) and one band of float32 rows.

The arithmetic is that of ``fit_channels`` → ``pad_to`` → ``run_tiled`` → ``unfit_channels`` →
``from_planes``, tile for tile and in the same order, so results match the whole-array path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from n2nkit.runtime.backend import Backend
from n2nkit.runtime.pixels import INTEGER_SCALE, PHASE_TRIPLES, PHASES, Layout
from n2nkit.runtime.tiling import blend_window, plan_axis, round_up


def fitted_size(layout: Layout, model_channels: int) -> tuple[int, int]:
    """Height and width of the planes the model sees (halved for grey through an RGB model)."""
    h, w = layout.shape[:2]
    if layout.colour == 1 and model_channels == 3:
        return -(-h // 2), -(-w // 2)
    return h, w


def padded_size(layout: Layout, backend: Backend) -> tuple[int, int]:
    meta = backend.metadata
    m = max(meta.size_multiple, 1)
    h, w = fitted_size(layout, meta.channels)
    return round_up(max(h, meta.min_side), m), round_up(max(w, meta.min_side), m)


def reflect_index(padded: int, size: int, edge: bool) -> np.ndarray:
    """Indices into ``size`` pixels for ``padded`` positions, as ``np.pad`` reflect (or edge)
    mode pads at the end: pads wider than the image reflect again."""
    i = np.arange(padded)
    if edge or size == 1:
        return np.minimum(i, size - 1)
    period = 2 * (size - 1)
    r = i % period
    return np.where(r < size, r, period - r)


def denoise_streamed(
    image: np.ndarray, layout: Layout, backend: Backend, tile: int, overlap: int
) -> np.ndarray:
    """Denoise one H×W[×C] image tile by tile into a new array of its shape and dtype."""
    meta = backend.metadata
    m = max(meta.size_multiple, 1)
    h, w = layout.shape[:2]
    c = layout.colour
    fh, fw = fitted_size(layout, meta.channels)
    height, width = padded_size(layout, backend)
    x = image if image.ndim == 3 else image[..., None]
    out = np.empty(x.shape, layout.dtype)
    if x.shape[-1] in (2, 4):  # alpha passes through untouched
        out[..., c] = x[..., c]
    edge = min(fh, fw) == 1  # pad_to repeats a one-pixel side instead of reflecting
    row_map, col_map = reflect_index(height, fh, edge), reflect_index(width, fw, edge)
    if c == meta.channels:
        read, write, batch, channels = _same(x, c), _write_same(out, c, w), 1, c
    elif c == 3:  # RGB through a grey model: each channel is its own image
        read, write, batch, channels = _split(x), _write_split(out, w), 3, 1
    else:  # grey through an RGB model: the four 2×2 phases, three at a time (see pixels.py)
        read, write, batch, channels = _polyphase(x, h, w), _write_polyphase(out, h, w), 4, 3

    def infer(tiles: np.ndarray) -> np.ndarray:
        n, _, th, tw = tiles.shape
        if backend.fits(n, th, tw):
            return backend.infer(tiles)
        return np.concatenate([backend.infer(tiles[i : i + 1]) for i in range(n)])

    fill = write

    def write(r0: int, r1: int, values: np.ndarray) -> None:
        if r1 > r0:  # rows of the padding are never written
            fill(r0, r1, values)

    rows = plan_axis(height, tile, overlap, m)
    cols = plan_axis(width, tile, overlap, m)
    th, tw = rows.length, cols.length
    window = blend_window(th, tw, overlap)
    total = np.zeros((batch, channels, th, width), np.float32)  # rows lo .. lo + th
    weight = np.zeros((th, width), np.float32)
    lo = 0
    for t in rows.starts:
        done = t - lo  # no later tile reaches above row t: rows lo .. t are final
        if done:
            write(lo, min(t, fh), _normalised(total, weight, done, fw))
            for i in range(th - done):  # row by row: no band-sized temporary copy
                total[:, :, i] = total[:, :, i + done]
                weight[i] = weight[i + done]
            total[:, :, th - done :] = 0
            weight[th - done :] = 0
            lo = t
        for s in cols.starts:
            r, q = row_map[t : t + th], col_map[s : s + tw]
            result = infer(read(r, q))
            total[:, :, :, s : s + tw] += result * window
            weight[:, s : s + tw] += window
    end = min(lo + th, fh)
    if end > lo:
        write(lo, end, _normalised(total, weight, end - lo, fw))
    return out.reshape(layout.shape)


def _normalised(total: np.ndarray, weight: np.ndarray, rows: int, width: int) -> np.ndarray:
    """The blend of the band's first ``rows`` rows, divided in place (they are done)."""
    values = total[:, :, :rows, :width]
    values /= weight[:rows, :width]
    return values


# ---------------------------------------------------------------------- reading tiles
Reader = Callable[[np.ndarray, np.ndarray], np.ndarray]  # row, col indices -> N×C×th×tw
Writer = Callable[[int, int, np.ndarray], None]  # fitted rows r0..r1, their N×C×rows×W values


def _planes(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """H×W×C samples -> float32 C×H×W in [0, 1], as :func:`.pixels.to_planes` converts."""
    planes = np.ascontiguousarray(block.transpose(2, 0, 1), dtype=np.float32)
    scale = INTEGER_SCALE.get(dtype)
    if scale is not None:
        planes *= np.float32(1.0 / scale)
    else:
        np.clip(planes, 0.0, 1.0, out=planes)
    return planes


def _same(x: np.ndarray, c: int) -> Reader:
    return lambda r, q: _planes(x[np.ix_(r, q)][..., :c], x.dtype)[None]


def _split(x: np.ndarray) -> Reader:
    return lambda r, q: _planes(x[np.ix_(r, q)][..., :3], x.dtype)[:, None]


def _polyphase(x: np.ndarray, h: int, w: int) -> Reader:
    def read(r: np.ndarray, q: np.ndarray) -> np.ndarray:
        phases = [
            x[np.ix_(np.minimum(2 * r + i, h - 1), np.minimum(2 * q + j, w - 1))][..., 0]
            for i, j in PHASES
        ]  # the edge-padded image's phases, as fit_channels takes them
        planes = _planes(np.stack(phases, axis=-1), x.dtype)  # 4 × th × tw
        return np.stack([planes[list(triple)] for triple in PHASE_TRIPLES])

    return read


# ---------------------------------------------------------------------- writing rows
def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> values ready for the output dtype, as :func:`.pixels.from_planes` converts,
    in place (``values`` are the band's finished rows); assigning them casts."""
    np.clip(values, 0.0, 1.0, out=values)
    scale = INTEGER_SCALE.get(dtype)
    if scale is not None:
        values *= scale
        np.rint(values, out=values)
    return values


def _write_same(out: np.ndarray, c: int, w: int) -> Writer:
    def write(r0: int, r1: int, values: np.ndarray) -> None:
        out[r0:r1, :, :c] = _to_dtype(values[0, :, : r1 - r0, :w].transpose(1, 2, 0), out.dtype)

    return write


def _write_split(out: np.ndarray, w: int) -> Writer:
    def write(r0: int, r1: int, values: np.ndarray) -> None:
        out[r0:r1, :, :3] = _to_dtype(values[:, 0, : r1 - r0, :w].transpose(1, 2, 0), out.dtype)

    return write


def _write_polyphase(out: np.ndarray, h: int, w: int) -> Writer:
    def write(r0: int, r1: int, values: np.ndarray) -> None:
        estimates = np.zeros((len(PHASES), *values.shape[2:]), np.float32)
        for t, triple in enumerate(PHASE_TRIPLES):
            for slot, phase in enumerate(triple):
                estimates[phase] += values[t, slot]
        estimates /= 3.0  # every phase sits in three triples
        for phase, (i, j) in enumerate(PHASES):
            rows = range(2 * r0 + i, min(2 * r1, h), 2)
            cols = range(j, w, 2)
            if len(rows) and len(cols):
                block = estimates[phase, : len(rows), : len(cols)]
                out[rows.start : rows.stop : 2, j:w:2, 0] = _to_dtype(block, out.dtype)

    return write
