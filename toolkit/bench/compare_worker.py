"""Measure one artifact on one target, in its own process.

``n2nkit compare`` runs this as ``python -m n2nkit.bench.compare_worker JOB.json`` for every
model × target, so each measurement gets a clean process: the peak resident memory it reports
belongs to that deployment alone, thread settings cannot leak between targets, and the worker
imports only numpy and ``n2nkit.runtime``, as an app that embeds the runtime would.

The job file holds: artifact, backend, threads, sizes [[h, w, n], ...], data (an .npz with
``clean_<i>`` and ``noisy_<noise-index>_<i>`` float32 H×W×3 arrays), noises, budget_s,
min_runs, warmup; for the PyTorch rows (backend ``torch-cpu``/``torch-cuda``, artifact = the
checkpoint) also precision and compile, and only those jobs import torch
(:mod:`n2nkit.bench.torch_target`). The result (JSON on stdout) holds status, reason, backend,
psnr, per-image latency, latency per size and peak_rss_mb.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _tile_to(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Real image content at any size (never zeros: they can time faster than real data)."""
    reps = (-(-h // image.shape[0]), -(-w // image.shape[1]), 1)
    return np.ascontiguousarray(np.tile(image, reps)[:h, :w])


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Open the artifact and measure it. A backend this machine lacks (TensorRT, CUDA) skips
    the row; an artifact that does not open (broken file, wrong metadata) fails it."""
    from n2nkit.errors import MissingDependencyError, N2NError
    from n2nkit.runtime import Denoiser

    try:
        if job["backend"].startswith("torch-"):
            from n2nkit.bench.torch_target import open_denoiser

            denoiser = open_denoiser(job)
        else:
            denoiser = Denoiser.load(
                job["artifact"], backend=job["backend"], threads=job["threads"]
            )
    except MissingDependencyError as exc:
        return {"status": "skipped", "reason": str(exc)}
    except N2NError as exc:
        return {"status": "failed", "reason": str(exc)}
    try:
        return _measure(denoiser, job)
    finally:
        denoiser.close()  # a TensorRT backend's device memory, freed before the process ends


def _measure(denoiser: Any, job: dict[str, Any]) -> dict[str, Any]:
    from n2nkit.bench.timing import measure_latency, summarize
    from n2nkit.psnr import psnr as image_psnr

    data = np.load(job["data"])
    count = sum(1 for k in data.files if k.startswith("clean_"))
    clean = [data[f"clean_{i}"] for i in range(count)]
    # The float protocol's noise leaves [0, 1] (shot noise at few photons by thousands): clipped
    # here, as the runtime clips it, for the PSNR and the latency runs alike.
    noisy_images = {k: np.clip(data[k], 0.0, 1.0) for k in data.files if k.startswith("noisy_")}
    psnr: dict[str, float] = {}
    per_image_ms: list[float] = []
    for n_index, noise in enumerate(job["noises"]):
        values = []
        for i in range(count):
            noisy = noisy_images[f"noisy_{n_index}_{i}"]
            t0 = time.perf_counter()
            out = denoiser(noisy)
            per_image_ms.append((time.perf_counter() - t0) * 1e3)
            values.append(image_psnr(clean[i], np.clip(out, 0.0, 1.0)))
        psnr[noise] = float(np.mean(values))

    latency: dict[str, dict[str, float]] = {}
    if per_image_ms:
        pixels = np.mean([c.shape[0] * c.shape[1] for c in clean])
        stats = summarize(per_image_ms)
        latency["per-image"] = {**stats.as_dict(), "mpx_per_s": pixels / 1e6 / (stats.p50_ms / 1e3)}
    source = noisy_images.get("noisy_0_0", clean[0])
    for h, w, n in job["sizes"]:
        image = _tile_to(source, h, w)
        if n == 1:
            stats = measure_latency(
                lambda image=image: denoiser(image),
                budget_s=job["budget_s"],
                min_runs=job["min_runs"],
                warmup=job.get("warmup", 2),
            )
        else:
            batch = np.stack([_tile_to(source[i:], h, w) for i in range(n)])
            stats = measure_latency(
                lambda batch=batch: denoiser.batch(batch),
                budget_s=job["budget_s"],
                min_runs=job["min_runs"],
                warmup=job.get("warmup", 2),
            )
        entry = stats.as_dict()
        entry["mpx_per_s"] = h * w * n / 1e6 / (stats.p50_ms / 1e3)
        latency[f"{h}x{w}x{n}"] = entry

    return {
        "status": "measured",
        "backend": denoiser.backend,
        "psnr": psnr,
        "latency": latency,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = run_job(job)
    except Exception as exc:  # reported as a failed row, never a crash of compare itself
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
