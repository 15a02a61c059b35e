"""The self-ensemble ("quality mode"): average the model over the 8 flips/rotations of the image.

A U-Net trained with flip/rotation augmentation is close to equivariant but not exactly; its
errors under the 8 symmetries of the square are partly independent, so their average is a
slightly better estimate (Lim et al., EDSR's "geometric self-ensemble"). It costs 8 model runs
per image; docs/runtime.md gives the measured gain and cost.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SYMMETRIES = tuple((k, flip) for k in range(4) for flip in (False, True))


def _forward(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = np.rot90(x, k, axes=(-2, -1))
    return y[..., ::-1] if flip else y


def _inverse(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
    if flip:
        y = y[..., ::-1]
    return np.rot90(y, -k, axes=(-2, -1))


def self_ensemble(x: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Mean of ``run`` over the 8 symmetries of ``x`` (…×H×W arrays), each mapped back.

    ``run`` must accept the transposed shape (W×H) as well: sides padded to the model's
    multiple stay multiples when swapped.
    """
    total = np.zeros(x.shape, dtype=np.float32)
    for k, flip in SYMMETRIES:
        out = run(np.ascontiguousarray(_forward(x, k, flip)))
        total += _inverse(out, k, flip)
    return total / len(SYMMETRIES)


class EnsembleBackend:
    """A backend whose every call is the mean over the 8 symmetries (8× the work).

    Wrapping the backend, rather than the image, keeps every path of :class:`Denoiser` (whole
    images, batches, streamed tiles) the same: each tile is averaged on its own.
    """

    def __init__(self, inner) -> None:
        self._inner = inner

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self_ensemble(x, self._inner.infer)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)
