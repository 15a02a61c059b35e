"""``n2nkit compare``: PSNR and latency side by side, desktop-GPU vs mobile-like targets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ADVANCED = "Measurement"


def compare(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Export folders (from `n2nkit export`), run folders or .pt checkpoints (the "
            "PyTorch rows), .onnx files, or shipped model names (n2n, truncated).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for report.{json,csv,md} and the plot.")
    ] = Path("compare-report"),
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="Target or group to run (repeatable): desktop-gpu, desktop-cpu, mobile-like, "
            "or a target name (see --list-targets). Default: all.",
        ),
    ] = None,
    noise: Annotated[
        list[str] | None,
        typer.Option("--noise", "-n", help="Noise level(s) for PSNR (repeatable)."),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            help="Classical baseline(s) to include: nlm, bm3d (bm3d needs `pip install bm3d`).",
        ),
    ] = None,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Leave the classical baselines out.")
    ] = False,
    budget: Annotated[
        float,
        typer.Option(help="Seconds of timed runs per input size.", rich_help_panel=ADVANCED),
    ] = 3.0,
    min_runs: Annotated[
        int, typer.Option(help="Timed runs per input size, at least.", rich_help_panel=ADVANCED)
    ] = 3,
    warmup: Annotated[
        int, typer.Option(help="Untimed runs before timing.", rich_help_panel=ADVANCED)
    ] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the noise draws.")] = 0,
    clip_noise: Annotated[
        bool,
        typer.Option(
            "--clip-noise/--float-noise",
            help="The 8-bit protocol (default): noisy test images clipped to [0, 1] and "
            "rounded to 8 bits, as a saved photo is. --float-noise keeps them unclipped floats.",
        ),
    ] = True,
    list_targets: Annotated[
        bool, typer.Option("--list-targets", help="List the targets and exit.")
    ] = False,
    torch_compile: Annotated[
        bool,
        typer.Option(
            "--torch-compile",
            help="PyTorch rows: torch.compile the network (CUDA graphs on CUDA).",
            rich_help_panel=ADVANCED,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an earlier report in --out (without this, compare refuses)."),
    ] = False,
) -> None:
    """PSNR and latency of each model on each deployment target, with a report and a plot."""
    from n2nkit.bench.targets import TARGETS, select_targets
    from n2nkit.cli.console import console
    from n2nkit.errors import UserInputError

    if list_targets:
        _print_targets(console, TARGETS)
        return
    if not models:
        raise UserInputError("name at least one model: an export folder, a .onnx file or n2n")
    if not 0 <= budget < float("inf") or min_runs < 1 or warmup < 0:  # NaN fails too
        raise UserInputError("--budget must be a number >= 0, --min-runs >= 1 and --warmup >= 0")
    from n2nkit.bench.baselines import BASELINES

    baseline_names = [] if no_baselines else (baseline or [b.name for b in BASELINES])
    unknown = [b for b in baseline_names if b not in {x.name for x in BASELINES}]
    if unknown:
        from n2nkit.errors import UnknownNameError

        raise UnknownNameError("baseline", unknown[0], [b.name for b in BASELINES])
    run_compare(
        models,
        out,
        select_targets(target),
        noise or ["gaussian:25"],
        baseline_names,
        budget=budget,
        min_runs=min_runs,
        warmup=warmup,
        seed=seed,
        clip_noise=clip_noise,
        torch_compile=torch_compile,
        overwrite=overwrite,
    )


def run_compare(
    models: list[str],
    out: Path,
    targets: list,
    noises: list[str],
    baselines: list[str],
    *,
    budget: float,
    min_runs: int,
    warmup: int = 2,
    seed: int = 0,
    clip_noise: bool = True,
    torch_compile: bool = False,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Shared by ``compare`` and ``pipeline``: measure with a spinner, print, write files.
    An earlier report in ``out`` is refused unless ``overwrite``, before any measurement."""
    from rich.markup import escape

    from n2nkit.bench.compare import compare as run
    from n2nkit.bench.report import write_all
    from n2nkit.cli.console import console
    from n2nkit.fileio import make_out_dir

    _check_no_report(Path(out), overwrite)
    created = make_out_dir(out)  # before minutes of measurement, not after
    try:
        with console.status("measuring…") as status:
            report = run(
                models,
                targets,
                noises,
                budget_s=budget,
                min_runs=min_runs,
                warmup=warmup,
                baselines=baselines,
                seed=seed,
                clip_noise=clip_noise,
                torch_compile=torch_compile,
                on_step=lambda msg: status.update(f"measuring: {escape(msg)}"),
            )
        paths = write_all(report, out)
    except BaseException:
        if created and not any(Path(out).iterdir()):
            import shutil

            shutil.rmtree(created, ignore_errors=True)  # a failed compare leaves no empty --out
        raise
    _print_report(console, report)
    console.print("wrote " + ", ".join(escape(str(p)) for p in paths.values()))
    failed = [r for r in report.rows if r.status == "failed"]
    if failed:  # the report is written, but a broken model must not pass for a measured one
        from n2nkit.errors import N2NError

        first = failed[0]
        reason = (first.reason or "no reason given").strip().splitlines()[0]
        raise N2NError(
            f"{len(failed)} measurement(s) failed, e.g. {first.model} on {first.target}: "
            f"{reason} (the report lists each)"
        )
    return paths


def _check_no_report(out: Path, overwrite: bool) -> None:
    from n2nkit.bench.report import REPORT_FILES
    from n2nkit.errors import UserInputError

    found = [name for name in REPORT_FILES.values() if (out / name).exists()]
    if found and not overwrite:
        raise UserInputError(
            f"{out} holds a report already ({', '.join(found)}): pass --overwrite to replace "
            "it, or choose another --out"
        )


def _print_targets(console, targets) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="compare targets")
    for col in ("target", "group", "backend", "artifact", "threads", "input sizes (H×W×N)"):
        table.add_column(col)
    for t in targets:
        sizes = ", ".join(f"{h}×{w}×{n}" for h, w, n in t.sizes)
        threads = str(t.threads) if t.threads else "all"
        table.add_row(
            *(escape(str(c)) for c in (t.name, t.group, t.backend, t.artifact, threads, sizes))
        )
    console.print(table)


def _print_report(console, report) -> None:
    """The same compact table as report.md's, then what was not measured and the findings."""
    from rich.markup import escape
    from rich.table import Table

    from n2nkit.bench.report import LEGEND, compact_cells, compact_columns, not_measured

    noises = report.protocol["noise"]
    title = f"n2nkit compare — {report.machine['cpu']}, GPU: {report.machine['gpu']}"
    table = Table(title=title, caption=LEGEND)
    cells = [compact_cells(row, noises) for row in report.rows]
    for i, col in enumerate(compact_columns(noises)):
        # numbers are never cut: a narrow terminal folds the headers instead
        widest = max((len(r[i]) for r in cells), default=1)
        table.add_column(col, justify="left" if i < 3 else "right", min_width=widest,
                         no_wrap=i < 3, overflow="fold")  # fmt: skip
    for row in cells:
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    for line in not_measured(report):
        console.print(f"  {escape(line)}", soft_wrap=True)
    if report.findings:
        console.print("\n[bold]Findings[/bold]")
        for finding in report.findings:
            console.print(f"- {escape(finding)}")
