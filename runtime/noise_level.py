"""How noisy is an image? A robust wavelet estimate of Gaussian noise σ, numpy only.

Donoho & Johnstone's estimate: in the finest diagonal Haar sub-band (HH) of a natural image
almost every coefficient is noise, so σ = median(|HH|) / 0.6745. Texture and edges put signal
into HH too and bias it upwards, most at low noise levels; two refinements keep it within a few
per cent on photos:

* Edges and texture are excluded: a 2×2 cell whose horizontal or vertical detail (LH, HL)
  stands out (> ``EDGE_FACTOR`` × the current σ), or whose neighbourhood of 3×3 cells holds
  more LH/HL energy than noise would (> ``TEXTURE_FACTOR`` × σ²), holds structure, and its HH is
  dropped. For white noise the orthonormal Haar sub-bands are independent, so selecting on
  LH/HL does not bias HH. The selection is repeated a few times with the refined σ.
* Cells whose mean lies within 2σ of 0 or 255 (0 and 1 for float images) are dropped:
  clipping shrinks the noise there. At very high noise the margin narrows until enough cells
  remain, and the estimate falls short (about σ 57 for a true 70).
* Integer pixels put HH on a grid of halves; the median is interpolated within its grid cell.

Channels are estimated separately and combined by their median. The result is on the image's
own scale: 0-255 for uint8 (the scale of n2nkit's noise specs), 0-65535 for uint16, the values'
scale for float images.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 0.6745  # median(|N(0,1)|)
EDGE_FACTOR = 2.0  # |LH| or |HL| beyond this many σ marks a cell as an edge
TEXTURE_FACTOR = 1.2  # 3×3-cell LH/HL energy beyond this many σ² marks texture
ROUNDS = 6
CLIP_MARGINS = (2.0, 1.5, 1.0, 0.5, 0.0)  # cell means kept this many σ inside the bounds
SAMPLE_PIXELS = 1 << 19  # larger images are estimated on a grid of tiles holding this many
SAMPLE_TILE = 128
MIN_CELLS = 64  # fewer usable cells than this: fall back to all of them


def _haar_cells(plane: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per 2×2 cell: HH, the mean, the larger of |LH| and |HL|, and the horizontal/vertical
    detail energy (LH² + HL²)/2 averaged over the 3×3 cells around it (orthonormal Haar)."""
    h, w = plane.shape
    x = plane[: h - h % 2, : w - w % 2].astype(np.float64)
    a, b = x[0::2, 0::2], x[0::2, 1::2]
    c, d = x[1::2, 0::2], x[1::2, 1::2]
    lh = (a + b - c - d) / 2.0
    hl = (a - b + c - d) / 2.0
    hh = (a - b - c + d) / 2.0
    mean = (a + b + c + d) / 4.0
    energy = _box3((lh * lh + hl * hl) / 2.0)
    detail = np.maximum(np.abs(lh), np.abs(hl))
    return hh.ravel(), mean.ravel(), detail.ravel(), energy.ravel()


