"""The reference report's Table 2, re-run on a CUDA GPU: every variant, the report's recipe and
epoch counts, on 50,000 32×32 pairs per epoch from the built-in data.

    python benchmarks/table2.py [--variants n2n,deeper,...] [--md docs/models.md]
                                [--json benchmarks/table2.json]

Each variant trains with ``--recipe report`` (direct prediction, 32×32 crops, batch 400, Adam
1e-3 ×0.1 every 10 epochs, 50,000-pair epochs, photos only) for the report's epoch count:
n2n 25, deeper 20, truncated 20, hls 12, fft 20, and inception for as many epochs as 10 minutes
of training allow (the report gave up on it). Validation is n2nkit's fixed set (1,000 crops from
the six built-in validation photos, gaussian σ = 25), not the report's 900 images, which are not
available; the report's figures are printed beside ours for orientation, not as a like-for-like
comparison. The results go into the "## Table 2, re-run" section of ``--md``.

GPU only: without a CUDA GPU it prints ``skipped: no CUDA GPU ...`` and exits 0 after running
nothing (on a CPU the table would take days).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
HEADING = "Table 2, re-run"
INCEPTION_BUDGET_S = 600.0

# (epochs, the report's PSNR, the report's time) — Table 2 of Verardo, Brousse, Fendri (2022),
# measured on their validation images on a GTX 1080-class GPU. None: epochs bounded by time.
REPORT: dict[str, tuple[int | None, str, str]] = {
    "n2n": (25, "25.54", "9 min 03"),
    "deeper": (20, "25.48", "9 min 22"),
    "truncated": (20, "25.52", "6 min 49"),
    "hls": (12, "25.33", "8 min 12"),
    "fft": (20, "25.51", "9 min 06"),
    "inception": (None, "–", "> 10 min (stopped)"),
}


def run_variant(variant: str, out: Path) -> dict:
    from n2nkit.training.config import TrainConfig
    from n2nkit.training.recipes import recipe_settings
    from n2nkit.training.trainer import train

    epochs = REPORT[variant][0]
    settings = recipe_settings("report", "cuda")
    residual = settings.pop("residual")
    config = TrainConfig(
        variant=variant,
        noise="gaussian:25",
        epochs=epochs if epochs is not None else 1000,
        budget_s=None if epochs is not None else INCEPTION_BUDGET_S,
        device="cuda",
        out_dir=out / variant,
        variant_kwargs={"residual": True} if residual else {},
        **settings,
    )
    t0 = time.perf_counter()
    result = train(config, progress=False)
    wall = time.perf_counter() - t0
    return {
        "variant": variant,
        "epochs": result.epochs_completed,
        "val_psnr": result.best_val_psnr,
        "val_psnr_noisy": result.val_psnr_noisy,
        "train_s": sum(h["train_s"] for h in result.history),
        "wall_s": wall,
        "precision": result.history[-1]["precision"],
    }


def section(rows: list[dict], gpu: str, torch_version: str) -> str:
    lines = [
        f"## {HEADING}",
        "",
        f"`python benchmarks/table2.py` — {gpu}, torch {torch_version}. The report's recipe "
        "(`--recipe report`) and epoch counts, 50,000 32×32 pairs per epoch from the built-in "
        "photos, gaussian σ = 25; validation on n2nkit's fixed 1,000 crops of the built-in "
        "validation photos (the report used 900 images of its own set: the PSNR columns are "
        "side by side, not like for like).",
        "",
        "| variant | epochs | val PSNR | training time | report: PSNR | report: time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        _, psnr, when = REPORT[r["variant"]]
        lines.append(
            f"| {r['variant']} | {r['epochs']} | {r['val_psnr']:.2f} dB "
            f"(noisy {r['val_psnr_noisy']:.2f}) | {r['train_s'] / 60:.1f} min "
            f"({r['precision']}) | {psnr} | {when} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(REPORT))
    parser.add_argument("--md", type=Path, default=HERE.parent / "docs" / "models.md")
    parser.add_argument("--json", type=Path, default=HERE / "table2.json")
    args = parser.parse_args(argv)
    from gpu_check import no_cuda_reason

    reason = no_cuda_reason()
    if reason:
        print(f"skipped: no CUDA GPU ({reason})")
        return 0
    import torch

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in REPORT]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(REPORT)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="n2nkit-table2-") as tmp:
        for variant in variants:
            print(f"table2: {variant} …", flush=True)
            rows.append(run_variant(variant, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    args.json.write_text(json.dumps(rows, indent=2))
    from mdsection import publish

    publish(section(rows, torch.cuda.get_device_name(0), torch.__version__), args.md, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
