"""Export benchmark: time to produce each artifact and its CPU latency at 1 and 2 threads.

    python benchmarks/export_bench.py RUN_OR_CHECKPOINT [--out DIR] [--md docs/benchmarks.md]

Exports with ``--int8 --fp16 --ort`` through :func:`n2nkit.export.pipeline.export_checkpoint`
(verification included in the time), then times each passed artifact with onnxruntime on the
CPU for a 1×3×256×384 photo and a 400×3×32×32 patch batch (the report's workload): median of
timed runs after one warm-up, bounded by a per-case time budget so the whole run stays short.
With ``--md`` it rewrites the "## Export" section of that file (other sections untouched).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mdsection import publish

CASES = {"photo 1×256×384": (1, 256, 384), "patches 400×32×32": (400, 32, 32)}
THREADS = (1, 2)


def latency_ms(path: Path, shape: tuple[int, int, int], threads: int, budget_s: float) -> float:
    """Median ms per call through the runtime's onnxruntime backend, as apps run it."""
    import numpy as np

    from n2nkit.bench.timing import measure_latency
    from n2nkit.runtime.ort_backend import OrtBackend

    n, h, w = shape
    x = np.random.default_rng(0).random((n, 3, h, w), dtype=np.float32)
    with OrtBackend(path, device="cpu", threads=threads) as backend:
        stats = measure_latency(
            lambda: backend.infer(x), warmup=1, min_runs=3, max_runs=20, budget_s=budget_s
        )
    return stats.p50_ms


def section(rows: list[dict], machine: str, source: str) -> str:
    cols = [f"{case} {t} thr (ms)" for case in CASES for t in THREADS]
    lines = [
        "## Export",
        "",
        f"`python benchmarks/export_bench.py {source}` on {machine}, load average "
        f"{os.getloadavg()[0]:.1f} at the end. Latencies are medians of a few runs. Export time "
        "includes verification against PyTorch; PSNR Δ is against PyTorch for model.onnx and "
        "against the FP32 ONNX model for the others.",
        "",
        "| artifact | status | size | export (s) | max err | PSNR Δ (dB) | "
        + " | ".join(cols)
        + " |",
        "|" + "---|" * (6 + len(cols)),
    ]
    for r in rows:
        lat = [f"{r['lat'].get((c, t), float('nan')):.1f}" for c in CASES for t in THREADS]
        lines.append(
            f"| {r['name']} | {r['status']} | {r['size']} | {r['seconds']:.1f} | {r['err']} | "
            f"{r['dpsnr']} | " + " | ".join(lat) + " |"
        )
    notes = [r["note"] for r in rows if r["note"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp/n2nkit-export-bench"))
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per latency case")
    parser.add_argument("--int8-max-loss", type=float, default=0.2, help="as n2nkit export's")
    args = parser.parse_args(argv)

    from n2nkit.export.pipeline import export_checkpoint
    from n2nkit.export.verify import TOLERANCES, Tolerance
    from n2nkit.sysinfo import cpu_model

    machine = f"{cpu_model()} ({os.cpu_count()} cores visible)"
    rows = []
    int8 = Tolerance(TOLERANCES["int8"].max_abs, args.int8_max_loss)
    artifacts = export_checkpoint(
        args.checkpoint, args.out, int8=True, fp16=True, ort=True, tolerances={"int8": int8}
    )
    for row in artifacts:
        item = {
            "name": row.name,
            "status": f"{row.status.symbol} {row.status.value}",
            "size": "-" if row.size_bytes is None else f"{row.size_bytes / 1e6:.2f} MB",
            "seconds": row.seconds,
            "err": "-" if row.max_abs_error is None else f"{row.max_abs_error:.1e}",
            "dpsnr": "-" if row.psnr_change is None else f"{row.psnr_change:+.3f}",
            "lat": {},
            "note": "",
        }
        if "calibration" in row.details:
            d = row.details
            item["note"] = (
                f"INT8: calibration {d['calibration']}, reduce_range="
                f"{str(d['reduce_range']).lower()}, chosen on training crops; "
                f"PSNR Δ there by candidate {d['selection_psnr_change']} dB; "
                f"ops on quantized inputs {d['quantized_ops']}."
            )
        if row.passed:
            for case, shape in CASES.items():
                for threads in THREADS:
                    item["lat"][(case, threads)] = latency_ms(row.path, shape, threads, args.budget)
        print(item, flush=True)
        rows.append(item)
    text = section(rows, machine, str(args.checkpoint))
    publish(text, args.md, "Export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
