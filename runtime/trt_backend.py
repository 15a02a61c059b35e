"""TensorRT backend (``trt``): runs ``.engine`` files built by ``n2nkit export --trt``.

No torch: device memory, copies and the stream go through NVIDIA's ``cuda-python`` bindings, as
Polygraphy's TensorRT runner does with its small CUDA wrapper. Both ``tensorrt`` and
``cuda-python`` come with ``pip install 'n2nkit[gpu]'``.

A serialized engine only runs on the TensorRT version and the GPU model it was built for. The
sidecar ``<engine>.json`` written at build time records both; :func:`check_compatible` compares
them with this machine and refuses a foreign engine with a message that says to rebuild it,
rather than letting TensorRT fail (or silently slow down) at deserialization.

One execution context per optimisation profile, device buffers sized for each profile's largest
shape, allocated once. A lock serialises calls: an execution context is not thread-safe.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import MissingDependencyError, ModelFormatError
from n2nkit.runtime.artifacts import REBUILD, read_sidecar
from n2nkit.runtime.backend import Backend
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata

GPU_HINT = "install it with `pip install 'n2nkit[gpu]'` on a machine with an NVIDIA GPU and driver"


def check_compatible(info: dict[str, Any], tensorrt_version: str, gpu: str, capability: str,
                     engine: str = "engine") -> None:  # fmt: skip
    """Raise :class:`ModelFormatError` unless the engine was built by this TensorRT version for
    this GPU model (engines are not portable across either)."""
    built = info["tensorrt_version"]
    if built != tensorrt_version:
        raise ModelFormatError(
            f"{engine} was built with TensorRT {built}, this machine has TensorRT "
            f"{tensorrt_version}: {REBUILD}"
        )
    if info["compute_capability"] != capability or info["gpu"] != gpu:
        raise ModelFormatError(
            f"{engine} was built for {info['gpu']} (compute capability "
            f"{info['compute_capability']}), this machine has {gpu} ({capability}): {REBUILD}"
        )


def tensorrt_module() -> Any:
    """The ``tensorrt`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError("TensorRT (Python package `tensorrt`)", GPU_HINT) from None
    return tensorrt


def _cudart() -> Any:
    """cuda-python's runtime API (module path changed in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise MissingDependencyError("cuda-python (CUDA runtime bindings)", GPU_HINT) from None
    return runtime


class _Cuda:
    """The few CUDA runtime calls the backend needs, each checked."""

    def __init__(self) -> None:
        self.rt = _cudart()

    def call(self, name: str, *args: Any) -> Any:
        result = getattr(self.rt, name)(*args)
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise MissingDependencyError(
                f"a working CUDA GPU ({name} failed with {err})",
                "check the NVIDIA driver and that a GPU is visible",
            )
        return rest[0] if len(rest) == 1 else rest

    def device(self) -> tuple[str, str]:
        props = self.call("cudaGetDeviceProperties", self.call("cudaGetDevice"))
        name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(
            props.name, bytes) else str(props.name)  # fmt: skip
        return name, f"{props.major}.{props.minor}"


def _handle(obj: Any) -> int:
    """A cuda-python handle (stream, pointer) as the integer TensorRT takes."""
    try:
        return int(obj)
    except TypeError:
        return int(obj.getPtr())


class TrtBackend(Backend):
    """A deserialized engine with one context and one pair of device buffers per profile."""

    name = "trt"

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"engine not found: {path}")
        info = read_sidecar(path)
        trt = tensorrt_module()
        self._cuda = cuda = _Cuda()
        gpu, capability = cuda.device()
        check_compatible(info, trt.__version__, gpu, capability, path.name)
        super().__init__(path, ModelMetadata.from_props(info["metadata"], source=path.name))

        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelFormatError(f"TensorRT could not load {path.name}: {REBUILD}")
        for name in (INPUT_NAME, OUTPUT_NAME):
            if self.engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ModelFormatError(f"{path.name}: {name!r} is not float32")
        self.profiles = [
            tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(INPUT_NAME, i))
            for i in range(self.engine.num_optimization_profiles)
        ]  # (min, opt, max) N×C×H×W per profile
        self.max_batch = max(p[2][0] for p in self.profiles)
        self.max_side = max(min(p[2][2], p[2][3]) for p in self.profiles)
        self._stream = cuda.call("cudaStreamCreate")
        self._slots: dict[int, tuple[Any, int, int]] = {}  # profile -> (context, d_in, d_out)
        self._lock = threading.Lock()

    def _profile(self, shape: tuple[int, ...]) -> int | None:
        for index, (low, _, high) in enumerate(self.profiles):
            if all(lo <= v <= hi for v, lo, hi in zip(shape, low, high, strict=True)):
                return index
        return None

    def fits(self, batch: int, height: int, width: int) -> bool:
        return self._profile((batch, self.metadata.channels, height, width)) is not None

    def _slot(self, index: int) -> tuple[Any, int, int]:
        if index not in self._slots:
            context = self.engine.create_execution_context()
            context.set_optimization_profile_async(index, _handle(self._stream))
            largest = int(np.prod(self.profiles[index][2])) * 4  # float32
            d_in = self._cuda.call("cudaMalloc", largest)
            d_out = self._cuda.call("cudaMalloc", largest)
            self._slots[index] = (context, d_in, d_out)
        return self._slots[index]

    def _infer(self, x: np.ndarray) -> np.ndarray:
        index = self._profile(x.shape)
        if index is None:
            raise ModelFormatError(
                f"input {x.shape} lies outside every optimisation profile of {self.path.name}; "
                "rebuild with a wider `--trt-profile`"
            )
        out = np.empty_like(x)
        cuda, kind = self._cuda, self._cuda.rt.cudaMemcpyKind
        with self._lock:
            context, d_in, d_out = self._slot(index)
            stream = self._stream
            context.set_input_shape(INPUT_NAME, x.shape)
            context.set_tensor_address(INPUT_NAME, _handle(d_in))
            context.set_tensor_address(OUTPUT_NAME, _handle(d_out))
            cuda.call("cudaMemcpyAsync", d_in, x.ctypes.data, x.nbytes,
                      kind.cudaMemcpyHostToDevice, stream)  # fmt: skip
            if not context.execute_async_v3(_handle(stream)):
                raise RuntimeError(f"TensorRT failed to run {self.path.name}")
            cuda.call("cudaMemcpyAsync", out.ctypes.data, d_out, out.nbytes,
                      kind.cudaMemcpyDeviceToHost, stream)  # fmt: skip
            cuda.call("cudaStreamSynchronize", stream)
        return out

    def close(self) -> None:
        with self._lock:
            for _, d_in, d_out in self._slots.values():
                self._cuda.rt.cudaFree(d_in)
                self._cuda.rt.cudaFree(d_out)
            self._slots.clear()
            if self._stream is not None:
                self._cuda.rt.cudaStreamDestroy(self._stream)
                self._stream = None
