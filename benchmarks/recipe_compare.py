"""Training recipes at equal wall time: validation PSNR (mean and per-photo spread) per recipe.

    python benchmarks/recipe_compare.py --budget 150s --md docs/models.md

Each row is one `n2nkit train` run (blind gaussian 0-50, n2n, one CPU thread) from scratch
with the same budget; what differs is the recipe or one setting of it. Validation is the six
built-in validation photos (equal crops from each, noise levels drawn across 0-50); the test
photos are never touched here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mdsection import replace_section  # noqa: E402

ROWS = {
    "report (direct, crop 32, batch 400, step, photos only)": ["--recipe", "report"],
    "fast (residual, crop 64, batch 25, cosine, 60 % synthetic)": ["--recipe", "fast"],
    "fast, photos only (synthetic 0)": ["--recipe", "fast", "--synthetic-fraction", "0"],
    "fast, crop 32 batch 100 (same pixels per step)": ["--crop", "32", "--batch-size", "100"],
    "fast, direct prediction": ["--recipe", "fast", "--direct"],
    "fast, batch 100": ["--recipe", "fast", "--batch-size", "100"],
}


def run(name: str, extra: list[str], budget: str, variant: str, out: Path) -> dict:
    cmd = [
        "n2nkit", "train", "--variant", variant, "--noise", "gaussian:0-50", "--budget", budget,
        "--threads", "1", "--val-size", "600", "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda r: r["val_psnr"])
    pairs = sum(r["pairs"] for r in lines)
    return {
        "recipe": name,
        "args": " ".join(extra),
        "val_psnr": best["val_psnr"],
        "noisy": best["val_psnr_noisy"],
        "by_photo": best["val_psnr_by_photo"],
        "crops": pairs,
        "crops_per_s": pairs / sum(r["train_s"] for r in lines),
    }


def markdown(rows: list[dict], budget: str, variant: str) -> str:
    head = (
        f"`python benchmarks/recipe_compare.py --budget {budget} --variant {variant}`: each run "
        f"trains {variant} from scratch for {budget} on one CPU thread (blind gaussian 0-50), "
        "validation on the six validation photos (mean over photos; spread = lowest and highest "
        "photo).\n\n"
        "| recipe | val PSNR | gain over noisy | photo spread | crops seen | crops/s |\n"
        "| --- | ---: | ---: | --- | ---: | ---: |\n"
    )
    body = "".join(
        f"| {r['recipe']} | {r['val_psnr']:.2f} dB | {r['val_psnr'] - r['noisy']:+.2f} dB | "
        f"{min(r['by_photo']):.2f}–{max(r['by_photo']):.2f} | {r['crops']:,} | "
        f"{r['crops_per_s']:.0f} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="150s")
    parser.add_argument("--variant", default="n2n")
    parser.add_argument("--md", type=Path, help="write the table into this markdown file")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, extra) in enumerate(ROWS.items()):
            rows.append(run(name, extra, args.budget, args.variant, Path(tmp) / str(i)))
            print(json.dumps(rows[-1]), flush=True)
    spread = statistics.pstdev(r["val_psnr"] for r in rows)
    text = (
        markdown(rows, args.budget, args.variant) + f"\nSpread across recipes: {spread:.2f} dB.\n"
    )
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.md:
        replace_section(args.md, "Recipe by measurement", text)


if __name__ == "__main__":
    main()
