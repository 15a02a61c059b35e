"""onnxruntime backends: ``ort-cpu`` and ``ort-cuda`` for .onnx and .ort (ONNX Runtime Mobile)
files. onnxruntime is imported when a backend starts, never at module import.

``ort-cuda`` needs the ``onnxruntime-gpu`` package (``pip install 'n2nkit[gpu]'``) and a GPU
it can use. onnxruntime silently falls back to the CPU when its CUDA provider cannot start
(typically: cuDNN 9 or CUDA 12 libraries not on the loader path), so:

* ``onnxruntime.preload_dlls()`` (onnxruntime-gpu 1.21+) runs first, which loads CUDA and cuDNN
  from a CUDA 12 torch or the ``nvidia-*-cu12`` pip packages when they are installed;
* the session's providers are checked after loading: a CUDA backend that would really run on the
  CPU is refused with one line naming the first CUDA/cuDNN library that cannot be loaded.

The CUDA provider runs on ``device_id`` with ``cudnn_conv_algo_search="HEURISTIC"``: the default
(EXHAUSTIVE) benchmarks every convolution algorithm for each new input shape, and tiled images
bring new shapes all the time (onnxruntime's CUDA Execution Provider docs, "Configuration
Options").
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import (
    BackendError,
    MissingDependencyError,
    ModelFormatError,
    OutOfMemoryError,
    first_line,
    require,
)
from n2nkit.runtime.backend import Backend, out_of_memory
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
GPU_HINT = (
    "install onnxruntime-gpu with `pip install 'n2nkit[gpu]'` (uninstall onnxruntime first: "
    "the two packages overwrite each other) on a machine with an NVIDIA GPU and driver"
)


def onnxruntime(extra: str = "cpu") -> Any:
    """The onnxruntime module, or :class:`MissingDependencyError` naming the extra."""
    ort = require("onnxruntime", extra, "onnxruntime")
    ort.set_default_logger_severity(3)  # errors only: no raw warnings between n2nkit's lines
    return ort


# What onnxruntime-gpu's CUDA provider loads (CUDA 12.x, cuDNN 9.x builds), in load order.
CUDA_LIBRARIES = (
    ("CUDA 12 runtime", "libcudart.so.12", "cudart64_12.dll"),
    ("CUDA 12 cuBLAS", "libcublasLt.so.12", "cublasLt64_12.dll"),
    ("CUDA 12 cuBLAS", "libcublas.so.12", "cublas64_12.dll"),
    ("CUDA 12 cuFFT", "libcufft.so.11", "cufft64_11.dll"),
    ("cuDNN 9", "libcudnn.so.9", "cudnn64_9.dll"),
)
CUDA_LIBRARY_HINT = (
    "install CUDA 12 and cuDNN 9 where onnxruntime finds them, e.g. `pip install "
    "nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 nvidia-cufft-cu12 nvidia-cudnn-cu12` or a "
    "CUDA 12 build of torch (onnxruntime.preload_dlls() loads either)"
)
_preloaded = False


def preload_cuda_libraries(ort: Any) -> None:
    """``onnxruntime.preload_dlls()`` once, where this onnxruntime has it (onnxruntime-gpu
    1.21+); it only finds what is installed, so a failure here is left to the provider check."""
    global _preloaded
    preload = getattr(ort, "preload_dlls", None)
    if preload is None or _preloaded:
        return
    _preloaded = True
    # Nothing to preload from is no error here: the session check names what is missing.
    with contextlib.suppress(Exception):
        preload()


def missing_cuda_library(load: Any = None) -> str | None:
    """The first CUDA/cuDNN library onnxruntime's CUDA provider needs that cannot be loaded
    here, as "cuDNN 9 (libcudnn.so.9)"; None when all load."""
    import ctypes
    import sys

    load = load or ctypes.CDLL
    for what, linux, windows in CUDA_LIBRARIES:
        name = windows if sys.platform == "win32" else linux
        try:
            load(name)
        except OSError:
            return f"{what} ({name})"
    return None


def cuda_provider_options(device_id: int) -> dict[str, Any]:
    """Options of the CUDA execution provider (see the module docstring)."""
    return {"device_id": int(device_id), "cudnn_conv_algo_search": "HEURISTIC"}


def cuda_provider_available() -> bool:
    """Whether the installed onnxruntime has a CUDA provider (cheap; does not touch the GPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return CUDA_PROVIDER in ort.get_available_providers()


class OrtBackend(Backend):
    """One onnxruntime ``InferenceSession``; its ``run`` is safe to call from several threads."""

    def __init__(
        self, path: Path, device: str = "cpu", threads: int | None = None, device_id: int = 0
    ) -> None:
        ort = onnxruntime("gpu" if device == "cuda" else "cpu")
        path = Path(path)
        self.name = f"ort-{device}"
        self.device_id = int(device_id)
        if device == "cuda" and CUDA_PROVIDER not in ort.get_available_providers():
            raise MissingDependencyError("onnxruntime's CUDA execution provider", GPU_HINT)
        if device == "cuda":
            preload_cuda_libraries(ort)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the CUDA provider is chatty
        if threads:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        providers: list[Any] = [CPU_PROVIDER]
        if device == "cuda":
            providers.insert(0, (CUDA_PROVIDER, cuda_provider_options(self.device_id)))
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            reason = first_line(exc)
            raise ModelFormatError(f"{path} is not a loadable ONNX model: {reason}") from None
        if device == "cuda" and CUDA_PROVIDER not in self.session.get_providers():
            self.session = None  # type: ignore[assignment]
            missing = missing_cuda_library()
            if missing is not None:
                raise BackendError(
                    f"onnxruntime's CUDA provider ({missing} could not be loaded)",
                    CUDA_LIBRARY_HINT,
                )
            raise BackendError(f"a CUDA GPU {self.device_id} that onnxruntime can use", GPU_HINT)
        self.threads = threads
        props = self.session.get_modelmeta().custom_metadata_map
        super().__init__(path, ModelMetadata.from_props(props, source=path.name))
        self._check_io()

    def _check_io(self) -> None:
        """Refuse a model whose inputs/outputs are not the runtime contract's."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        for values, name in ((inputs, INPUT_NAME), (outputs, OUTPUT_NAME)):
            if len(values) != 1 or values[0].name != name:
                found = ", ".join(v.name for v in values)
                raise ModelFormatError(
                    f"{self.path.name} has tensors [{found}]; the runtime needs one named {name!r}"
                )
            value = values[0]
            if value.type != "tensor(float)" or len(value.shape) != 4:
                raise ModelFormatError(
                    f"{self.path.name}: {name!r} is {value.type} of rank {len(value.shape)}; "
                    "the runtime needs float32 N×C×H×W"
                )
            channels = value.shape[1]
            if isinstance(channels, int) and channels != self.metadata.channels:
                raise ModelFormatError(
                    f"{self.path.name}: {name!r} has {channels} channels but its metadata says "
                    f"{self.metadata.channels}"
                )
            if name != INPUT_NAME:
                continue  # what comes out is checked at each call
            batch, height, width = value.shape[0], value.shape[2], value.shape[3]
            if isinstance(height, int) or isinstance(width, int):
                raise ModelFormatError(
                    f"{self.path.name}: {name!r} has a fixed size "
                    f"{'×'.join(str(d) for d in value.shape)}; the runtime needs free height and "
                    "width (export it with `n2nkit export`)"
                )
            if isinstance(batch, int):
                self.max_batch = batch if self.max_batch is None else min(self.max_batch, batch)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """One ``session.run``; what onnxruntime raises (its own exception types, which derive
        from Exception only) becomes one line naming the input's size."""
        import re

        import onnxruntime as ort

        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # the exception below says it; no second, logged line
        try:
            return self.session.run([OUTPUT_NAME], {INPUT_NAME: x}, quiet)[0]
        except MemoryError:
            raise OutOfMemoryError(out_of_memory(x.shape)) from None
        except Exception as exc:
            if not type(exc).__module__.startswith("onnxruntime"):
                raise
            reason = first_line(exc)
            if "failed to allocate" in reason.lower():
                size = re.search(r"buffer of size (\d+)", reason)
                detail = f" (a buffer of {int(size[1]) / 2**20:,.0f} MiB)" if size else ""
                raise OutOfMemoryError(out_of_memory(x.shape) + detail) from None
            shape = "×".join(map(str, x.shape))
            name = self.path.name
            raise ModelFormatError(f"{name} failed on a {shape} input: {reason}") from None

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
