"""Run the export targets for one checkpoint and return one verified result row per artifact.

Every artifact is built in a scratch folder inside ``out_dir``, verified there (see
:mod:`n2nkit.export.verify`) and only then renamed into ``out_dir``. One that fails
verification is deleted, one that fails to build never appears; both still get a row, so the
caller can print the whole table before exiting non-zero.

Artifacts (names in ``out_dir``)::

    model.onnx            FP32, always (everything else is derived from it)
    model.int8.onnx       --int8 (static QDQ); also built for --trt's INT8 engine
    model.fp16.onnx       --fp16 (float32 inputs/outputs)
    model.ort, model.int8.ort                     --ort: FP32 and INT8 in ORT format
    model.<prec>.engine (+ .engine.json sidecar)  --trt: fp32, fp16, int8
    tensorrt.timing.cache (+ .no-tf32 for FP32)   --trt: reused by later builds

Engines are strongly typed, so each is built from an ONNX model of its precision: FP32 from
``model.onnx``, FP16 from the FP16 model, INT8 from a *symmetric* QDQ model (INT8, zero points 0)
made for the engine in the scratch folder; ``model.int8.onnx`` keeps what measures best on the CPU.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from n2nkit.errors import UserInputError, VerificationError
from n2nkit.export import verify
from n2nkit.export.onnx_export import DEFAULT_OPSET, metadata_for
from n2nkit.export.tensorrt_engine import DEFAULT_PROFILES, PRECISIONS, Profile
from n2nkit.runtime.metadata import ModelMetadata

DEFAULT_NOISE = "gaussian:25"  # for models without a checkpoint (random-init parity checks)
TIMING_CACHE = "tensorrt.timing.cache"


class Status(str, Enum):
    PASSED = "passed"
    FAILED_VERIFICATION = "exported but failed verification"
    EXPORT_FAILED = "export failed"

    @property
    def symbol(self) -> str:
        return {"passed": "✅", "exported but failed verification": "❎"}.get(self.value, "❌")


@dataclass
class ArtifactResult:
    """One row of the export table.

    ``psnr_change`` is the artifact's validation PSNR minus its reference's: PyTorch for
    ``model.onnx``, the FP32 ONNX model for everything derived from it (negative = loss).
    ``path`` is set only when the artifact passed and sits in ``out_dir``.
    """

    name: str
    target: str  # "onnx", "ort" or "tensorrt"
    precision: str
    status: Status
    path: Path | None = None
    size_bytes: int | None = None
    max_abs_error: float | None = None
    psnr: float | None = None
    psnr_change: float | None = None
    seconds: float = 0.0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED


@dataclass
class _Context:
    out_dir: Path
    stage: Path
    model: Any
    metadata: ModelMetadata
    evalset: verify.EvalSet
    torch_outputs: list[Any]
    torch_psnr: float
    tolerances: dict[str, verify.Tolerance]
    rows: list[ArtifactResult] = field(default_factory=list)
    fp32_psnr: float | None = None
    seed: int = 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _produce(
    ctx: _Context,
    name: str,
    target: str,
    precision: str,
    make: Callable[[Path], Any],
    run: Callable[[Path], verify.Runner],
    sidecars: Sequence[str] = (),
    reference_psnr: float | None = None,
) -> ArtifactResult:
    """Build ``name`` in the stage, verify it, publish it (or not); append and return its row."""
    row = ArtifactResult(name, target, precision, Status.EXPORT_FAILED)
    ctx.rows.append(row)
    staged = ctx.stage / name
    start = time.perf_counter()
    try:
        details = make(staged)
        if isinstance(details, dict):
            row.details.update(details)
        row.size_bytes = staged.stat().st_size
    except Exception as exc:  # any failure of this target becomes its row; the others go on
        row.message = _first_line(exc)
        row.seconds = time.perf_counter() - start
        return row
    row.details["export_s"] = round(time.perf_counter() - start, 3)

    tolerance = ctx.tolerances[precision]
    reference = ctx.torch_psnr if reference_psnr is None else reference_psnr
    try:
        runner = run(staged)
        counted = ctx.evalset.parity_is_photo if precision == "int8" else None
        row.max_abs_error = verify.max_abs_error(
            ctx.torch_outputs, runner, ctx.evalset.parity, counted
        )
        row.psnr = verify.mean_psnr(runner, ctx.evalset)
        row.psnr_change = row.psnr - reference
        problems = []
        if not row.max_abs_error <= tolerance.max_abs:
            problems.append(
                f"max error {row.max_abs_error:.2e} vs PyTorch exceeds {tolerance.max_abs:.0e}"
            )
        if not -row.psnr_change <= tolerance.max_psnr_loss:
            problems.append(
                f"PSNR loss {-row.psnr_change:.3f} dB exceeds {tolerance.max_psnr_loss} dB"
            )
        if problems:
            raise VerificationError("; ".join(problems))
    except Exception as exc:
        row.status = Status.FAILED_VERIFICATION
        row.message = str(exc) if isinstance(exc, VerificationError) else _first_line(exc)
        row.seconds = time.perf_counter() - start
        return row

    for extra in (name, *sidecars):
        (ctx.stage / extra).replace(ctx.out_dir / extra)
    row.path = ctx.out_dir / name
    row.status = Status.PASSED
    row.seconds = time.perf_counter() - start
    return row


def _onnx_runner(precision: str) -> Callable[[Path], verify.Runner]:
    def run(path: Path) -> verify.Runner:
        verify.check_onnx(path, precision)
        return verify.ort_runner(verify.ort_session(path))

    return run


def _ort_runner(precision: str) -> Callable[[Path], verify.Runner]:
    def run(path: Path) -> verify.Runner:
        session = verify.ort_session(path)
        meta = verify.ort_metadata(session, path.name)
        if meta.precision != precision:
            raise VerificationError(f"{path.name}: metadata says {meta.precision}")
        return verify.ort_runner(session)

    return run


def export_model(
    model: Any,
    ckpt: dict | None,
    out_dir: Path,
    *,
    int8: bool = False,
    fp16: bool = False,
    ort: bool = False,
    trt: bool = False,
    opset: int = DEFAULT_OPSET,
    reduce_range: bool | None = None,
    trt_precisions: Sequence[str] = PRECISIONS,
    trt_profiles: Sequence[Profile] = DEFAULT_PROFILES,
    timing_cache: Path | None = None,
    tolerances: dict[str, verify.Tolerance] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[ArtifactResult]:
    """Export an in-memory model (eval mode, CPU); see :func:`export_checkpoint`."""
    from n2nkit.export.fp16 import convert_fp16
    from n2nkit.export.onnx_export import export_onnx
    from n2nkit.export.ort_format import convert_ort
    from n2nkit.export.quantize_int8 import calibration_batches, quantize_best, selection_set

    say = progress or (lambda _message: None)
    if opset < 17:
        raise UserInputError(f"opset {opset} is too old: n2nkit exports opset 17 or newer")
    unknown = [p for p in trt_precisions if p not in PRECISIONS]
    if unknown:
        raise UserInputError(f"unknown TensorRT precision {unknown[0]!r}; choose {PRECISIONS}")
    metadata = metadata_for(model, ckpt)
    if trt:
        from n2nkit.export.tensorrt_engine import require_tensorrt

        for profile in trt_profiles:
            profile.validate(metadata.size_multiple, metadata.min_side)
        require_tensorrt()  # fail before writing anything
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"--out {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    noise = metadata.noise or DEFAULT_NOISE
    say("preparing parity inputs and validation images")
    model = model.eval()
    evalset = verify.build_evalset(metadata, noise, seed)
    torch_run = verify.torch_runner(model)
    ctx = _Context(
        out_dir=out_dir,
        stage=Path(tempfile.mkdtemp(prefix=".n2nkit-export-", dir=out_dir)),
        model=model,
        metadata=metadata,
        evalset=evalset,
        torch_outputs=[torch_run(x) for x in evalset.parity],
        torch_psnr=verify.mean_psnr(torch_run, evalset),
        tolerances={**verify.TOLERANCES, **(tolerances or {})},
        seed=seed,
    )
    try:
        say("model.onnx")
        fp32 = _produce(
            ctx,
            "model.onnx",
            "onnx",
            "fp32",
            lambda p: export_onnx(model, p, metadata, opset),
            _onnx_runner("fp32"),
        )
        wants_int8 = int8  # the INT8 engine has its own (symmetric) QDQ model
        wanted = [("model.int8.onnx", "int8")] * wants_int8 + [("model.fp16.onnx", "fp16")] * fp16
        if not fp32.passed:
            for name, precision in wanted:
                ctx.rows.append(
                    ArtifactResult(
                        name, "onnx", precision, Status.EXPORT_FAILED, message="model.onnx failed"
                    )
                )
            return ctx.rows
        ctx.fp32_psnr = fp32.psnr
        onnx_rows = {"fp32": fp32}

        if wants_int8:
            say("model.int8.onnx (calibrating, choosing among candidates)")

            def make_int8(path: Path) -> dict[str, Any]:
                batches = calibration_batches(noise, metadata.size_multiple, seed=seed)
                selection = selection_set(metadata, noise, seed)
                fp32_run = verify.ort_runner(verify.ort_session(fp32.path))
                reference = verify.mean_psnr(fp32_run, selection)
                choice = quantize_best(
                    fp32.path, path, metadata, batches, selection, reduce_range=reduce_range
                )
                return {
                    "calibration": choice.calibration,
                    "reduce_range": choice.reduce_range,
                    "selection_psnr_change": {
                        k: round(v - reference, 4) for k, v in choice.psnr.items()
                    },
                    "quantized_ops": choice.ops,
                }

            onnx_rows["int8"] = _produce(
                ctx,
                "model.int8.onnx",
                "onnx",
                "int8",
                make_int8,
                _onnx_runner("int8"),
                reference_psnr=fp32.psnr,
            )
        if fp16:
            say("model.fp16.onnx")
            onnx_rows["fp16"] = _produce(
                ctx,
                "model.fp16.onnx",
                "onnx",
                "fp16",
                lambda p: convert_fp16(fp32.path, p, metadata),
                _onnx_runner("fp16"),
                reference_psnr=fp32.psnr,
            )
        if ort:
            for precision, source in onnx_rows.items():
                # FP16 is left out: converting on an x86 CPU folds FP16 convolutions back to
                # FP32 weights (no FP16 Conv kernel here), so the .ort would not be FP16.
                if precision == "fp16" or not source.passed:
                    continue
                name = "model.ort" if precision == "fp32" else f"model.{precision}.ort"
                say(name)
                _produce(
                    ctx,
                    name,
                    "ort",
                    precision,
                    lambda p, s=source.path: convert_ort(s, p),
                    _ort_runner(precision),
                    reference_psnr=fp32.psnr,
                )
        if trt:
            _export_engines(ctx, onnx_rows, trt_precisions, trt_profiles, timing_cache, say)
        return ctx.rows
    finally:
        shutil.rmtree(ctx.stage, ignore_errors=True)


def _export_engines(
    ctx: _Context,
    onnx_rows: dict[str, ArtifactResult],
    precisions: Sequence[str],
    profiles: Sequence[Profile],
    timing_cache: Path | None,
    say: Callable[[str], None],
) -> None:
    import dataclasses

    from n2nkit.export.fp16 import convert_fp16
    from n2nkit.export.quantize_int8 import calibration_batches, quantize_best, selection_set
    from n2nkit.export.tensorrt_engine import build_engine
    from n2nkit.runtime.denoiser import Denoiser
    from n2nkit.runtime.trt_backend import TrtBackend, sidecar_path

    opened: list[TrtBackend] = []

    def engine_runner(path: Path) -> verify.Runner:
        # Through the runtime, as apps will run it; the Denoiser splits batches that exceed
        # the engine's optimisation profiles. Closed (device memory freed) once verified.
        backend = TrtBackend(path)
        opened.append(backend)
        return Denoiser(backend).denoise_planes

    fp32 = onnx_rows["fp32"]
    noise = ctx.metadata.noise or DEFAULT_NOISE

    def typed_source(precision: str) -> tuple[Path, dict[str, Any]]:
        """The ONNX model a strongly typed ``precision`` engine is built from (+ details)."""
        if precision == "fp32":
            return fp32.path, {}
        if precision == "fp16":
            row = onnx_rows.get("fp16")
            if row is not None and row.passed:
                return row.path, {}
            staged = ctx.stage / ".engine-source.fp16.onnx"
            return convert_fp16(fp32.path, staged, ctx.metadata), {}
        staged = ctx.stage / ".engine-source.int8-symmetric.onnx"
        meta = ctx.metadata
        choice = quantize_best(
            fp32.path,
            staged,
            meta,
            calibration_batches(noise, meta.size_multiple, seed=ctx.seed),
            selection_set(meta, noise, ctx.seed),
            reduce_range=False,
            symmetric=True,
        )
        return staged, {"calibration": choice.calibration, "quantized_ops": choice.ops}

    def make_engine(path: Path, precision: str, meta: ModelMetadata) -> dict[str, Any]:
        source, details = typed_source(precision)
        build_engine(source, path, precision, meta, tuple(profiles), cache)
        return details

    cache = Path(timing_cache) if timing_cache else ctx.out_dir / TIMING_CACHE
    for precision in precisions:
        name = f"model.{precision}.engine"
        source = fp32
        if not source.passed:
            ctx.rows.append(
                ArtifactResult(
                    name,
                    "tensorrt",
                    precision,
                    Status.EXPORT_FAILED,
                    message=f"{source.name} failed",
                )
            )
            continue
        say(f"{name} (TensorRT build)")
        meta = dataclasses.replace(ctx.metadata, precision=precision)
        try:
            _produce(
                ctx,
                name,
                "tensorrt",
                precision,
                lambda p, m=meta, q=precision: make_engine(p, q, m),
                engine_runner,
                sidecars=(sidecar_path(Path(name)).name,),
                reference_psnr=ctx.fp32_psnr,
            )
        finally:
            while opened:
                opened.pop().close()


def export_checkpoint(checkpoint: Path, out_dir: Path, **options: Any) -> list[ArtifactResult]:
    """Checkpoint file or run folder -> verified artifacts in ``out_dir``, one row each.

    Options: ``int8``, ``fp16``, ``ort``, ``trt`` (bool); ``opset``; ``reduce_range``
    (None = measure both); ``trt_precisions``; ``trt_profiles``; ``timing_cache``;
    ``tolerances``; ``seed``; ``progress`` (a callable taking a status line).
    Bad checkpoints raise :class:`~n2nkit.errors.CheckpointError` before anything is written;
    missing TensorRT or GPU with ``trt=True`` raises ``MissingDependencyError``, likewise.
    """
    from n2nkit.training.checkpoint import load_model, resolve_checkpoint

    source = resolve_checkpoint(Path(checkpoint))
    out_dir = Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise UserInputError("--out must be a folder, not the checkpoint itself")
    model, ckpt = load_model(source)
    return export_model(model, ckpt, out_dir, **options)
