"""``n2nkit train``: train one or several U-Net variants with the report's recipe."""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

ADVANCED = "Advanced"
RECIPE = "Recipe"


class Supervision(str, Enum):
    noisy = "noisy"
    clean = "clean"


class Pairs(str, Enum):
    synthetic = "synthetic"
    files = "files"
    neighbor = "neighbor"


class Loss(str, Enum):
    mse = "mse"
    l1 = "l1"


# CLI options a resume takes from this call (training.trainer.RESUME_TAKES), and options that
# only steer the command; every other option given with --resume is kept from last.pt.
RESUME_TAKES = ("epochs", "budget", "device", "threads", "precision")
COMMAND_ONLY = ("resume", "out", "progress", "overwrite")


def resume_note(ctx: typer.Context) -> str | None:
    """The note a ``--resume`` with other options prints: which of the given options the
    resume keeps from the checkpoint (ignoring this call's values) and which it takes."""

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    given = [
        name
        for name in ctx.params
        # click's ParameterSource (vendored by newer typer): compared by name
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
        and name not in COMMAND_ONLY
    ]
    kept = [flag(n) for n in given if n not in RESUME_TAKES]
    taken = [flag(n) for n in given if n in RESUME_TAKES]
    if not kept:
        return None
    return (
        f"--resume continues the run as last.pt recorded it: {', '.join(kept)} ignored (kept "
        f"from the checkpoint); taken from this call: {', '.join(taken) or 'nothing given'} "
        "(a resume takes only --epochs, --budget, --device, --threads, --precision)"
    )