def _box3(a: np.ndarray) -> np.ndarray:
    """Mean over each element's 3×3 neighbourhood (edges repeated)."""
    if a.size == 0:
        return a
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    return sum(p[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def _median_abs(values: np.ndarray, step: float) -> float:
    """median(|values|); for values on a grid of ``step`` (integer pixels: HH moves in halves)
    the median is interpolated inside its grid cell, else it jumps by a whole step (7 % of σ
    at σ = 10)."""
    v = np.abs(values)
    m = float(np.median(v))
    if step <= 0 or v.size == 0:
        return m
    below = np.count_nonzero(v < m - step / 2) / v.size
    within = np.count_nonzero(np.abs(v - m) <= step / 2) / v.size
    if within == 0:
        return m
    return max(0.0, m - step / 2 + step * (0.5 - below) / within)


def estimate_plane(plane: np.ndarray, low: float, high: float, step: float = 0.0) -> float:
    """σ of one 2-D plane whose values are clipped to [low, high] (``step``: value grid)."""
    hh, mean, detail, energy = _haar_cells(plane)
    if hh.size == 0:
        return 0.0
    cell_step = step / 2.0  # HH of integers moves in half steps
    sigma = _median_abs(hh, cell_step) / MAD_TO_SIGMA
    for _ in range(ROUNDS):
        if sigma <= 0:
            break
        flat = (detail < EDGE_FACTOR * sigma) & (energy < TEXTURE_FACTOR * sigma * sigma)
        # Far enough from the clipping bounds that clipping has not shrunk the noise; at high
        # noise little is that far, so the margin narrows until enough cells remain.
        for margin in CLIP_MARGINS:
            keep = flat & (mean > low + margin * sigma) & (mean < high - margin * sigma)
            if np.count_nonzero(keep) >= MIN_CELLS:
                break
        if np.count_nonzero(keep) < MIN_CELLS:
            break
        sigma = _median_abs(hh[keep], cell_step) / MAD_TO_SIGMA
    return sigma


def estimate_sigma(image: np.ndarray) -> float:
    """Gaussian noise σ of an H×W or H×W×C image, on the image's own value scale.

    uint8 -> 0-255, uint16 -> 0-65535, float -> its values' scale (clipping assumed at 0 and 1
    for floats). Colour channels are estimated separately, then their median is taken.
    """
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"expected an H×W or H×W×C image, got shape {x.shape}")
    step = 1.0 if np.issubdtype(x.dtype, np.integer) else 0.0
    if x.dtype == np.uint8:
        low, high = 0.0, 255.0
    elif x.dtype == np.uint16:
        low, high = 0.0, 65535.0
    else:
        low, high = 0.0, 1.0
    x = _sample(x)
    channels = 1 if x.shape[2] in (1, 2) else 3  # grey (+ alpha) or RGB(A): alpha is no noise
    return float(np.median([estimate_plane(x[:, :, k], low, high, step) for k in range(channels)]))


def _sample(x: np.ndarray) -> np.ndarray:
    """An image over ``SAMPLE_PIXELS``: tiles on an even grid across it, stacked, so a 12 MP
    photo costs what a 0.5 MP one does (2×2 cells never straddle two tiles)."""
    h, w = x.shape[:2]
    t = SAMPLE_TILE
    if h * w <= SAMPLE_PIXELS or h < t or w < t:
        return x
    per_side = max(1, int((SAMPLE_PIXELS / (t * t)) ** 0.5))
    rows = np.linspace(0, h - t, per_side).astype(int) // 2 * 2
    cols = np.linspace(0, w - t, per_side).astype(int) // 2 * 2
    return np.concatenate([x[r : r + t, c : c + t] for r in rows for c in cols], axis=0)


def estimate_sigma_255(image: np.ndarray) -> float:
    """:func:`estimate_sigma` on the 0-255 scale of n2nkit's noise specs, whatever the dtype
    (uint16 / 257, float images in [0, 1] × 255)."""
    x = np.asarray(image)
    sigma = estimate_sigma(x)
    if x.dtype == np.uint8:
        return sigma
    if x.dtype == np.uint16:
        return sigma / 257.0
    return sigma * 255.0


def parse_sigma_range(noise_range: str, noise: str = "") -> tuple[float, float] | None:
    """``"0-50"`` (metadata's ``noise_range``), else a ``gaussian:25`` / ``gaussian:0-50`` noise
    spec -> (low, high); None when neither says (another kind, or nothing recorded)."""
    text = noise_range.strip()
    if not text:
        kind, _, level = noise.strip().lower().partition(":")
        if kind != "gaussian" or not level:
            return None
        text = level
    low, sep, high = text.partition("-") if not text.startswith("-") else ("", "", "")
    try:
        lo = float(low)
        hi = float(high) if sep else lo
    except ValueError:
        return None
    return (lo, hi) if 0 <= lo <= hi else None


def format_sigma(value: float) -> str:
    """σ as people read it: whole numbers without a decimal point."""
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 or value >= 10 else f"{value:.1f}"


def outside_range_note(
    name: str, sigma: float, sigma_range: tuple[float, float] | None, tolerance: float = 0.1
) -> str | None:
    """One line when ``sigma`` lies outside the trained range (by more than ``tolerance`` of
    its upper end, the estimate's own error); None inside it or when the range is unknown."""
    if sigma_range is None:
        return None
    low, high = sigma_range
    slack = tolerance * max(high, 1.0)
    if low - slack <= sigma <= high + slack:
        return None
    return (
        f"{name}: estimated noise σ≈{format_sigma(sigma)} lies outside the model's trained "
        f"range {format_sigma(low)}–{format_sigma(high)}; to train for it: n2nkit train "
        "--noise gaussian:LOW-HIGH --init CHECKPOINT (docs/training.md)"
    )
