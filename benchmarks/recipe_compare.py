"""Training recipes at equal compute: validation PSNR (mean and per-photo spread) per recipe.

    python benchmarks/recipe_compare.py --cpu-seconds 120 --md docs/models.md
    taskset -c 1 python benchmarks/recipe_compare.py --schedules --minutes 10 --md docs/models.md

Each row is one `n2nkit train` run (blind gaussian 0-50, n2n, one CPU thread) from scratch;
what differs is the recipe or one setting of it. Every run gets the same CPU time, not the same
wall time, so a busy machine cannot favour one row: a short calibration run measures each
recipe's crops per CPU-second, and the real run trains on that many crops for ``--cpu-seconds``
(one epoch, so the cosine schedule spans it). On an idle machine this is equal wall time.
Validation is the six built-in validation photos (equal crops from each, noise levels drawn
across 0-50); the test photos are never touched here.

``--schedules`` compares learning-rate schedules at equal wall time instead (run it pinned to
one idle core): the fast recipe with its cosine schedule for ``--minutes``, then the report's
step schedule scaled to the same run (the crops cosine got through, split into three epochs:
×0.1 after the first and second third) and a constant rate, each for the same minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mdsection import publish  # noqa: E402

ROWS = {
    "report (direct, crop 32, batch 400, step, photos only)": ["--recipe", "report"],
    "fast (residual, crop 64, batch 25, cosine, 60 % synthetic)": ["--recipe", "fast"],
    "fast, photos only (synthetic 0)": ["--recipe", "fast", "--synthetic-fraction", "0"],
    "fast, synthetic only (--data synthetic)": ["--recipe", "fast", "--data", "synthetic"],
    "fast, crop 32 batch 100 (same pixels per step)": ["--crop", "32", "--batch-size", "100"],
    "fast, direct prediction": ["--recipe", "fast", "--direct"],
}
CALIBRATION_CROPS = 400
SCHEDULE_HEADING = "Learning-rate schedule by measurement"


def _train(args: list[str]) -> float:
    """Run `n2nkit train ARGS`; the CPU seconds it used (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["n2nkit", "train", *args], check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(name: str, extra: list[str], cpu_seconds: float, variant: str, out: Path) -> dict:
    common = ["--variant", variant, "--noise", "gaussian:0-50", "--threads", "1",
              "--no-progress", "--epochs", "1", *extra]  # fmt: skip
    calibration = _train([*common, "--epoch-size", str(CALIBRATION_CROPS), "--val-size", "6",
                          "--out", str(out / "calibration")])  # fmt: skip
    crops = max(CALIBRATION_CROPS, int(CALIBRATION_CROPS * cpu_seconds / calibration))
    used = _train([*common, "--epoch-size", str(crops), "--val-size", "600", "--out", str(out)])
    return _result(name, extra, out, used)


def _result(name: str, extra: list[str], out: Path, cpu_s: float) -> dict:
    """A table row from a finished run: its best validation line and the crops it saw."""
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda r: r["val_psnr"])
    return {
        "recipe": name,
        "args": " ".join(extra),
        "val_psnr": best["val_psnr"],
        "noisy": best["val_psnr_noisy"],
        "by_photo": best["val_psnr_by_photo"],
        "crops": sum(r["pairs"] for r in lines),
        "cpu_s": cpu_s,
    }


def run_schedules(minutes: float, variant: str, tmp: Path) -> list[dict]:
    """Cosine, step (×0.1 at thirds) and constant, each for ``minutes`` of wall time."""
    common = ["--variant", variant, "--noise", "gaussian:0-50", "--threads", "1",
              "--no-progress", "--recipe", "fast", "--val-size", "600",
              "--budget", f"{minutes:g}m", "--epochs", "1000"]  # fmt: skip
    rows: list[dict] = []

    def row(i: int, name: str, extra: list[str]) -> dict:
        out = tmp / f"schedule{i}"
        result = _result(name, extra, out, _train([*common, *extra, "--out", str(out)]))
        print(json.dumps(result), flush=True)
        return result

    rows.append(row(0, "cosine over the run (fast)", ["--schedule", "cosine",
                                                      "--epoch-size", "4000"]))  # fmt: skip
    third = max(1, rows[0]["crops"] // 3)  # the report's ×0.1 steps, scaled to this run
    rows.append(
        row(
            1,
            f"step: ×0.1 after each third ({third:,}-crop epochs)",
            ["--schedule", "step", "--lr-step", "1", "--epoch-size", str(third)],
        )
    )
    rows.append(row(2, "constant 1e-3", ["--schedule", "step", "--lr-step", "1000",
                                         "--epoch-size", "4000"]))  # fmt: skip
    return rows


def table(rows: list[dict], first_column: str) -> str:
    """The markdown table both comparisons print, one row per run."""
    head = (
        f"| {first_column} | val PSNR | gain over noisy | photo spread | crops seen "
        "| CPU-s (whole run) |\n| --- | ---: | ---: | --- | ---: | ---: |\n"
    )
    return head + "".join(
        f"| {r['recipe']} | {r['val_psnr']:.2f} dB | {r['val_psnr'] - r['noisy']:+.2f} dB | "
        f"{min(r['by_photo']):.2f}–{max(r['by_photo']):.2f} | {r['crops']:,} | "
        f"{r['cpu_s']:.0f} |\n"
        for r in rows
    )


def schedule_markdown(rows: list[dict], minutes: float, variant: str) -> str:
    head = (
        f"`python benchmarks/recipe_compare.py --schedules --minutes {minutes:g}` (pinned to one "
        f"idle core with `taskset -c 1`): {variant} from scratch with the fast recipe for "
        f"{minutes:g} minutes of wall time per row, one thread; only the schedule differs. "
        "Validation: the six validation photos, blind gaussian 0-50.\n\n"
    )
    return head + table(rows, "schedule")


def markdown(rows: list[dict], cpu_seconds: float, variant: str) -> str:
    head = (
        f"`python benchmarks/recipe_compare.py --cpu-seconds {cpu_seconds:g} --variant "
        f"{variant}`: each run trains {variant} from scratch on one CPU thread for the crops "
        f"that recipe gets through in {cpu_seconds:g} CPU-seconds (blind gaussian 0-50; "
        "calibrated per recipe, so equal compute), validation on the six validation photos "
        "(mean over photos; spread = lowest and highest photo).\n\n"
    )
    return head + table(rows, "recipe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-seconds", type=float, default=120.0)
    parser.add_argument("--variant", default="n2n")
    parser.add_argument("--schedules", action="store_true", help="compare schedules instead")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time per schedule")
    parser.add_argument("--md", type=Path, help="write the table into this markdown file")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args()
    if args.schedules:
        with tempfile.TemporaryDirectory() as tmp:
            rows = run_schedules(args.minutes, args.variant, Path(tmp))
        text = f"## {SCHEDULE_HEADING}\n\n" + schedule_markdown(rows, args.minutes, args.variant)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        publish(text, args.md, SCHEDULE_HEADING)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, extra) in enumerate(ROWS.items()):
            out = Path(tmp) / str(i)
            rows.append(run(name, extra, args.cpu_seconds, args.variant, out))
            print(json.dumps(rows[-1]), flush=True)
    spread = statistics.pstdev(r["val_psnr"] for r in rows)
    text = "## Recipe by measurement\n\n" + markdown(rows, args.cpu_seconds, args.variant)
    text += f"\nStandard deviation across recipes: {spread:.2f} dB.\n"
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    publish(text, args.md, "Recipe by measurement")


if __name__ == "__main__":
    main()
