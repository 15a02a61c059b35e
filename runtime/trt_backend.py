"""TensorRT backend (``trt``): runs ``.engine`` files built by ``n2nkit export --trt``.

No torch: device memory, copies and the stream go through NVIDIA's ``cuda-python`` bindings, as
Polygraphy's TensorRT runner does with its small CUDA wrapper. Both ``tensorrt`` and
``cuda-python`` come with ``pip install 'n2nkit[gpu]'``.

A serialized engine only runs on the TensorRT version and the GPU model it was built for. The
sidecar ``<engine>.json`` written at build time records both; :func:`check_compatible` compares
them with this machine and refuses a foreign engine with a message that says to rebuild it,
rather than letting TensorRT fail (or silently slow down) at deserialization.

One execution context per optimisation profile, all made when the engine loads, with
``ExecutionContextAllocationStrategy.USER_MANAGED``: the default (STATIC) makes every context
reserve the activation memory of the engine's *largest* profile. Since a lock serialises calls
(an execution context is not thread-safe), the contexts share one scratch buffer sized for the
largest profile's need (``get_device_memory_size_for_profile_v2``) and one input and one output
buffer sized for the largest profile shape. Everything is allocated at load, so a GPU without
room raises :class:`~n2nkit.errors.BackendError` there and ``auto`` moves on to the next
backend. :meth:`TrtBackend.close` (or ``with``) frees it all; it is idempotent.

CUDA handles are passed to TensorRT as ``int(handle)``: a cuda-python handle object converts to
the handle's value, while its ``getPtr()`` is the address of the Python object's storage.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import BackendError, MissingDependencyError, ModelFormatError
from n2nkit.runtime.backend import Backend
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata

SIDECAR_FORMAT = "n2nkit.tensorrt-engine"
GPU_HINT = "install it with `pip install 'n2nkit[gpu]'` on a machine with an NVIDIA GPU and driver"
REBUILD = "rebuild it on this machine with `n2nkit export --trt`"


def sidecar_path(engine: Path) -> Path:
    return Path(engine).with_name(Path(engine).name + ".json")


def read_sidecar(engine: Path) -> dict[str, Any]:
    """The JSON written beside an engine at build time, checked for the keys the runtime needs."""
    path = sidecar_path(engine)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(
            f"{Path(engine).name} has no sidecar {path.name} (TensorRT version, GPU, metadata): "
            f"{REBUILD}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{path.name} is not a readable engine sidecar: {exc}") from None
    needed = ("tensorrt_version", "gpu", "compute_capability", "metadata")
    if not isinstance(info, dict) or info.get("format") != SIDECAR_FORMAT:
        raise ModelFormatError(f"{path.name} is not an n2nkit engine sidecar")
    missing = [k for k in needed if k not in info]
    if missing:
        raise ModelFormatError(f"{path.name} lacks {', '.join(missing)}: {REBUILD}")
    return info


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


def cudart() -> Any:
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
        self.rt = cudart()

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
    """A cuda-python handle (``cudaStream_t``) or device pointer (an int) as the integer
    TensorRT takes. ``int()`` gives the handle's value; ``getPtr()`` would give the address
    where the Python object keeps it, which is not a stream."""
    return int(obj)


def scratch_sizes(engine: Any) -> list[int]:
    """Activation memory each optimisation profile needs (bytes)."""
    per_profile = getattr(engine, "get_device_memory_size_for_profile_v2", None)
    if per_profile is None:  # TensorRT 10.0
        per_profile = engine.get_device_memory_size_for_profile
    return [int(per_profile(i)) for i in range(engine.num_optimization_profiles)]


def user_managed_contexts(engine: Any, trt: Any, name: str) -> list[Any]:
    """One execution context per profile that reserves no device memory of its own, or
    :class:`BackendError` when TensorRT cannot make one (it returns None, e.g. out of memory)."""
    strategy = trt.ExecutionContextAllocationStrategy.USER_MANAGED
    contexts = []
    for index in range(engine.num_optimization_profiles):
        context = engine.create_execution_context(strategy)
        if context is None:
            raise BackendError(
                f"a TensorRT execution context for {name} (profile {index})",
                "TensorRT could not create one, most likely the GPU is out of memory; free GPU "
                "memory or rebuild with a smaller `--trt-profile`",
            )
        contexts.append(context)
    return contexts


def _bind_memory(context: Any, pointer: int, size: int) -> None:
    if hasattr(context, "set_device_memory"):  # TensorRT 10.1+
        context.set_device_memory(pointer, size)
    else:
        context.device_memory = pointer


class TrtBackend(Backend):
    """A deserialized engine with one context per profile, sharing one scratch buffer and one
    pair of I/O buffers. Use as a context manager, or call :meth:`close`."""

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
        self._lock = threading.Lock()
        self._stream: Any = None
        self._buffers: list[int] = []  # device pointers: scratch, input, output
        self._contexts: list[Any] = []
        try:
            self._allocate(trt, path.name)
        except BaseException:
            self.close()
            raise

    def _allocate(self, trt: Any, name: str) -> None:
        cuda = self._cuda
        self._stream = cuda.call("cudaStreamCreate")
        scratch = max(scratch_sizes(self.engine), default=0)
        largest = max(int(np.prod(p[2])) for p in self.profiles) * 4  # float32 I/O
        for size in (max(scratch, 1), largest, largest):
            try:
                self._buffers.append(cuda.call("cudaMalloc", size))
            except MissingDependencyError:
                raise BackendError(
                    f"{size / 2**20:.0f} MiB of GPU memory for {name}",
                    "free GPU memory or rebuild with a smaller `--trt-profile`",
                ) from None
        self._contexts = user_managed_contexts(self.engine, trt, name)
        for index, context in enumerate(self._contexts):
            _bind_memory(context, self._buffers[0], max(scratch, 1))
            if not context.set_optimization_profile_async(index, _handle(self._stream)):
                raise ModelFormatError(f"{name}: cannot select optimisation profile {index}")
        cuda.call("cudaStreamSynchronize", self._stream)

    def _profile(self, shape: tuple[int, ...]) -> int | None:
        for index, (low, _, high) in enumerate(self.profiles):
            if all(lo <= v <= hi for v, lo, hi in zip(shape, low, high, strict=True)):
                return index
        return None

    def fits(self, batch: int, height: int, width: int) -> bool:
        return self._profile((batch, self.metadata.channels, height, width)) is not None

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
            if not self._contexts:
                raise ModelFormatError(f"{self.path.name}: the TensorRT backend is closed")
            context, (_, d_in, d_out) = self._contexts[index], self._buffers
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
        """Free the contexts, device buffers and stream now (safe to call twice)."""
        with self._lock:
            self._contexts.clear()  # contexts go before the memory they were bound to
            for pointer in self._buffers:
                self._cuda.rt.cudaFree(pointer)
            self._buffers.clear()
            if self._stream is not None:
                self._cuda.rt.cudaStreamDestroy(self._stream)
                self._stream = None
