"""Run the export targets for one checkpoint and return one verified result row per artifact.

Every artifact is built in a scratch folder inside ``out_dir``, verified there (see
:mod:`n2nkit.export.verify`) and only then renamed into ``out_dir``. One that fails
verification is deleted, one that fails to build never appears; both still get a row, so the
caller can print the whole table before exiting non-zero.

What is built comes from :data:`ARTIFACTS`, one row per artifact kind (source kind, builder,
verifier); the file names are the runtime's artifact contract (:mod:`n2nkit.runtime.artifacts`)::

    fp32            always (everything else is derived from it)
    int8            --int8 (static QDQ); also built for --trt's INT8 engine
    fp16            --fp16 (float32 inputs/outputs)
    ort, ort-int8   --ort: FP32 and INT8 in ORT format
    trt-<prec>      --trt: fp32, fp16, int8 engines (+ sidecar; tensorrt.timing.cache, and
                    .no-tf32 for FP32, reused by later builds)

Engines are strongly typed, so each is built from an ONNX model of its precision: FP32 from
``model.onnx``, FP16 from an FP16 model, INT8 from a *symmetric* QDQ model (INT8, zero points 0,
what TensorRT's parser accepts; Q/DQ on convolution inputs only, so TensorRT fuses each
convolution with its activation), the last two made for the engine in the scratch folder;
``model.int8.onnx`` keeps what measures best on the CPU (asymmetric UINT8).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from n2nkit.errors import UserInputError, VerificationError, first_line
from n2nkit.export import verify
from n2nkit.export.onnx_export import DEFAULT_OPSET, metadata_for
from n2nkit.export.tensorrt_engine import DEFAULT_PROFILES, PRECISIONS, Profile
from n2nkit.fileio import drop_set_aside, restore_set_aside, set_aside
from n2nkit.runtime.artifacts import BY_KIND, MANIFEST, TIMING_CACHE, scan, sidecar_path
from n2nkit.runtime.metadata import ModelMetadata

DEFAULT_NOISE = "gaussian:25"  # for models without a checkpoint (random-init parity checks)


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
    noise: str = DEFAULT_NOISE
    seed: int = 0
    opset: int = DEFAULT_OPSET
    reduce_range: bool | None = None
    int8_float_layers: int = 0
    int8_calibrations: tuple[str, ...] = ()  # empty: every candidate of quantize_int8
    int8_equalize: bool = True
    equalized: Path | None = None  # the equalized FP32 ONNX the INT8 models are built from
    profiles: Sequence[Profile] = DEFAULT_PROFILES
    timing_cache: Path | None = None
    say: Callable[[str], None] = lambda _message: None
    rows: list[ArtifactResult] = field(default_factory=list)
    opened: list[Any] = field(default_factory=list)  # backends to close once verified


def _produce(
    ctx: _Context,
    kind: str,
    make: Callable[[Path], Any],
    run: Callable[[Path], verify.Runner],
    reference_psnr: float | None = None,
) -> ArtifactResult:
    """Build ``kind``'s file in the stage, verify it, publish it (or not); append and return
    its row."""
    art = BY_KIND[kind]
    name, precision = art.file, art.precision
    sidecars = (sidecar_path(Path(name)).name,) if art.format == "tensorrt" else ()
    row = ArtifactResult(name, art.format, precision, Status.EXPORT_FAILED)
    ctx.rows.append(row)
    staged = ctx.stage / name
    start = time.perf_counter()
    try:
        details = make(staged)
        if isinstance(details, dict):
            row.details.update(details)
        row.size_bytes = staged.stat().st_size
    except Exception as exc:  # any failure of this target becomes its row; the others go on
        _raise_interrupt(exc)
        row.message = first_line(exc, with_type=True)
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
        _raise_interrupt(exc)
        row.status = Status.FAILED_VERIFICATION
        row.message = (
            str(exc) if isinstance(exc, VerificationError) else first_line(exc, with_type=True)
        )
        row.seconds = time.perf_counter() - start
        return row

    for extra in (name, *sidecars):
        (ctx.stage / extra).replace(ctx.out_dir / extra)
    row.path = ctx.out_dir / name
    row.status = Status.PASSED
    row.seconds = time.perf_counter() - start
    return row


# ------------------------------------------------------------------ the table of artifacts
# Each builder takes (ctx, staged path, source artifact's path) and may return details for the
# row; each verifier takes the staged path and returns a runner (numpy in, numpy out).
Builder = Callable[["_Context", Path, "Path | None"], Any]
Verifier = Callable[["_Context", Path], verify.Runner]


@dataclass(frozen=True)
class Recipe:
    """How one artifact kind is made: from which kind (None: the PyTorch model), by what,
    checked by what, and what the progress line adds to its name."""

    source: str | None
    build: Builder
    verifier: Verifier
    note: str = ""


def _build_fp32(ctx: _Context, path: Path, _source: Path | None) -> None:
    from n2nkit.export.onnx_export import export_onnx

    export_onnx(ctx.model, path, ctx.metadata, ctx.opset)


def _build_int8(ctx: _Context, path: Path, source: Path | None) -> dict[str, Any]:
    from n2nkit.export.quantize_int8 import (
        CALIBRATIONS,
        calibration_batches,
        quantize_best,
        selection_set,
    )

    meta = ctx.metadata
    batches = calibration_batches(ctx.noise, meta.size_multiple, seed=ctx.seed)
    selection = selection_set(meta, ctx.noise, ctx.seed)
    reference = verify.mean_psnr(verify.ort_runner(source), selection)
    source, meta = _int8_source(ctx, source)
    choice = quantize_best(source, path, meta, batches, selection, reduce_range=ctx.reduce_range,
                           float_layers=ctx.int8_float_layers,
                           calibrations=ctx.int8_calibrations or CALIBRATIONS)  # fmt: skip
    return {
        "calibration": choice.calibration,
        "reduce_range": choice.reduce_range,
        "selection_psnr_change": {k: round(v - reference, 4) for k, v in choice.psnr.items()},
        "quantized_ops": choice.ops,
        "float_layers": ctx.int8_float_layers,
        "equalized": meta.extra.get("int8_equalized") == "true",
    }


def _int8_source(ctx: _Context, fp32: Path) -> tuple[Path, ModelMetadata]:
    """The FP32 ONNX model INT8 models are quantized from, and their metadata: with
    ``int8_equalize``, the network with per-channel equalized activations
    (:mod:`n2nkit.training.equalize`; the same function, exported once per export), else
    ``fp32`` itself (also for networks equalization does not apply to)."""
    import dataclasses

    from n2nkit.training.equalize import equalization_pairs

    applied = ctx.int8_equalize and equalization_pairs(ctx.model) is not None
    if applied and ctx.equalized is None:  # the first INT8 model of this export
        from n2nkit.export.onnx_export import export_onnx
        from n2nkit.training.equalize import colour_diverse_batches, equalize_activations

        batches = colour_diverse_batches(ctx.noise, ctx.metadata.size_multiple, ctx.seed)
        path = ctx.stage / ".int8-source.equalized.onnx"
        equalized = equalize_activations(ctx.model, batches)
        ctx.equalized = export_onnx(equalized, path, ctx.metadata, ctx.opset)
    if applied:
        fp32 = ctx.equalized
    extra = {**ctx.metadata.extra, "int8_equalized": str(applied).lower()}
    return fp32, dataclasses.replace(ctx.metadata, extra=extra)


def _build_fp16(ctx: _Context, path: Path, source: Path | None) -> None:
    from n2nkit.export.fp16 import convert_fp16

    convert_fp16(source, path, ctx.metadata)


def _build_ort(_ctx: _Context, path: Path, source: Path | None) -> None:
    from n2nkit.export.ort_format import convert_ort

    convert_ort(source, path)


def _engine_source(ctx: _Context, precision: str, fp32: Path) -> tuple[Path, dict[str, Any]]:
    """The ONNX model a strongly typed ``precision`` engine is built from (+ details)."""
    if precision == "fp32":
        return fp32, {}
    if precision == "fp16":
        from n2nkit.export.fp16 import convert_fp16

        return convert_fp16(fp32, ctx.stage / ".engine-source.fp16.onnx", ctx.metadata), {}
    from n2nkit.export.quantize_int8 import (
        CALIBRATIONS,
        calibration_batches,
        quantize_best,
        selection_set,
    )

    staged = ctx.stage / ".engine-source.int8-symmetric.onnx"
    source, meta = _int8_source(ctx, fp32)
    choice = quantize_best(
        source,
        staged,
        meta,
        calibration_batches(ctx.noise, meta.size_multiple, seed=ctx.seed),
        selection_set(meta, ctx.noise, ctx.seed),
        reduce_range=False,
        symmetric=True,
        float_layers=ctx.int8_float_layers,
        calibrations=ctx.int8_calibrations or CALIBRATIONS,
    )
    return staged, {"calibration": choice.calibration, "quantized_ops": choice.ops}


def _engine_builder(precision: str) -> Builder:
    def build(ctx: _Context, path: Path, fp32: Path | None) -> Any:
        import dataclasses

        from n2nkit.export.tensorrt_engine import build_engine

        source, details = _engine_source(ctx, precision, fp32)
        meta = dataclasses.replace(ctx.metadata, precision=precision)
        build_engine(source, path, precision, meta, tuple(ctx.profiles), ctx.timing_cache)
        return details

    return build


def _onnx_verifier(precision: str) -> Verifier:
    def run(_ctx: _Context, path: Path) -> verify.Runner:
        verify.check_onnx(path, precision)
        return verify.ort_runner(path)

    return run


def _ort_verifier(precision: str) -> Verifier:
    def run(_ctx: _Context, path: Path) -> verify.Runner:
        from n2nkit.runtime.ort_backend import OrtBackend

        backend = OrtBackend(path, device="cpu")
        if backend.metadata.precision != precision:
            raise VerificationError(f"{path.name}: metadata says {backend.metadata.precision}")
        return backend.infer

    return run


def _engine_verifier(ctx: _Context, path: Path) -> verify.Runner:
    # Through the runtime, as apps will run it; the Denoiser splits batches that exceed the
    # engine's optimisation profiles. Closed (device memory freed) once verified.
    from n2nkit.runtime.denoiser import Denoiser
    from n2nkit.runtime.trt_backend import TrtBackend

    backend = TrtBackend(path)
    ctx.opened.append(backend)
    return functools.partial(Denoiser(backend).denoise_planes, raw=True)  # as PyTorch's


# FP16 has no ORT row: converting on an x86 CPU folds FP16 convolutions back to FP32 weights
# (no FP16 Conv kernel here), so the .ort would not be FP16.
ARTIFACTS: dict[str, Recipe] = {
    "fp32": Recipe(None, _build_fp32, _onnx_verifier("fp32")),
    "int8": Recipe("fp32", _build_int8, _onnx_verifier("int8"),
                   "calibrating, choosing among candidates"),
    "fp16": Recipe("fp32", _build_fp16, _onnx_verifier("fp16")),
    "ort": Recipe("fp32", _build_ort, _ort_verifier("fp32")),
    "ort-int8": Recipe("int8", _build_ort, _ort_verifier("int8")),
    **{
        f"trt-{p}": Recipe("fp32", _engine_builder(p), _engine_verifier, "TensorRT build")
        for p in PRECISIONS
    },
}  # fmt: skip


def wanted_kinds(
    int8: bool, fp16: bool, ort: bool, trt: bool, trt_precisions: Sequence[str]
) -> list[str]:
    """The kinds an export with these flags builds, in build order (sources first)."""
    kinds = ["fp32", *["int8"] * int8, *["fp16"] * fp16]  # engines make their own sources
    kinds += [k for k in ("ort", "ort-int8") if ort and ARTIFACTS[k].source in kinds]
    return kinds + [f"trt-{p}" for p in trt_precisions] * trt


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
    int8_float_layers: int = 0,
    int8_calibration: str = "auto",
    int8_equalize: bool | None = None,
    trt_precisions: Sequence[str] = PRECISIONS,
    trt_profiles: Sequence[Profile] = DEFAULT_PROFILES,
    timing_cache: Path | None = None,
    tolerances: dict[str, verify.Tolerance] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
    source: str = "",
) -> list[ArtifactResult]:
    """Export an in-memory model (eval mode, CPU); see :func:`export_checkpoint`."""
    from n2nkit.export.onnx_export import check_opset
    from n2nkit.training.config import check_seed

    say = progress or (lambda _message: None)
    check_opset(opset)
    check_seed(seed)
    unknown = [p for p in trt_precisions if p not in PRECISIONS]
    if unknown:
        raise UserInputError(f"unknown TensorRT precision {unknown[0]!r}; choose {PRECISIONS}")
    metadata = metadata_for(model, ckpt)
    _check_float_layers(model, int8_float_layers)
    if int8_equalize is None:
        int8_equalize = not qat_tuned(ckpt)
    calibrations = int8_calibrations(int8_calibration)
    if trt:
        from n2nkit.export.tensorrt_engine import require_tensorrt

        for profile in trt_profiles:
            profile.validate(metadata.size_multiple, metadata.min_side)
        require_tensorrt()  # fail before writing anything
    from n2nkit import runlock
    from n2nkit.fileio import make_out_dir

    out_dir = Path(out_dir)
    created = make_out_dir(out_dir)
    try:
        with runlock.hold(out_dir, "export"):
            _claim_folder(out_dir, source or "an in-memory model", fingerprint(model), overwrite)
            try:
                rows = _export_locked(model, metadata, out_dir, int8, fp16, ort, trt,
                                      trt_precisions, opset=opset, reduce_range=reduce_range,
                                      int8_float_layers=int8_float_layers,
                                      calibrations=calibrations, equalize=int8_equalize,
                                      profiles=trt_profiles, timing_cache=timing_cache,
                                      tolerances=tolerances, seed=seed, say=say)  # fmt: skip
            except BaseException:
                _undo_export(out_dir)  # --overwrite replaces only once new ones exist
                raise
            if any(row.passed for row in rows):  # new artifacts exist: the old ones go
                drop_set_aside(out_dir, REPLACED)
            else:  # every artifact failed its verification: the old ones come back
                _undo_export(out_dir)
    finally:  # an export that failed, or whose every artifact did, leaves no empty --out
        if created and not scan(out_dir):
            shutil.rmtree(created, ignore_errors=True)
    return rows


def _raise_interrupt(exc: BaseException) -> None:
    """Raise the Ctrl-C (or SIGTERM) that ``exc`` wraps: torch's exporter reports one inside
    a TorchExportError, which would otherwise read as this artifact's failure."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


