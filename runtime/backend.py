"""The contract every inference backend keeps, in the manner of Polygraphy's runners.

:meth:`Backend.infer` checks the input against the model's metadata, calls the backend's own
:meth:`Backend._infer`, and checks what comes back; each backend (:mod:`.ort_backend`,
:mod:`.trt_backend`) implements only loading, ``_infer`` and ``close``. Inputs and outputs are
always float32 N×C×H×W in [0, 1], whatever precision the weights have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import ModelFormatError, UserInputError
from n2nkit.runtime.metadata import ModelMetadata

BACKENDS = ("ort-cpu", "ort-cuda", "trt")


def out_of_memory(shape: tuple[int, ...]) -> str:
    """What to tell a user whose model ran out of memory on an input of ``shape``."""
    size = "×".join(map(str, shape))
    return (
        f"out of memory running the model on a {size} input: give a smaller tile "
        "(--tile, or Denoiser.load(tile=...))"
    )


class Backend(ABC):
    """A loaded model on one backend. Use as a context manager, or call :meth:`close`."""

    name: str = ""

    def __init__(self, path: Path, metadata: ModelMetadata) -> None:
        self.path = Path(path)
        self.metadata = metadata
        if metadata.channels not in (1, 3):
            raise ModelFormatError(
                f"{self.path.name} takes {metadata.channels} channels; the runtime feeds 1 "
                "(grey) or 3 (RGB)"
            )

    # Limits of one call; None means the backend takes any size (onnxruntime).
    max_batch: int | None = None
    max_side: int | None = None

    def fits(self, batch: int, height: int, width: int) -> bool:
        """Whether one call may take this shape (TensorRT engines have profile limits)."""
        return (self.max_batch is None or batch <= self.max_batch) and (
            self.max_side is None or max(height, width) <= self.max_side
        )

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run the model on float32 N×C×H×W ``x`` whose sides fit the model; same shape out."""
        meta = self.metadata
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[1] != meta.channels:
            raise UserInputError(
                f"{self.name} takes float32 N×{meta.channels}×H×W, got {x.dtype} {x.shape}"
            )
        h, w = x.shape[2:]
        m = meta.size_multiple
        if h % m or w % m or min(h, w) < meta.min_side:
            raise UserInputError(
                f"sides {h}×{w} must be multiples of {m} and at least {meta.min_side} "
                "(Denoiser pads for you)"
            )
        out = self._infer(np.ascontiguousarray(x))
        if out.shape != x.shape:
            raise ModelFormatError(
                f"{self.path.name} returned shape {out.shape} for input {x.shape}: not a "
                "denoiser that keeps the image size"
            )
        check_finite(out, self.path.name)
        return out

    @abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def close(self) -> None:
        """Release the backend's resources (sessions, GPU memory)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.name!r}, {self.metadata.variant})"


def check_finite(out: np.ndarray, source: str) -> None:
    """Refuse NaN or infinite outputs, which would be written as black or white pixels.

    The float64 sum is NaN or infinite exactly when some value is (outputs lie near [0, 1], so
    the sum cannot overflow), and costs no image-sized temporary array.
    """
    if not np.isfinite(np.sum(out, dtype=np.float64)):
        raise ModelFormatError(
            f"{source} produced NaN or infinite values (a broken export or a diverged model): "
            "nothing was written"
        )
