"""``n2nkit pipeline``: the main job end to end: train, export, compare, report.

Each step records its completion in ``OUT/pipeline.json`` (:mod:`n2nkit.pipeline_state`);
running the command again skips finished steps and resumes an interrupted training run, so
nothing already paid for is redone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ADVANCED = "Advanced"


def pipeline(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for runs/, artifacts/ and report/.")
    ] = Path("n2nkit-pipeline"),
    variants: Annotated[
        str, typer.Option(help="Comma list of variants to train (see `n2nkit models`).")
    ] = "n2n,truncated",
    budget: Annotated[
        str, typer.Option(help="Training wall-clock budget per variant: 90s, 3m, 10m, 1h.")
    ] = "3m",
    noise: Annotated[str, typer.Option(help="Noise to train on and to measure PSNR at.")] = (
        "gaussian:25"
    ),
    trt: Annotated[
        bool,
        typer.Option(
            "--trt/--no-trt", help="Build TensorRT engines when TensorRT and a GPU are present."
        ),
    ] = True,
    shipped: Annotated[
        bool, typer.Option("--shipped/--no-shipped", help="Compare with the shipped models too.")
    ] = True,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over instead of resuming a previous run in OUT.")
    ] = False,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="Compare only these targets or groups (repeatable; see `n2nkit compare "
            "--list-targets`). Default: all.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    compare_budget: Annotated[
        float,
        typer.Option(help="Seconds of timed runs per input size.", rich_help_panel=ADVANCED),
    ] = 0.0,
    compare_runs: Annotated[
        int, typer.Option(help="Timed runs per input size, at least.", rich_help_panel=ADVANCED)
    ] = 1,
    device: Annotated[
        str, typer.Option(help="Training device: auto, cpu, cuda.", rich_help_panel=ADVANCED)
    ] = "auto",
    recipe: Annotated[
        str,
        typer.Option(
            help="Training recipe: fast (default; see `n2nkit train --help`) or report (the "
            "reference report's exact recipe).",
            rich_help_panel=ADVANCED,
        ),
    ] = "fast",
    residual: Annotated[
        bool | None,
        typer.Option(
            "--residual/--direct",
            help="Override the recipe: residual (learn the noise, as the shipped models) or "
            "direct (predict the image, as the report's networks).",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Override the recipe's training batch (fast: 25 on a CPU, 128 on a GPU; "
            "report: 400).",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
) -> None:
    """Train, export (INT8/FP16/ORT, TensorRT if possible) and compare: the main job, end to end."""
    from rich.markup import escape

    from n2nkit.bench.report import REPORT_FILES
    from n2nkit.bench.targets import select_targets
    from n2nkit.cli.console import console
    from n2nkit.errors import UserInputError
    from n2nkit.export.onnx_export import require_export_packages
    from n2nkit.fileio import check_out_dir, make_out_dir
    from n2nkit.pipeline_state import PipelineState, clear
    from n2nkit.training.config import TrainConfig, parse_duration
    from n2nkit.training.models import parse_variants
    from n2nkit.training.recipes import recipe_settings, training_device_type
    from n2nkit.training.trainer import resolve_device

    names = parse_variants(variants, "--variants")
    budget_s = parse_duration(budget)
    if batch_size is not None and batch_size < 1:  # 0 must not quietly mean the default
        raise UserInputError(f"--batch-size must be at least 1, got {batch_size}")
    if not 0 <= compare_budget < float("inf") or compare_runs < 1:  # NaN fails too
        raise UserInputError("--compare-budget must be a number >= 0 and --compare-runs >= 1")
    check_out_dir(out)
    require_export_packages()  # the export step's packages, before minutes of training
    targets = select_targets(target)  # an unknown target fails now, not after training
    resolve_device(device)  # a missing GPU too, before the folder is touched
    settings = recipe_settings(
        recipe, training_device_type(device), residual=residual, batch_size=batch_size
    )
    kwargs = {"residual": True} if settings.pop("residual") else {}
    configs = {  # validated before the first minute of training
        name: TrainConfig(variant=name, noise=noise, budget_s=budget_s, device=device,
                          out_dir=out / "runs" / name, variant_kwargs=kwargs,
                          **settings).validate()
        for name in names
    }  # fmt: skip
    if fresh:
        clear(out, REPORT_FILES.values())  # only a pipeline's folder, only what it wrote
    make_out_dir(out)
    state = PipelineState(out)
    state.check_unclaimed_runs(names)
    state.claim({"noise": noise, "recipe": recipe, "residual": residual, "batch_size": batch_size})

    _train_step(state, configs)
    _export_step(state, out, names, trt)
    # 3. compare ------------------------------------------------------------------------
    from n2nkit.cli.compare import run_compare

    models = [str(out / "artifacts" / name) for name in names]
    if shipped:
        from n2nkit.runtime.shipped import shipped_model_names

        models += shipped_model_names()
    # overwrite: OUT/report is the pipeline's own (a re-run after an interrupted compare)
    run_compare(models, out / "report", targets, [noise], ["nlm", "bm3d"],
                budget=compare_budget, min_runs=compare_runs, warmup=1,
                overwrite=True)  # fmt: skip
    state.mark("compare", "done")
    console.print(
        f"[bold]pipeline finished[/]: report in {escape(str(out / 'report' / 'report.md'))}"
    )


def _train_step(state, configs: dict) -> None:
    """1. train every variant not done yet; an interrupted one resumes from its last.pt."""
    from n2nkit.cli.console import console

    for name, config in configs.items():
        key = f"train:{name}"
        if state.done(key):
            console.print(f"[dim]train {name}: done in an earlier run, skipped[/]")
            continue
        resuming = state.started(key)
        state.mark(key, "started")
        _train(config, resuming)
        state.mark(key, "done")


def _export_step(state, out: Path, names: list[str], trt: bool) -> None:
    """2. export every trained variant not exported yet (engines when TensorRT is here)."""
    from rich.markup import escape

    from n2nkit.cli.console import console

    trt_reason = _tensorrt_missing() if trt else "--no-trt"
    for name in names:
        key = f"export:{name}"
        if state.done(key):
            console.print(f"[dim]export {name}: done in an earlier run, skipped[/]")
            continue
        _export(out / "runs" / name, out / "artifacts" / name, trt=trt_reason is None)
        state.mark(key, "done")
    if trt_reason:
        console.print(f"TensorRT engines skipped: {escape(trt_reason)}")


def _train(config, resuming: bool) -> None:
    """Train (or finish an interrupted run) within what is left of the budget."""
    import dataclasses

    from n2nkit.cli.console import console
    from n2nkit.training.checkpoint import LAST_NAME, load_checkpoint
    from n2nkit.training.trainer import train

    last = config.out_dir / LAST_NAME
    resume = resuming and last.exists()
    budget = config.budget_s
    if resume:
        budget -= float(load_checkpoint(last).get("elapsed_s", 0.0))
        if budget <= 0:
            console.print(f"[dim]train {config.variant}: its budget was spent, kept as is[/]")
            return
    run = dataclasses.replace(config, budget_s=budget, resume=resume, overwrite=not resume)
    console.print(
        f"[bold]train {config.variant}[/] ({'resuming, ' if resume else ''}{budget:.0f} s, "
        f"batch {config.batch_size})"
    )
    result = train(run, progress=True)
    console.print(
        f"  {config.variant}: validation PSNR {result.best_val_psnr:.2f} dB "
        f"(noisy input {result.val_psnr_noisy:.2f} dB), {result.epochs_completed} epoch(s)"
    )


def _export(run_dir: Path, out_dir: Path, trt: bool) -> None:
    from rich.markup import escape

    from n2nkit.cli.console import console
    from n2nkit.cli.export import run_export

    console.print(f"[bold]export {escape(run_dir.name)}[/] → {escape(str(out_dir))}")
    run_export(run_dir, out_dir, f"{run_dir.name}: ", int8=True, fp16=True, ort=True, trt=trt)


def _tensorrt_missing() -> str | None:
    from n2nkit.errors import MissingDependencyError
    from n2nkit.export.tensorrt_engine import require_tensorrt

    try:
        require_tensorrt()
    except MissingDependencyError as exc:
        return str(exc)
    return None