REPLACED = ".n2nkit-replaced-export"  # what an --overwrite export replaces, until it ends
# A killed export's scratch folders and atomic-write temp files (``.<name>.<random>.tmp``) of
# the files an export writes: only those, so a user's own ``.notes.tmp`` in --out is left alone.
LEFTOVERS = (
    ".n2nkit-export-*",
    ".model.*.tmp",
    f".{MANIFEST}.*.tmp",
    f".{TIMING_CACHE}.*.tmp",
)


def qat_tuned(ckpt: dict | None) -> bool:
    """Whether ``ckpt`` was fine-tuned through simulated INT8 (``n2nkit train --qat``).

    Such weights are tuned for the 8-bit grids of the network the simulation saw: the
    equalized one (``--qat`` equalizes the ``--init`` weights first, ``training/trainer.py``),
    or the network as it was for checkpoints from before --qat equalized. Either way the
    weights as they are were simulated, and equalizing again would rescale the channels
    equalization clamps (it is not idempotent).
    """
    config = (ckpt or {}).get("config") or {}
    return bool(config.get("qat"))


def fingerprint(model: Any) -> str:
    """``sha256:<hex>`` of the model's weights (names, shapes, bytes): what makes two exports
    the same checkpoint's, wherever the file lies."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _claim_folder(out_dir: Path, source: str, print_: str, overwrite: bool) -> None:
    """Make ``out_dir`` this checkpoint's: refuse a folder holding another checkpoint's
    artifacts (or replace them all with ``overwrite``, once the export ends); clear a killed
    export's leftovers; write the manifest. Called with the folder's lock held."""
    from n2nkit.fileio import remove_leftovers
    from n2nkit.runtime.artifacts import (
        artifact_files,
        contract_names,
        read_manifest,
        write_manifest,
    )

    _restore_replaced(out_dir)  # an earlier --overwrite export was killed
    present = artifact_files(out_dir)
    manifest = read_manifest(out_dir)
    same = manifest is not None and manifest.get("fingerprint") == print_
    if present and not same and not overwrite:  # refused: the folder is left as it was
        theirs = f"of {manifest.get('source')}" if manifest else "from an unknown checkpoint"
        if manifest and manifest.get("source") == source:  # the same file, other weights now
            theirs = f"of an earlier version of {source} (it was trained further since)"
        raise UserInputError(
            f"--out {out_dir} holds artifacts {theirs}, not of {source}; pass --overwrite "
            "to replace them all, or choose another folder"
        )
    remove_leftovers(out_dir, LEFTOVERS)
    if present and not same:  # kept aside until this export ends (_restore_replaced)
        set_aside(out_dir, contract_names(), REPLACED)
    write_manifest(out_dir, source, print_)


def _undo_export(out_dir: Path) -> None:
    """An export that failed or produced nothing: the artifacts it was to replace come back,
    and a manifest left describing no artifact goes."""
    _restore_replaced(out_dir)
    if not scan(out_dir):
        (out_dir / MANIFEST).unlink(missing_ok=True)


def _restore_replaced(out_dir: Path) -> None:
    """Put back the artifacts an ``--overwrite`` export set aside, over whatever it published:
    called when that export fails or is interrupted, and before the next export of a folder
    whose export was killed. The folder is then as it was before the overwrite."""
    from n2nkit.runtime.artifacts import contract_names

    restore_set_aside(out_dir, contract_names(), REPLACED)


def int8_calibrations(name: str) -> tuple[str, ...]:
    """``--int8-calibration``: ``auto`` (empty: measure every candidate) or one calibration,
    checked before any work (:func:`~n2nkit.export.quantize_int8.calibration_options`)."""
    if name == "auto":
        return ()
    from n2nkit.export.quantize_int8 import calibration_options

    try:
        calibration_options(name)
    except ValueError as error:
        raise UserInputError(f"--int8-calibration: {error}") from None
    return (name,)


def _check_float_layers(model: Any, layers: int) -> None:
    """Refuse ``--int8-float-layers`` beyond the network's convolutions before any work (the
    ONNX graph has one Conv per ``Conv2d``; the last one, the output head, is float anyway)."""
    import torch

    from n2nkit.export.quantize_int8 import check_float_layers

    check_float_layers(layers, sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) - 1)


def _export_locked(model, metadata, out_dir, int8, fp16, ort, trt, trt_precisions, *, opset,
                   reduce_range, int8_float_layers, calibrations, equalize, profiles,
                   timing_cache, tolerances, seed, say):  # fmt: skip
    noise = metadata.noise or DEFAULT_NOISE
    say("preparing parity inputs and validation images")
    model = model.eval()
    evalset = verify.build_evalset(metadata, noise, seed)
    torch_run = verify.torch_runner(model)
    torch_outputs = [torch_run(x) for x in evalset.parity]
    torch_psnr = verify.mean_psnr(torch_run, evalset)
    ctx = _Context(  # the stage is made last: an interrupt before the try leaves none behind
        out_dir=out_dir,
        stage=Path(tempfile.mkdtemp(prefix=".n2nkit-export-", dir=out_dir)),
        model=model,
        metadata=metadata,
        evalset=evalset,
        torch_outputs=torch_outputs,
        torch_psnr=torch_psnr,
        tolerances={**verify.TOLERANCES, **(tolerances or {})},
        noise=noise, seed=seed, opset=opset, reduce_range=reduce_range,
        int8_float_layers=int8_float_layers, int8_calibrations=calibrations,
        int8_equalize=equalize, profiles=profiles,
        timing_cache=Path(timing_cache) if timing_cache else out_dir / TIMING_CACHE, say=say,
    )  # fmt: skip
    try:
        rows: dict[str, ArtifactResult] = {}
        for kind in wanted_kinds(int8, fp16, ort, trt, trt_precisions):
            rows[kind] = _build(ctx, kind, rows)
        return ctx.rows
    finally:
        shutil.rmtree(ctx.stage, ignore_errors=True)


def _build(ctx: _Context, kind: str, rows: dict[str, ArtifactResult]) -> ArtifactResult:
    """One row of the table: built from its source artifact, or failed because that failed."""
    recipe, art = ARTIFACTS[kind], BY_KIND[kind]
    source = rows[recipe.source] if recipe.source else None
    if source is not None and not source.passed:
        row = ArtifactResult(art.file, art.format, art.precision, Status.EXPORT_FAILED,
                             message=f"{source.name} failed")  # fmt: skip
        ctx.rows.append(row)
        return row
    ctx.say(f"{art.file} ({recipe.note})" if recipe.note else art.file)
    source_path = source.path if source else None
    try:
        return _produce(
            ctx,
            kind,
            lambda p: recipe.build(ctx, p, source_path),
            lambda p: recipe.verifier(ctx, p),
            reference_psnr=None if kind == "fp32" else rows["fp32"].psnr,
        )
    finally:
        while ctx.opened:
            ctx.opened.pop().close()


def export_checkpoint(checkpoint: Path, out_dir: Path, **options: Any) -> list[ArtifactResult]:
    """Checkpoint file or run folder -> verified artifacts in ``out_dir``, one row each.

    Options: ``int8``, ``fp16``, ``ort``, ``trt`` (bool); ``opset``; ``reduce_range``
    (None = measure both); ``int8_float_layers`` (the last N convolution layers of the INT8
    models stay float); ``int8_calibration`` (``auto`` measures every candidate and keeps the
    best on the selection crops; or ``minmax``, ``percentile:P``, ``tail-percentile:P``);
    ``int8_equalize`` (quantize a per-channel equalized copy of the network; None, the
    default, does unless the checkpoint was fine-tuned with ``--qat``, see :func:`qat_tuned`);
    ``trt_precisions``; ``trt_profiles``; ``timing_cache``;
    ``tolerances``; ``seed``; ``progress`` (a callable taking a status line); ``overwrite``
    (replace another checkpoint's artifacts in ``out_dir`` instead of refusing: a folder holds
    one checkpoint's artifacts, named in its manifest).
    Bad checkpoints raise :class:`~n2nkit.errors.CheckpointError` before anything is written;
    missing TensorRT or GPU with ``trt=True`` raises ``MissingDependencyError``, likewise.
    """
    from n2nkit.training.checkpoint import load_model, resolve_checkpoint

    source = resolve_checkpoint(Path(checkpoint))
    out_dir = Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise UserInputError("--out must be a folder, not the checkpoint itself")
    model, ckpt = load_model(source)
    return export_model(model, ckpt, out_dir, source=str(source), **options)
