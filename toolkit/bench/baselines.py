"""Classical denoisers for context in ``n2nkit compare``: non-local means and BM3D.

Non-local means uses scikit-image with h = 0.6σ, 5×5 patches and a 13×13 search window
(fast mode): on coffee + flower at σ = 25 (unclipped Gaussian noise) it gives 31.6 dB, the
figure the project's issues quote. BM3D runs only when the optional ``bm3d`` package is
installed (`pip install bm3d`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    run: Callable[[np.ndarray, float], np.ndarray]  # (H×W×3 float image, sigma in [0,1]) -> image
    available: Callable[[], str | None]  # None when usable, else the reason it is not


def _nlm(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(
        image,
        h=0.6 * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )


def _nlm_available() -> str | None:
    try:
        import skimage.restoration  # noqa: F401
    except ImportError:
        return "scikit-image is not installed (pip install 'n2nkit[training]')"
    return None


def _bm3d(image: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return bm3d.bm3d_rgb(image, sigma)


def _bm3d_available() -> str | None:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return "the bm3d package is not installed (pip install bm3d)"
    return None


BASELINES: tuple[Baseline, ...] = (
    Baseline("nlm", "non-local means (scikit-image, h=0.6σ, fast mode)", _nlm, _nlm_available),
    Baseline("bm3d", "BM3D (bm3d package, RGB)", _bm3d, _bm3d_available),
)


def sigma_of(noise_spec: str) -> float | None:
    """σ in [0,1] units for a fixed-level ``gaussian:S`` spec; None when the baselines can't
    be told the noise level (other kinds, ranges)."""
    kind, _, level = noise_spec.partition(":")
    if kind != "gaussian" or "-" in level:
        return None
    try:
        return float(level) / 255.0
    except ValueError:
        return None
