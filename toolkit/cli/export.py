"""``n2nkit export``: checkpoint -> verified ONNX / INT8 / FP16 / ORT / TensorRT artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ADVANCED = "Advanced"
TRT_PANEL = "TensorRT"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


TRT_ONLY = ("trt_precision", "trt_profile", "timing_cache")
INT8_ONLY = ("reduce_range", "int8_float_layers", "int8_calibration", "int8_equalize",
             "int8_max_loss")  # fmt: skip


def check_options_apply(
    given: set[str], int8: bool, trt: bool, trt_precisions: list[str] | None
) -> None:
    """Refuse options that would change nothing: TensorRT's without --trt, and INT8's without
    an INT8 model to shape (--int8, or --trt building an int8 engine)."""
    from n2nkit.errors import UserInputError

    def flags(names: tuple[str, ...]) -> str:
        return ", ".join("--" + n.replace("_", "-") for n in names if n in given)

    if not trt and given.intersection(TRT_ONLY):
        raise UserInputError(f"{flags(TRT_ONLY)} shape TensorRT engines: add --trt")
    int8_engine = trt and "int8" in (trt_precisions or ["int8"])
    if not (int8 or int8_engine) and given.intersection(INT8_ONLY):
        raise UserInputError(
            f"{flags(INT8_ONLY)} shape INT8 models: add --int8 (or --trt with int8 engines)"
        )


def export(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="Run folder (uses best.pt, else last.pt) or checkpoint file.", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the artifacts.")] = Path(
        "artifacts"
    ),
    int8: Annotated[bool, typer.Option("--int8", help="Static INT8 (QDQ) ONNX model.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16 ONNX model (float32 I/O).")] = False,
    ort: Annotated[
        bool, typer.Option("--ort", help="ORT-format copies (.ort) for ONNX Runtime Mobile.")
    ] = False,
    trt: Annotated[
        bool,
        typer.Option(
            "--trt",
            help="TensorRT engines (needs TensorRT and an NVIDIA GPU).",
            rich_help_panel=TRT_PANEL,
        ),
    ] = False,
    trt_precision: Annotated[
        list[str] | None,
        typer.Option(
            "--trt-precision",
            help="Engine precision(s): fp32, fp16, int8 (repeatable; default all three).",
            rich_help_panel=TRT_PANEL,
        ),
    ] = None,
    trt_profile: Annotated[
        list[str] | None,
        typer.Option(
            "--trt-profile",
            help="Optimisation profile NAME=NxHxW:NxHxW:NxHxW (min:opt:max; repeatable). "
            "Default: patches=1x32x32:400x32x32:512x64x64 and "
            "photos=1x32x32:1x512x768:1x2048x2048.",
            rich_help_panel=TRT_PANEL,
        ),
    ] = None,
    timing_cache: Annotated[
        Path | None,
        typer.Option(
            help="TensorRT timing cache to reuse across builds "
            "(default: OUT/tensorrt.timing.cache; FP32 builds, TF32 off, use "
            "<stem>.no-tf32<suffix> beside it).",
            rich_help_panel=TRT_PANEL,
        ),
    ] = None,
    reduce_range: Annotated[
        str,
        typer.Option(
            help="INT8 7-bit weights: auto (measure both, keep the better), on, off.",
            rich_help_panel=ADVANCED,
        ),
    ] = "auto",
    int8_float_layers: Annotated[
        int,
        typer.Option(
            help="Keep the last N convolution layers of the INT8 models in float: the "
            "full-resolution output side, where most of the INT8 loss arises (less loss, "
            "less speed-up).",
            rich_help_panel=ADVANCED,
        ),
    ] = 0,
    int8_calibration: Annotated[
        str,
        typer.Option(
            help="INT8 activation ranges: auto (measure the candidates, keep the best), "
            "minmax, percentile:P (e.g. 99.99), or tail-percentile:P (percentile on the "
            "full-resolution layers after the last upsampling, minmax elsewhere).",
            rich_help_panel=ADVANCED,
        ),
    ] = "auto",
    int8_equalize: Annotated[
        bool | None,
        typer.Option(
            "--int8-equalize/--no-int8-equalize",
            help="Equalize per-channel activation ranges before INT8 (the same function; "
            "n2n, truncated and deeper): 8-bit ranges that fit every channel. Default: on, "
            "except for a --qat checkpoint, quantized as its training simulated it.",
            show_default=False,
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    int8_max_loss: Annotated[
        float,
        typer.Option(
            help="PSNR loss (dB) against the FP32 model that an INT8 artifact may have and "
            "still pass.",
            rich_help_panel=ADVANCED,
        ),
    ] = 0.2,
    opset: Annotated[
        int, typer.Option(help="ONNX opset (17 or newer).", rich_help_panel=ADVANCED)
    ] = 17,
    seed: Annotated[
        int,
        typer.Option(help="Seed of the parity inputs and noise draws.", rich_help_panel=ADVANCED),
    ] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the artifacts of another checkpoint in --out (a folder holds one "
            "checkpoint's artifacts; without this the export refuses)."
        ),
    ] = False,
) -> None:
    """Export a checkpoint and verify every artifact against PyTorch before reporting it.

    Ends with a table: ✅ passed, ❎ exported but failed verification (deleted), ❌ export
    failed. Exits non-zero unless every artifact passed.
    """
    from n2nkit.errors import UnknownNameError, UserInputError
    from n2nkit.export.onnx_export import check_opset, require_export_packages
    from n2nkit.fileio import check_out_dir

    require_export_packages()  # exit 3 with the install line, before anything is loaded
    from n2nkit.export.tensorrt_engine import DEFAULT_PROFILES, PRECISIONS, Profile
    from n2nkit.export.verify import TOLERANCES, Tolerance

    check_opset(opset)
    check_out_dir(out)
    modes = {"auto": None, "on": True, "off": False}
    if not 0.0 <= int8_max_loss <= 10.0:
        raise UserInputError(f"--int8-max-loss {int8_max_loss} dB: give 0 to 10")
    if int8_float_layers < 0:
        raise UserInputError(f"--int8-float-layers {int8_float_layers}: give 0 or more")
    if reduce_range not in modes:
        raise UnknownNameError("--reduce-range value", reduce_range, list(modes))
    for p in trt_precision or []:
        if p not in PRECISIONS:
            raise UnknownNameError("TensorRT precision", p, PRECISIONS)
    profiles = tuple(Profile.parse(p) for p in trt_profile) if trt_profile else DEFAULT_PROFILES
    given = {n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") != "DEFAULT"}
    check_options_apply(given, int8, trt, trt_precision)  # after each value's own check

    run_export(
        checkpoint,
        out,
        int8=int8,
        fp16=fp16,
        ort=ort,
        trt=trt,
        opset=opset,
        reduce_range=modes[reduce_range],
        int8_float_layers=int8_float_layers,
        int8_calibration=int8_calibration,
        int8_equalize=int8_equalize,
        trt_precisions=tuple(trt_precision or PRECISIONS),
        trt_profiles=profiles,
        timing_cache=timing_cache,
        tolerances={"int8": Tolerance(TOLERANCES["int8"].max_abs, int8_max_loss)},
        seed=seed,
        overwrite=overwrite,
    )


def run_export(checkpoint: Path, out: Path, label: str = "", **options: Any) -> list:
    """:func:`~n2nkit.export.pipeline.export_checkpoint` under a status line, then its table;
    :class:`~n2nkit.errors.VerificationError` naming the artifacts that did not pass."""
    from rich.markup import escape

    from n2nkit.cli.console import console, print_note
    from n2nkit.errors import VerificationError
    from n2nkit.export.pipeline import export_checkpoint
    from n2nkit.training.checkpoint import load_checkpoint, resolve_checkpoint

    source = resolve_checkpoint(Path(checkpoint))
    if load_checkpoint(source).get("epoch") == 0:  # interrupted before an epoch ended
        print_note(
            f"{source} was saved before its first epoch ended: these are its starting weights "
            "(finish the run with `n2nkit train --resume` first)"
        )
    label = escape(label)  # a run folder's name, not markup
    with console.status(f"exporting {label}".rstrip()) as status:
        progress = lambda message: status.update(f"exporting {label}{message}")  # noqa: E731
        rows = export_checkpoint(checkpoint, out, progress=progress, **options)
    print_results(rows, out)
    failed = [r for r in rows if not r.passed]
    if failed:
        raise VerificationError(
            f"{label}{len(failed)} of {len(rows)} artifacts did not pass: "
            + ", ".join(f"{r.name} ({r.status.value})" for r in failed)
        )
    return rows


def print_results(rows: list, out: Path) -> None:
    """The export table: one row per artifact (shared with ``n2nkit pipeline``)."""
    from rich.markup import escape
    from rich.table import Table

    from n2nkit.cli.console import console

    table = Table(title=f"n2nkit export -> {escape(str(out))}")
    table.add_column("", no_wrap=True)
    table.add_column("artifact", no_wrap=True)
    table.add_column("precision")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("max error vs PyTorch")
    table.add_column("PSNR Δ (dB)")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("note", overflow="fold")
    for row in rows:
        note = row.message
        if row.passed and "calibration" in row.details:
            note = row.details["calibration"] + (", 7-bit" * bool(row.details["reduce_range"]))
            if row.details.get("float_layers"):
                note += f", last {row.details['float_layers']} layers float"
            if row.details.get("equalized"):
                note += ", equalized"
        table.add_row(
            row.status.symbol,
            row.name,
            row.precision,
            _size(row.size_bytes),
            "-" if row.max_abs_error is None else f"{row.max_abs_error:.2e}",
            "-" if row.psnr_change is None else f"{row.psnr_change:+.3f}",
            f"{row.seconds:.1f} s",
            escape(note),  # messages name extras like n2nkit[gpu], not markup
        )
    console.print(table)
