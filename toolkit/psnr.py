"""PSNR, one rule everywhere (numpy; :mod:`n2nkit.training.metrics` has the torch twin).

The MSE is floored at :data:`MIN_MSE` × max² (100 dB): a noise-free crop (blind noise ranges
start at 0, and 8-bit rounding can cancel small noise) must not make a mean infinite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_MSE = 1e-10  # relative to max_val**2: the 100 dB cap


def psnr(a: Any, b: Any, max_val: float | None = None) -> float:
    """PSNR in dB of one image (or a whole array); uint8 input defaults to max 255, else 1."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr needs equal shapes, got {a.shape} and {b.shape}")
    if max_val is None:
        max_val = 255.0 if a.dtype == np.uint8 else 1.0
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * float(np.log10(max_val**2 / max(mse, MIN_MSE * max_val**2)))
