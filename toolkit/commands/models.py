"""``n2nkit models``: the registered U-Net variants with their size and cost."""

from __future__ import annotations

import math
from typing import Annotated

import typer


def models(
    size: Annotated[
        int, typer.Option(help="Side of the square RGB input used to count MACs.")
    ] = 32,
) -> None:
    """List the model variants with parameters and multiply-accumulates per image."""
    from rich.table import Table

    from n2nkit.clitools import console
    from n2nkit.training.models import describe_variants

    check_size(size)
    table = Table(title=f"n2nkit variants (MACs per {size}×{size} RGB image)")
    for column in ("variant", "parameters", "MACs", "size multiple", "description"):
        table.add_column(column, justify="right" if column in ("parameters", "MACs") else "left")
    for row in describe_variants(size):
        table.add_row(
            row.name,
            f"{row.parameters:,}",
            f"{row.macs / 1e6:,.1f} M",
            str(row.size_multiple),
            row.description,
        )
    console.print(table)
    _print_shipped(console)


MAX_SIZE = 1024  # MACs are counted by running the model: larger sides cost gigabytes


def check_size(size: int) -> None:
    """One line for a side no variant can be counted at: not positive, too large, or not a
    multiple of every variant's size multiple (which ones, and the multiple they need)."""
    from n2nkit.errors import UserInputError
    from n2nkit.training.models import create_model, variant_names

    if size < 1:
        raise UserInputError(f"--size must be a positive number of pixels, got {size}")
    if size > MAX_SIZE:
        raise UserInputError(
            f"--size {size} is too large to count (at most {MAX_SIZE}); MACs grow with the "
            f"pixels: multiply the count at {MAX_SIZE} by ({size}/{MAX_SIZE})²"
        )
    multiples = {name: create_model(name).size_multiple for name in variant_names()}
    misfits = [f"{name} ({m})" for name, m in multiples.items() if size % m]
    if misfits:
        step = math.lcm(*multiples.values())
        near = max(step, size - size % step)
        raise UserInputError(
            f"--size {size} is not a multiple of the size multiple of {', '.join(misfits)}; "
            f"use a multiple of {step} (e.g. {near}), which fits every variant"
        )


def _print_shipped(console) -> None:
    """The trained models inside the package (what `n2nkit denoise` uses by default)."""
    from rich.table import Table

    from n2nkit.runtime.shipped import shipped_model_names, shipped_model_record

    record = shipped_model_record()
    table = Table(title="shipped models (n2nkit denoise --model NAME; n2n is the default)")
    for column in ("name", "variant", "noise", "training", "val PSNR", "file"):
        table.add_column(column)
    for name in shipped_model_names():
        info = record.get(name, {})
        minutes = info.get("training_s")
        table.add_row(
            name,
            info.get("variant", "?") + (" (residual)" if info.get("residual") else ""),
            info.get("noise", "?"),
            f"{minutes / 60:.0f} min, {info.get('device', '?')}" if minutes else "?",
            f"{info['val_psnr']:.2f} dB" if "val_psnr" in info else "?",
            f"runtime/models/{name}.onnx",
        )
    console.print(table)
