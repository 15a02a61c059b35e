"""ONNX -> TensorRT engine (FP32, FP16, or INT8 from the QDQ model) with a JSON sidecar.

One engine per precision holds two optimisation profiles by default, because one profile can
not cover both workloads: TensorRT sizes activation memory for a profile's *max* shape, and a
max of batch 400 × 2048² would need hundreds of GB.

* ``patches`` (profile 0): min 1×32×32, opt 400×32×32 (the report's 32×32 batch-400 workload),
  max 512×64×64.
* ``photos`` (profile 1): min 1×32×32, opt 1×512×768, max 1×2048×2048 (whole photos; the
  runtime tiles anything larger).

A runtime picks the first profile whose [min, max] holds its input shape (the sidecar lists
them) and binds an execution context to it. Shapes are N×H×W; channels come from the model.
Builds share a timing cache file per TF32 setting (``<cache>`` for TF32 builds,
``<cache stem>.no-tf32<suffix>`` for FP32 ones), so later builds skip most kernel timing and a
TF32-off build never reuses tactics timed with TF32 on.

Every network is *strongly typed* (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``): the
precision comes from the ONNX model itself, not from builder flags. TensorRT 11 removed the weakly
typed ``BuilderFlag.FP16`` / ``BuilderFlag.INT8`` (the 10.x -> 11.x migration guide's "Removed
Python APIs"), and in 11.x strong typing is always on. So FP32 builds from ``model.onnx``, FP16
from the FP16 ONNX model (float32 I/O, casts inside) and INT8 from the *symmetric* QDQ model
(INT8 Q/DQ, zero points 0: all TensorRT's ONNX parser accepts), which works on 10.x and 11.x.

The sidecar ``<engine>.json`` records what an engine is tied to (TensorRT version, GPU name,
compute capability) plus precision, profiles and the :class:`ModelMetadata` props, so the
runtime (:mod:`n2nkit.runtime.trt_backend`, which also runs the verification) can refuse a
foreign engine with "rebuild it".
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from n2nkit.errors import MissingDependencyError, UserInputError
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from n2nkit.runtime.trt_backend import SIDECAR_FORMAT, cudart, sidecar_path, tensorrt_module

SIDECAR_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: (batch, height, width) for min, opt and max."""

    name: str
    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    @classmethod
    def parse(cls, text: str) -> Profile:
        """``NAME=NxHxW:NxHxW:NxHxW`` (min:opt:max), e.g. ``p=1x32x32:400x32x32:512x64x64``."""
        match = re.fullmatch(
            r"\s*([\w-]+)\s*=\s*(\d+x\d+x\d+):(\d+x\d+x\d+):(\d+x\d+x\d+)\s*", text
        )
        if not match:
            raise UserInputError(
                f"bad TensorRT profile {text!r}: expected NAME=NxHxW:NxHxW:NxHxW (min:opt:max)"
            )
        shapes = [tuple(int(v) for v in s.split("x")) for s in match.groups()[1:]]
        return cls(match.group(1), *shapes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        fmt = "x".join
        return (
            f"{self.name}={fmt(map(str, self.min))}:{fmt(map(str, self.opt))}:"
            f"{fmt(map(str, self.max))}"
        )

    def validate(self, size_multiple: int, min_side: int) -> None:
        """Raise :class:`UserInputError` unless min <= opt <= max and sides fit the model."""
        for a, b in ((self.min, self.opt), (self.opt, self.max)):
            if any(x > y for x, y in zip(a, b, strict=True)):
                raise UserInputError(f"TensorRT profile {self}: needs min <= opt <= max")
        for shape in (self.min, self.opt, self.max):
            n, h, w = shape
            if n < 1 or h < min_side or w < min_side or h % size_multiple or w % size_multiple:
                raise UserInputError(
                    f"TensorRT profile {self}: sides must be multiples of {size_multiple} "
                    f"and at least {min_side}, batch at least 1"
                )

    def nchw(self, channels: int) -> tuple[tuple[int, ...], ...]:
        return tuple((s[0], channels, s[1], s[2]) for s in (self.min, self.opt, self.max))

    def holds(self, shape: tuple[int, ...]) -> bool:
        n, _, h, w = shape
        return all(lo <= v <= hi for v, lo, hi in zip((n, h, w), self.min, self.max, strict=True))


DEFAULT_PROFILES: tuple[Profile, ...] = (
    Profile("patches", (1, 32, 32), (400, 32, 32), (512, 64, 64)),
    Profile("photos", (1, 32, 32), (1, 512, 768), (1, 2048, 2048)),
)


def require_tensorrt() -> Any:
    """Import TensorRT and cuda-python and check for a CUDA GPU, or raise
    :class:`MissingDependencyError`: every engine is verified through the runtime, which needs
    cuda-python, so it is checked before an engine is built (and thrown away)."""
    trt = tensorrt_module()
    cudart()
    import torch

    if not torch.cuda.is_available():
        raise MissingDependencyError(
            "a CUDA GPU",
            "TensorRT engines are built and verified on an NVIDIA GPU: install the NVIDIA driver "
            "and a CUDA build of torch, then `pip install 'n2nkit[gpu]'`",
        )
    return trt


def gpu_identity() -> dict[str, str]:
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    return {"gpu": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}


def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.ERROR)


