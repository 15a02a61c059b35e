"""Training speed: images/s per variant through the real ``train()`` (same code as a run).

    python benchmarks/train_speed.py [--variants n2n,truncated] [--device cpu|cuda|auto]
                                     [--epoch-size N] [--batch-size 400] [--md docs/benchmarks.md]

Each variant trains ``--epochs`` (default 2) short epochs on the built-in photos at
gaussian:25; the first epoch is warm-up (cuDNN autotuning, allocator), the figure is the last
epoch's training steps only (no validation, no checkpoint writing). On CUDA the default epoch is
the report's 50,000 pairs and the epoch time is printed: the target is <= 1 s for n2n on an H100.
With ``--md`` the "## Training speed" section of that file is rewritten (others untouched).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from mdsection import replace_section

CPU_EPOCH = 800  # 2 batches of 400: a few minutes for all variants on 2 cores
CUDA_EPOCH = 50_000  # the report's epoch


def measure(variant: str, device: str, epoch_size: int, batch_size: int, epochs: int) -> dict:
    from n2nkit.training.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="n2nkit-speed-") as tmp:
        config = TrainConfig(
            variant=variant,
            epochs=epochs,
            epoch_size=epoch_size,
            batch_size=batch_size,
            val_size=64,
            device=device,
            out_dir=Path(tmp) / variant,
        )
        result = train(config, progress=False)
    last = result.history[-1]
    return {
        "variant": variant,
        "device": last["device"],
        "images_per_s": last["images_per_s"],
        "epoch_s": last["train_s"],
        "pairs": last["pairs"],
        "epoch_50k_s": 50_000 / last["images_per_s"],
    }


def machine(device: str) -> str:
    import torch

    from n2nkit.sysinfo import cpu_model, gpu_name, usable_cores

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = f"{cpu_model()}, {usable_cores()} cores, torch {torch.__version__}, "
    where += f"{torch.get_num_threads()} threads, load average {load:.1f} at start"
    if device.startswith("cuda"):
        where = (
            f"{gpu_name() or torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); " + where
        )
    return where


def section(rows: list[dict], where: str, batch_size: int) -> str:
    lines = [
        "## Training speed",
        "",
        f"`python benchmarks/train_speed.py` — {where}. Batch {batch_size}, 32×32 crops, "
        "gaussian:25, the real `train()` loop (crops, flips, noise and the optimizer step; "
        "validation and checkpoints excluded), last of 2 epochs.",
        "",
        "| variant | device | images/s | one 50,000-pair epoch |",
        "|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['device']} | {r['images_per_s']:,.0f} | "
            f"{r['epoch_50k_s']:,.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="all", help="comma list or all")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epoch-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--md", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from n2nkit.training.models import variant_names
    from n2nkit.training.trainer import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    cuda = device.startswith("cuda")
    epoch_size = args.epoch_size or (CUDA_EPOCH if cuda else CPU_EPOCH)
    names = variant_names() if args.variants == "all" else args.variants.split(",")
    where = machine(device)
    print(where, flush=True)
    rows = []
    for name in names:
        row = measure(name, device, epoch_size, args.batch_size, args.epochs)
        rows.append(row)
        msg = f"{name:10s} {row['device']:6s} {row['images_per_s']:10,.0f} img/s"
        msg += f"   epoch of {row['pairs']:,} pairs: {row['epoch_s']:.2f} s"
        if cuda and name == "n2n":
            verdict = "meets" if row["epoch_s"] <= 1.0 else "misses"
            msg += f"  ({verdict} the <= 1 s target for a 50,000-pair n2n epoch)"
        print(msg, flush=True)
    if args.md:
        replace_section(args.md, "Training speed", section(rows, where, args.batch_size))
        print(f"wrote the Training speed section of {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
