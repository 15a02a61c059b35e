"""Deployment targets that ``n2nkit compare`` measures: backend + artifact + threads + sizes.

Each target names the artifact kind it needs from an export folder (``fp32``, ``fp16``,
``int8``, ``ort``, ``trt-fp32``, ``trt-fp16``, ``trt-int8``:
:data:`n2nkit.runtime.artifacts.KINDS`), so a target whose artifact or backend is missing is
reported as skipped with the reason, never dropped. The PyTorch targets come first (as in
Ultralytics' benchmark): they need the training checkpoint (:data:`CHECKPOINT`) and run the
network in torch (:mod:`.torch_target`).
"""

from __future__ import annotations

from dataclasses import dataclass

from n2nkit.errors import UnknownNameError
from n2nkit.runtime.artifacts import BY_KIND

# (height, width, batch). Whole photos on desktops; phone-camera tiles and frames, and the
# report's own 32×32 batch-400 workload, on mobile-like targets.
DESKTOP_SIZES = ((1080, 1920, 1), (512, 768, 1))
MOBILE_SIZES = ((512, 512, 1), (720, 1280, 1), (32, 32, 400))
REFERENCE_SIZE = (720, 1280, 1)  # the size the PSNR-vs-latency plot uses
CHECKPOINT = "checkpoint"  # the artifact of the PyTorch targets: best.pt (or last.pt)


@dataclass(frozen=True)
class Target:
    name: str
    group: str  # desktop-gpu | desktop-cpu | mobile-like
    backend: str  # runtime backend: ort-cpu | ort-cuda | trt
    artifact: str  # which export artifact it runs
    threads: int | None  # None: all cores (CPU) or n/a (GPU)
    sizes: tuple[tuple[int, int, int], ...]
    description: str
    precision: str = "fp32"  # torch targets: the autocast dtype (fp32 = none)

    def __post_init__(self) -> None:
        if self.artifact not in BY_KIND and self.artifact != CHECKPOINT:  # a typo here would
            # skip the target forever
            raise ValueError(f"target {self.name}: unknown artifact kind {self.artifact!r}")


def _torch(device: str, precision: str, group: str, sizes, description: str) -> Target:
    name = f"pytorch-{device}-{precision}"
    return Target(name, group, f"torch-{device}", CHECKPOINT, None, sizes, description, precision)


TARGETS: tuple[Target, ...] = (
    _torch(
        "cpu",
        "fp32",
        "desktop-cpu",
        DESKTOP_SIZES,
        "PyTorch eager, the checkpoint itself, FP32, channels-last, all cores: the reference",
    ),
    _torch("cuda", "fp32", "desktop-gpu", DESKTOP_SIZES, "PyTorch on CUDA, FP32, channels-last"),
    _torch(
        "cuda",
        "fp16",
        "desktop-gpu",
        DESKTOP_SIZES,
        "PyTorch on CUDA, FP16 autocast, channels-last",
    ),
    _torch(
        "cuda",
        "bf16",
        "desktop-gpu",
        DESKTOP_SIZES,
        "PyTorch on CUDA, BF16 autocast, channels-last (compute capability >= 8.0)",
    ),
    Target(
        "gpu-trt-fp16",
        "desktop-gpu",
        "trt",
        "trt-fp16",
        None,
        DESKTOP_SIZES,
        "TensorRT FP16 engine",
    ),
    Target(
        "gpu-trt-fp32",
        "desktop-gpu",
        "trt",
        "trt-fp32",
        None,
        DESKTOP_SIZES,
        "TensorRT FP32 engine",
    ),
    Target(
        "gpu-trt-int8",
        "desktop-gpu",
        "trt",
        "trt-int8",
        None,
        DESKTOP_SIZES,
        "TensorRT INT8 engine (explicit Q/DQ, built by export --trt)",
    ),
    Target(
        "gpu-ort-cuda",
        "desktop-gpu",
        "ort-cuda",
        "fp32",
        None,
        DESKTOP_SIZES,
        "onnxruntime CUDA execution provider, FP32 ONNX",
    ),
    Target(
        "cpu-fp32",
        "desktop-cpu",
        "ort-cpu",
        "fp32",
        None,
        DESKTOP_SIZES,
        "onnxruntime CPU, FP32 ONNX, all cores",
    ),
    Target(
        "mobile-int8-1t",
        "mobile-like",
        "ort-cpu",
        "int8",
        1,
        MOBILE_SIZES,
        "INT8 QDQ ONNX, 1 thread",
    ),
    Target(
        "mobile-int8-2t",
        "mobile-like",
        "ort-cpu",
        "int8",
        2,
        MOBILE_SIZES,
        "INT8 QDQ ONNX, 2 threads",
    ),
    Target(
        "mobile-fp16-1t",
        "mobile-like",
        "ort-cpu",
        "fp16",
        1,
        MOBILE_SIZES,
        "FP16 ONNX (float32 I/O), 1 thread",
    ),
    Target(
        "mobile-fp16-2t",
        "mobile-like",
        "ort-cpu",
        "fp16",
        2,
        MOBILE_SIZES,
        "FP16 ONNX (float32 I/O), 2 threads",
    ),
    Target(
        "mobile-ort-1t",
        "mobile-like",
        "ort-cpu",
        "ort",
        1,
        MOBILE_SIZES,
        "ORT format (ONNX Runtime Mobile), 1 thread",
    ),
    Target(
        "mobile-ort-2t",
        "mobile-like",
        "ort-cpu",
        "ort",
        2,
        MOBILE_SIZES,
        "ORT format (ONNX Runtime Mobile), 2 threads",
    ),
    Target(
        "mobile-fp32-1t",
        "mobile-like",
        "ort-cpu",
        "fp32",
        1,
        MOBILE_SIZES,
        "FP32 ONNX, 1 thread: the reference for the INT8/FP16 speed-ups",
    ),
    Target(
        "mobile-fp32-2t", "mobile-like", "ort-cpu", "fp32", 2, MOBILE_SIZES, "FP32 ONNX, 2 threads"
    ),
)


def target_names() -> list[str]:
    return [t.name for t in TARGETS]


def target_groups() -> list[str]:
    return sorted({t.group for t in TARGETS})


def select_targets(names: list[str] | None) -> list[Target]:
    """Targets by name or group name (``mobile-like``); ``None`` or ``[]`` means all."""
    if not names:
        return list(TARGETS)
    chosen: list[Target] = []
    for name in names:
        matches = [t for t in TARGETS if name in (t.name, t.group)]
        if not matches:
            raise UnknownNameError("target", name, target_names() + target_groups())
        chosen += [t for t in matches if t not in chosen]
    return chosen