def train(
    ctx: typer.Context,
    variant: Annotated[
        str, typer.Option(help="Model variant, a comma list, or 'all' (see `n2nkit models`).")
    ] = "n2n",
    data: Annotated[
        str,
        typer.Option(
            help="builtin (photos mixed with synthetic images), synthetic, a report-format "
            ".pt file (two noisy uint8 N×3×H×W tensors), a folder "
            "of clean images, a folder with two folders of noisy pairs, or DIR_A,DIR_B."
        ),
    ] = "builtin",
    val_data: Annotated[
        str | None,
        typer.Option(
            help="Validation: a (noisy, clean) .pt file or a folder of clean images "
            "(default: the built-in validation photos)."
        ),
    ] = None,
    noise: Annotated[
        str,
        typer.Option(
            help="Noise used to synthesise pairs: gaussian:25, gaussian:0-50, poisson:30, "
            "bernoulli:0.5, impulse:0.3, text:0.2, pixelate:4."
        ),
    ] = "gaussian:25",
    supervision: Annotated[
        Supervision,
        typer.Option(help="noisy = Noise2Noise; clean = Noise2Clean on the same data."),
    ] = Supervision.noisy,
    pairs: Annotated[
        Pairs | None,
        typer.Option(
            help="How training pairs are made: synthetic (--noise added to clean photos), files "
            "(two noisy folders or a .pt file), neighbor (sub-sampled from single noisy photos; "
            "--noise then only sets the validation noise). Default: from --data.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        Supervision | None,
        typer.Option("--target", hidden=True, help="Deprecated: the old name of --supervision."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Total epochs (default: 25 or 10 minutes, first reached).")
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="Wall-clock limit of this invocation: 90s, 10m, 1h, 1h30m."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Run folder (default runs/<variant>; OUT/<variant> for several)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in the out folder; takes only --epochs, --budget, --device, "
            "--threads and --precision from this call (the rest from last.pt).",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Start over in an out folder that already holds a run.")
    ] = False,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")
    ] = "auto",
    loss: Annotated[Loss, typer.Option(help="Training loss.", rich_help_panel=RECIPE)] = Loss.mse,
    recipe: Annotated[
        str,
        typer.Option(
            help="fast (default: residual, 64×64 crops, small CPU batches, cosine schedule, "
            "synthetic images mixed in) or report (the reference report's exact recipe). "
            "Options you set override the recipe's.",
            rich_help_panel=RECIPE,
        ),
    ] = "fast",
    epoch_size: Annotated[
        int | None,
        typer.Option(help="Pairs per epoch (fast 20,000; report 50,000).", rich_help_panel=RECIPE),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Batch size (fast: 25 on a CPU, 128 on a GPU; report 400).",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    lr: Annotated[
        float,
        typer.Option(
            help="Adam learning rate at the start (the schedule lowers it).",
            rich_help_panel=RECIPE,
        ),
    ] = 1e-3,
    lr_step: Annotated[
        int | None,
        typer.Option(
            help="Epochs between learning-rate drops (step schedule).", rich_help_panel=RECIPE
        ),
    ] = None,
    crop: Annotated[
        int | None,
        typer.Option(
            help="Training crop side, a multiple of the model's (fast 64; report 32).",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    residual: Annotated[
        bool | None,
        typer.Option(
            "--residual/--direct",
            help="Residual: add the input to the network's output, so it learns the noise (no "
            "extra parameters; fast's choice). Direct: predict the image (the report's).",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="Learning-rate schedule: step (×0.1 every --lr-step epochs, report) or "
            "cosine (over --epochs or --budget, whichever ends first; fast).",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    synthetic_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of synthetic dead-leaves crops per batch (default 0.6 with builtin, "
            "0 with your own folders).",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from this checkpoint's weights (fine-tune; same variant).",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    qat: Annotated[
        bool,
        typer.Option(
            "--qat",
            help="Quantization-aware fine-tuning: train the equalized network through "
            "simulated INT8 so the exported --int8 model loses less (with --init; "
            "`n2nkit export` quantizes it as simulated).",
            rich_help_panel=RECIPE,
        ),
    ] = False,
    permute_colours: Annotated[
        bool | None,
        typer.Option(
            "--permute-colours/--no-permute-colours",
            help="Draw crops with their RGB channels reordered at random (6 orders): "
            "more colours from few photos, for noise alike and independent in every channel. "
            "Default: on for synthetic and neighbor pairs, off for files and --recipe report.",
            rich_help_panel=RECIPE,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.", rich_help_panel=ADVANCED)] = 0,
    val_size: Annotated[
        int, typer.Option(help="Fixed validation crops.", rich_help_panel=ADVANCED)
    ] = 1000,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch.", rich_help_panel=ADVANCED)
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="Forward-pass precision: auto (bf16 where the GPU or CPU runs it natively), "
            "fp32, bf16, fp16 (GPU).",
            rich_help_panel=ADVANCED,
        ),
    ] = "auto",
    progress: Annotated[
        bool, typer.Option(help="Show the progress bar.", rich_help_panel=ADVANCED)
    ] = True,
) -> None:
    """Train a denoiser (Noise2Noise by default); best.pt, last.pt and metrics.jsonl per run.

    Several GPUs: ``torchrun --nproc-per-node N -m n2nkit train ...`` (DistributedDataParallel).
    """
    from n2nkit.cli.console import console, print_note
    from n2nkit.training.config import TrainConfig, parse_duration
    from n2nkit.training.models import parse_variants
    from n2nkit.training.recipes import recipe_settings, training_device_type

    if resume and (note := resume_note(ctx)):
        print_note(note)
    if target is not None:
        print_note("--target is deprecated: use --supervision (same values)")
        supervision = target
    names = parse_variants(variant)
    settings = recipe_settings(
        recipe,
        training_device_type(device),
        residual=residual,
        crop=crop,
        batch_size=batch_size,
        epoch_size=epoch_size,
        schedule=schedule,
        lr_step=lr_step,
        synthetic_fraction=synthetic_fraction,
        permute_colours=permute_colours,
    )
    _check_lr_step(lr_step, settings["schedule"], recipe, schedule_given=schedule is not None)
    _check_synthetic_fraction(data, synthetic_fraction)
    uses_residual = settings.pop("residual")
    budget_s = parse_duration(budget) if budget is not None else None
    configs = []
    for name in names:
        run = Path("runs") / name if out is None else out if len(names) == 1 else out / name
        configs.append(
            TrainConfig(
                variant=name,
                data=data,
                val_data=val_data,
                noise=noise,
                supervision=supervision.value,
                loss=loss.value,
                epochs=epochs,
                budget_s=budget_s,
                lr=lr,
                **settings,
                seed=seed,
                device=device,
                out_dir=run,
                resume=resume,
                overwrite=overwrite,
                val_size=val_size,
                num_threads=threads,
                precision=precision,
                variant_kwargs={"residual": True} if uses_residual else {},
                init=str(init) if init else None,
                pairs=pairs.value if pairs else None,
                qat=qat,
            ).validate()
        )
    from n2nkit.training.trainer import train as run_training

    _check_every_out(configs)
    results = []
    for config in configs:
        result = run_training(config, progress=progress)
        results.append(result)
        if result.rank:  # under torchrun, rank 0 alone reports
            continue
        console.out(  # out, not print: the path is text, not markup
            f"{result.variant or config.variant}: val PSNR {result.best_val_psnr:.2f} dB "
            f"(noisy input {result.val_psnr_noisy:.2f} dB) after {result.epochs_completed} "
            f"epochs -> {result.best_checkpoint}"
        )
        _note_stale_export(result.run_dir)
    if len(results) > 1 and not results[0].rank:
        _print_summary(configs, results)
    from n2nkit.training.distributed import finish

    finish()  # torchrun: every rank leaves the process group together


def _check_lr_step(
    lr_step: int | None, schedule: str, recipe: str, schedule_given: bool = False
) -> None:
    """--lr-step only shapes the step schedule: refused under another, where it did nothing."""
    if lr_step is not None and schedule != "step":
        from n2nkit.errors import UserInputError

        source = "--schedule" if schedule_given else f"the {recipe} recipe's"
        raise UserInputError(
            f"--lr-step sets the step schedule's period; this run's schedule is {schedule} "
            f"({source}): use --schedule step"
        )


def _note_stale_export(run_dir: Path) -> None:
    """The run folder also holds an export (``n2nkit export RUN --out RUN``): its artifacts are
    of the weights before this training, which compare and denoise would otherwise use."""
    from n2nkit.cli.console import print_note
    from n2nkit.runtime.artifacts import MANIFEST

    if (Path(run_dir) / MANIFEST).is_file():
        print_note(
            f"{run_dir} also holds artifacts exported before this training: re-export them with "
            f"`n2nkit export {run_dir} --out {run_dir} --overwrite`"
        )


def _check_synthetic_fraction(data: str, fraction: float | None) -> None:
    """A --synthetic-fraction the user gave (not a recipe's) other than 1 with --data synthetic:
    refused, where it was ignored."""
    if data == "synthetic" and fraction not in (None, 1.0):
        from n2nkit.errors import UserInputError

        raise UserInputError(
            "--data synthetic is all synthetic images; --synthetic-fraction sets the share mixed "
            "into builtin or a folder of photos"
        )


def _check_every_out(configs: list) -> None:
    """Several variants: every OUT/<variant> is checked (a run there needs --resume or
    --overwrite) before the first one trains for hours; the first is checked as it starts."""
    from n2nkit.training.trainer import settle_config

    for config in configs[1:]:
        settle_config(dataclasses.replace(config))


def _print_summary(configs: list, results: list) -> None:
    """One table row per variant trained in this call."""
    from rich.markup import escape
    from rich.table import Table

    from n2nkit.cli.console import console

    table = Table(title="n2nkit train")
    for col in ("variant", "epochs", "val PSNR", "gain", "best checkpoint"):
        table.add_column(col, justify="left" if col in ("variant", "best checkpoint") else "right")
    for config, r in zip(configs, results, strict=True):
        table.add_row(
            r.variant or config.variant,  # a resume trains the checkpoint's variant
            str(r.epochs_completed),
            f"{r.best_val_psnr:.2f} dB",
            f"{r.best_val_psnr - r.val_psnr_noisy:+.2f} dB",
            escape(str(r.best_checkpoint)),
        )
    console.print(table)
