"""The PyTorch rows of ``n2nkit compare``: the checkpoint's network run by torch itself.

As Ultralytics' benchmark starts with its PyTorch format, ``compare`` starts with the network as
it was trained: eager torch on the CPU in FP32 (the reference every export is compared with)
and, on CUDA, FP32, FP16 and BF16 autocast — the desktop-GPU row a machine without TensorRT can
measure. Inputs are channels-last (the fast layout for cuDNN and oneDNN convolutions);
``compile=True`` (``n2nkit compare --torch-compile``) runs ``torch.compile``, in
``reduce-overhead`` mode on CUDA, which replays CUDA graphs (one launch per image instead of
one per layer).

:class:`TorchBackend` keeps the runtime's :class:`~n2nkit.runtime.backend.Backend` contract, so
the worker wraps it in the same :class:`~n2nkit.runtime.Denoiser` as every other row: padding,
tiling, channel handling and the timed work around the network are identical, and only the
network's executor differs. The runtime itself never imports torch; this module is imported
lazily by the worker, for the torch rows only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import BackendError
from n2nkit.runtime.backend import Backend

TORCH_BACKENDS = ("torch-cpu", "torch-cuda")
PRECISIONS = ("fp32", "fp16", "bf16")


def _unavailable(backend: str, precision: str) -> str | None:
    """Why ``backend`` in ``precision`` cannot run here (None: it can)."""
    import torch

    if backend == "torch-cpu":
        return None if precision == "fp32" else f"{precision} torch rows are measured on CUDA"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch (a CPU build, or no driver)"
    if precision == "bf16" and torch.cuda.get_device_capability()[0] < 8:
        name = torch.cuda.get_device_name()
        return f"{name} has no native bfloat16 (compute capability < 8.0)"
    return None


class TorchBackend(Backend):
    """A checkpoint's network in torch, eager or compiled, float32 N×C×H×W in and out."""

    def __init__(
        self,
        checkpoint: Path,
        backend: str = "torch-cpu",
        precision: str = "fp32",
        *,
        compile: bool = False,
        threads: int | None = None,
    ) -> None:
        if backend not in TORCH_BACKENDS or precision not in PRECISIONS:
            raise ValueError(f"unknown torch backend {backend!r} / precision {precision!r}")
        reason = _unavailable(backend, precision)
        if reason:
            raise BackendError(f"{backend} {precision}", reason)
        import torch

        from n2nkit.export.onnx_export import metadata_for
        from n2nkit.training.checkpoint import load_model

        model, ckpt = load_model(Path(checkpoint))
        super().__init__(Path(checkpoint), metadata_for(model, ckpt, precision))
        self.name = backend
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda" if backend == "torch-cuda" else "cpu")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # few fixed shapes: pick the fastest kernels
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.net = model.to(self.device, memory_format=torch.channels_last).eval()
        if compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None  # CUDA graphs
            self.net = torch.compile(self.net, mode=mode, dynamic=False)
        self._torch = torch

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        t = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.dtype is None:
                y = self.net(t)
            else:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    y = self.net(t)
            # .cpu() waits for the GPU: the time measured is the time to the result
            return y.float().cpu().numpy()

    def close(self) -> None:
        self.net = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()


def open_denoiser(job: dict[str, Any]) -> Any:
    """The compare worker's denoiser for a torch row (``job``: artifact = the checkpoint,
    backend, threads, precision, compile), padded and tiled by the runtime's Denoiser."""
    from n2nkit.runtime import Denoiser

    backend = TorchBackend(
        Path(job["artifact"]),
        job["backend"],
        job.get("precision", "fp32"),
        compile=bool(job.get("compile")),
        threads=job.get("threads"),
    )
    return Denoiser(backend)
