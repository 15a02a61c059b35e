"""``n2nkit pipeline``: the main job end to end: train, export, compare, report.

Each step records its completion in ``OUT/pipeline.json``; running the command again skips
finished steps and resumes an interrupted training run, so nothing already paid for is redone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

ADVANCED = "Advanced"
STATE_NAME = "pipeline.json"


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
) -> None:
    """Train, export (INT8/FP16/ORT, TensorRT if possible) and compare: the main job, end to end."""
    import shutil

    from n2nkit.clitools import console
    from n2nkit.errors import UserInputError
    from n2nkit.training.config import TrainConfig, parse_duration
    from n2nkit.training.models import variant_names

    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in variant_names()]
    if not names or unknown:
        from n2nkit.errors import UnknownNameError

        raise UnknownNameError("model variant", (unknown or [""])[0], variant_names())
    budget_s = parse_duration(budget)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} exists and is not a folder")
    if fresh and out.exists():
        for sub in ("runs", "artifacts", "report", STATE_NAME):
            target = out / sub
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out)
    for name in names:  # validate everything before the first minute of training
        TrainConfig(variant=name, noise=noise, budget_s=budget_s, device=device).validate()

    # 1. train --------------------------------------------------------------------------
    for name in names:
        key = f"train:{name}"
        if state.get(key) == "done":
            console.print(f"[dim]train {name}: done in an earlier run, skipped[/]")
            continue
        _train(out / "runs" / name, name, noise, budget_s, device, resume=key in state)
        state[key] = "started"
        _save_state(out, state)  # marks the run resumable before the next step
        state[key] = "done"
        _save_state(out, state)

    # 2. export -------------------------------------------------------------------------
    trt_reason = _tensorrt_missing() if trt else "--no-trt"
    for name in names:
        key = f"export:{name}"
        if state.get(key) == "done":
            console.print(f"[dim]export {name}: done in an earlier run, skipped[/]")
            continue
        _export(out / "runs" / name, out / "artifacts" / name, trt=trt_reason is None)
        state[key] = "done"
        _save_state(out, state)
    if trt_reason:
        console.print(f"TensorRT engines skipped: {trt_reason}")

    # 3. compare ------------------------------------------------------------------------
    from n2nkit.commands.compare import run_compare
    from n2nkit.targets import select_targets

    models = [str(out / "artifacts" / name) for name in names]
    if shipped:
        from n2nkit.runtime.shipped import shipped_model_names

        models += shipped_model_names()
    run_compare(
        models,
        out / "report",
        select_targets(None),
        [noise],
        ["nlm", "bm3d"],
        budget=compare_budget,
        min_runs=compare_runs,
        warmup=1,
    )
    state["compare"] = "done"
    _save_state(out, state)
    console.print(f"[bold]pipeline finished[/]: report in {out / 'report' / 'report.md'}")


def _train(run_dir: Path, variant: str, noise: str, budget_s: float, device: str, resume: bool):
    from n2nkit.clitools import console
    from n2nkit.training.config import TrainConfig
    from n2nkit.training.trainer import train

    resume = resume and (run_dir / "last.pt").exists()
    config = TrainConfig(
        variant=variant,
        noise=noise,
        budget_s=budget_s,
        device=device,
        out_dir=run_dir,
        resume=resume,
        overwrite=not resume,
    )
    console.print(
        f"[bold]train {variant}[/] ({'resuming, ' if resume else ''}budget {budget_s:.0f} s)"
    )
    result = train(config, progress=True)
    console.print(
        f"  {variant}: validation PSNR {result.best_val_psnr:.2f} dB "
        f"(noisy input {result.val_psnr_noisy:.2f} dB), {result.epochs_completed} epoch(s)"
    )


def _export(run_dir: Path, out_dir: Path, trt: bool) -> None:
    from n2nkit.clitools import console
    from n2nkit.commands.export import print_results
    from n2nkit.errors import VerificationError
    from n2nkit.export.pipeline import export_checkpoint

    console.print(f"[bold]export {run_dir.name}[/] → {out_dir}")
    with console.status("exporting…") as status:
        results = export_checkpoint(
            run_dir,
            out_dir,
            int8=True,
            fp16=True,
            ort=True,
            trt=trt,
            progress=lambda msg: status.update(f"exporting {run_dir.name}: {msg}"),
        )
    print_results(results, out_dir)
    failed = [r.name for r in results if not r.passed]
    if failed:
        raise VerificationError(f"export of {run_dir.name} failed for: {', '.join(failed)}")


def _tensorrt_missing() -> str | None:
    from n2nkit.errors import MissingDependencyError
    from n2nkit.export.tensorrt_engine import require_tensorrt

    try:
        require_tensorrt()
    except MissingDependencyError as exc:
        return str(exc)
    return None


def _load_state(out: Path) -> dict[str, str]:
    path = out / STATE_NAME
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(out: Path, state: dict[str, str]) -> None:
    from n2nkit.fileio import atomic_write_text

    atomic_write_text(out / STATE_NAME, json.dumps(state, indent=2) + "\n")
