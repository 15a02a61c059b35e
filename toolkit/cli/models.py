"""``n2nkit models``: the registered U-Net variants with their size and cost."""

from __future__ import annotations

from typing import Annotated

import typer


def models(
    size: Annotated[
        int, typer.Option(help="Side of the square RGB input used to count MACs.")
    ] = 32,
) -> None:
    """List the model variants with parameters and multiply-accumulates per image."""
    from rich.table import Table

    from n2nkit.cli.console import console
    from n2nkit.training.models import describe_variants

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
