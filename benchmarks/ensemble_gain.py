"""Quality mode (8-fold self-ensemble): its PSNR gain and its time cost on the test photos.

    python benchmarks/ensemble_gain.py [--model n2n] [--threads 2] [--md docs/runtime.md]

Noise is added to the clean test photos under the 8-bit protocol (clipped to [0, 255] and
rounded, as a saved photo is), the same draws as `n2nkit compare` (seed 0), and each photo is
denoised with and without ``ensemble=True`` through the runtime, as `n2nkit denoise` runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from mdsection import publish  # noqa: E402

from n2nkit.bench.compare import prepare_test_data  # noqa: E402
from n2nkit.psnr import psnr  # noqa: E402
from n2nkit.runtime import Denoiser  # noqa: E402
from n2nkit.sysinfo import machine_summary  # noqa: E402


def measure(model: str, noises: list[str], threads: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        names, path = prepare_test_data(noises, Path(tmp) / "test.npz", clip=True)
        data = np.load(path)
        for ensemble in (False, True):
            with Denoiser.load(model, backend="ort-cpu", threads=threads, ensemble=ensemble) as d:
                for n, noise in enumerate(noises):
                    scores, seconds = [], 0.0
                    for i in range(len(names)):
                        start = time.perf_counter()
                        out = d(data[f"noisy_{n}_{i}"])
                        seconds += time.perf_counter() - start
                        scores.append(psnr(data[f"clean_{i}"], np.clip(out, 0.0, 1.0)))
                    rows.append({"ensemble": ensemble, "noise": noise,
                                 "psnr": float(np.mean(scores)),
                                 "s_per_image": seconds / len(names)})  # fmt: skip
    return rows


def markdown(rows: list[dict], model: str, threads: int) -> str:
    cpu = machine_summary()["cpu"]
    lines = [
        "## Quality mode (self-ensemble)",
        "",
        f"`python benchmarks/ensemble_gain.py --model {model} --threads {threads}` on {cpu} "
        f"({threads} onnxruntime threads): coffee + flower, 8-bit protocol.",
        "",
        "| noise | PSNR | PSNR, --ensemble | gain | s/image | s/image, --ensemble |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    plain = {r["noise"]: r for r in rows if not r["ensemble"]}
    for r in (r for r in rows if r["ensemble"]):
        p = plain[r["noise"]]
        lines.append(
            f"| {r['noise']} | {p['psnr']:.2f} dB | {r['psnr']:.2f} dB | "
            f"{r['psnr'] - p['psnr']:+.2f} dB | {p['s_per_image']:.2f} | {r['s_per_image']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="n2n")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--noise", action="append", default=None)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    noises = args.noise or ["gaussian:15", "gaussian:25", "gaussian:50"]
    rows = measure(args.model, noises, args.threads)
    publish(markdown(rows, args.model, args.threads), args.md, "Quality mode (self-ensemble)")


if __name__ == "__main__":
    main()