def uses_tf32(precision: str) -> bool:
    """Whether a build of ``precision`` lets float32 layers run in TF32 ("fp32" means FP32
    arithmetic; FP16/INT8 engines keep TensorRT's default, TF32 on, for their float layers)."""
    return precision != "fp32"


def timing_cache_for(timing_cache: Path, tf32: bool) -> Path:
    """The timing cache file of one TF32 setting: ``timing_cache`` itself for TF32 builds,
    ``<stem>.no-tf32<suffix>`` beside it for FP32 ones. Tactics timed with TF32 on are not
    valid answers for a TF32-off build, so the two never share a file."""
    path = Path(timing_cache)
    return path if tf32 else path.with_name(f"{path.stem}.no-tf32{path.suffix}")


def strongly_typed_flags(trt: Any) -> int:
    """``create_network`` flags for a strongly typed network. TensorRT 10 needs the flag;
    11.x is always strongly typed and keeps the flag only for compatibility."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def check_source_precision(source: Path, precision: str) -> None:
    """Refuse an ONNX model that would not give a ``precision`` engine once strongly typed:
    FP16 needs FP16 weights, INT8 needs QDQ nodes with INT8 zero points of 0."""
    import onnx

    from n2nkit.export.quantize_int8 import tensorrt_qdq_problems

    model = onnx.load(str(source))
    name = Path(source).name
    types = {init.data_type for init in model.graph.initializer}
    has_qdq = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    if precision == "fp16" and onnx.TensorProto.FLOAT16 not in types:
        raise UserInputError(f"{name} has no FP16 weights: build FP16 engines from the FP16 model")
    if precision == "int8":
        if not has_qdq:
            raise UserInputError(f"{name} has no Q/DQ nodes: build INT8 engines from a QDQ model")
        problems = tensorrt_qdq_problems(model)
        if problems:
            raise UserInputError(
                f"{name}: TensorRT needs INT8 Q/DQ with zero point 0 ({problems[0]}"
                f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''}): "
                "build it with symmetric quantization"
            )
    if precision == "fp32" and (has_qdq or onnx.TensorProto.FLOAT16 in types):
        raise UserInputError(f"{name} is not an FP32 model: build FP32 engines from model.onnx")


def build_engine(
    source: Path,
    path: Path,
    precision: str,
    metadata: ModelMetadata,
    profiles: tuple[Profile, ...] = DEFAULT_PROFILES,
    timing_cache: Path | None = None,
    workspace_bytes: int = 4 << 30,
) -> Path:
    """Build ``path`` (.engine) from ``source`` plus its sidecar, as a strongly typed network.

    ``source`` carries the precision: ``model.onnx`` for fp32, the FP16 ONNX model for fp16,
    the symmetric INT8 QDQ model for int8 (see :func:`check_source_precision`). Both files are
    written atomically; the timing cache of this build's TF32 setting
    (:func:`timing_cache_for`) is read if present and rewritten with what this build learned.
    """
    from n2nkit.training.checkpoint import atomic_write_bytes

    if precision not in PRECISIONS:
        raise UserInputError(f"unknown TensorRT precision {precision!r}; choose {PRECISIONS}")
    for profile in profiles:
        profile.validate(metadata.size_multiple, metadata.min_side)
    check_source_precision(Path(source), precision)
    trt = require_tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {Path(source).name}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    # No precision flags: a strongly typed network takes its types from the model (and 11.x
    # has no BuilderFlag.FP16/INT8). TF32 is an arithmetic mode, still a builder flag.
    tf32 = uses_tf32(precision)
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    for profile in profiles:
        shape_profile = builder.create_optimization_profile()
        shape_profile.set_shape(INPUT_NAME, *profile.nchw(metadata.channels))
        config.add_optimization_profile(shape_profile)

    if timing_cache:
        timing_cache = timing_cache_for(Path(timing_cache), tf32)
    cache_data = (
        Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    )
    cache = config.create_timing_cache(cache_data)
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT could not build a {precision} engine from {Path(source).name}"
        )
    engine_bytes = bytes(memoryview(serialized))

    sidecar = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "tensorrt_version": trt.__version__,
        **gpu_identity(),
        "precision": precision,
        "strongly_typed": True,
        "tf32": tf32,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "profiles": [
            {"index": i, **asdict(p), "nchw": p.nchw(metadata.channels)}
            for i, p in enumerate(profiles)
        ],
        "metadata": metadata.to_props(),
        "source": Path(source).name,
    }
    atomic_write_bytes(Path(path), lambda f: f.write(engine_bytes))
    text = json.dumps(sidecar, indent=2, default=list).encode()
    atomic_write_bytes(sidecar_path(path), lambda f: f.write(text))
    if timing_cache:
        learned = bytes(memoryview(config.get_timing_cache().serialize()))
        atomic_write_bytes(Path(timing_cache), lambda f: f.write(learned))
    return Path(path)
