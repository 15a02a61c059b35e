"""Runtime latency: ms per image and megapixels/s for each available backend and thread count.

    python benchmarks/runtime_latency.py [--model n2n] [--sizes 512x768,1080x1920]
                                         [--threads 1,2] [--md docs/benchmarks.md]

Times ``Denoiser.__call__`` (padding, tiling and dtype conversion included: what an app gets)
on a noisy photo at each size, after warm-up; the median of the timed runs is reported. For
context on the CPU it also measures:

* the machine's FP32 peak: the best SGEMM onnxruntime's own kernels reach (a 2048³ MatMul) at
  the same thread count. On a virtual machine /proc/cpuinfo shows the base clock only; the
  effective clock the peak implies (peak / cores / FLOPs per cycle) is printed beside it;
* torch eager running the same network on the same input at the same thread count (the better
  of NCHW and channels-last), for the speed-up the runtime buys.

Efficiency is the useful work (2 × the multiply-accumulates of the network on the padded image,
as if run whole) divided by the time, against that peak. Large images are timed with the
default tile (1024) and untiled (``--tiles``), to show what tiling costs. With ``--md`` the
"## Runtime latency" section of that file is rewritten.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from mdsection import replace_section

from n2nkit.timing import measure_latency

GEMM = 2048


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",")]  # type: ignore[misc]


def noisy_photo(h: int, w: int) -> np.ndarray:
    from n2nkit.training.data import load_builtin_images

    photo = load_builtin_images("test")[0]
    reps = (-(-h // photo.shape[0]), -(-w // photo.shape[1]), 1)
    clean = np.tile(photo, reps)[:h, :w].astype(np.float32) / 255.0
    noise = np.random.default_rng(0).normal(0, 25 / 255, clean.shape)
    return np.rint(np.clip(clean + noise, 0, 1) * 255).astype(np.uint8)


def flops_per_cycle() -> int | None:
    """FP32 FLOPs per cycle per core of the vector units this script recognises."""
    from n2nkit.sysinfo import cpu_flags

    family, vendor = 0, ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                family = int(value) if key == "cpu family" and not family else family
                vendor = value if key == "vendor_id" else vendor
    except OSError:
        return None
    flags = cpu_flags()
    if "avx512f" in flags and vendor == "AuthenticAMD":
        return 64 if family >= 26 else 32  # Zen 5: two 512-bit FMA pipes; Zen 4: 256-bit
    if "avx512f" in flags:
        return 64  # Intel server cores: two 512-bit FMA units
    return 32 if "fma" in flags else None


def gemm_peak_gflops(threads: int, budget_s: float) -> float:
    """The best FP32 GEMM rate onnxruntime's MLAS kernels reach here: its practical peak."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [GEMM, GEMM])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [GEMM, GEMM])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [GEMM, GEMM])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemm.onnx"
        onnx.save(model, str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((GEMM, GEMM), dtype=np.float32)
    stats = measure_latency(lambda: session.run(None, {"a": x, "b": x}), budget_s=budget_s)
    best_ms = min(stats.p50_ms, stats.mean_ms)
    return 2 * GEMM**3 / (best_ms / 1e3) / 1e9


def torch_eager_ms(variant: str, h: int, w: int, threads: int, budget_s: float) -> float:
    """The same network in torch eager, same padded input and threads (better memory layout)."""
    import torch

    from n2nkit.training.models import create_model

    torch.set_num_threads(threads)
    model = create_model(variant).eval()
    best = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        net = model.to(memory_format=layout)
        x = torch.rand(1, 3, h, w).contiguous(memory_format=layout)
        with torch.inference_mode():
            stats = measure_latency(lambda net=net, x=x: net(x), budget_s=budget_s)
        best = min(best, stats.p50_ms)
    return best


@functools.cache  # one count per network and size, not one per backend × threads × tile
def macs(variant: str, h: int, w: int) -> int:
    from n2nkit.training.models import count_macs, create_model

    return count_macs(create_model(variant).eval(), h, w)


def section(rows: list[dict], where: str, peaks: dict[int, dict], model: str) -> str:
    lines = [
        "## Runtime latency",
        "",
        f"`python benchmarks/runtime_latency.py --model {model}` — {where}. `Denoiser` calls on "
        "a noisy uint8 photo (reflect-padding, tiling, conversions included); median of timed "
        "runs after warm-up. GFLOP/s counts the network's useful work on the padded image; "
        "torch is eager mode on the same network, input and threads (the better of NCHW and "
        "channels-last).",
        "",
        "| threads | FP32 peak: best SGEMM (onnxruntime MLAS, 2048³) |",
        "|---:|---|",
    ]
    for t, p in peaks.items():
        clock = f" = {t} × {p['per_cycle']} FLOP/cycle × {p['ghz']:.2f} GHz" if p["ghz"] else ""
        lines.append(f"| {t} | {p['gemm']:.0f} GFLOP/s{clock} |")
    lines += [
        "",
        "| backend | threads | image | tile | ms / image | MP/s | GFLOP/s | % of FP32 peak | "
        "torch eager ms | × torch |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pct = f"{r['pct_peak']:.0f} %" if r.get("pct_peak") else "–"
        torch_ms = f"{r['torch_ms']:.0f}" if r.get("torch_ms") else "–"
        speedup = f"{r['torch_ms'] / r['ms']:.2f}×" if r.get("torch_ms") else "–"
        tile = "none" if r["tile"] >= max(r["h"], r["w"]) else str(r["tile"])
        lines.append(
            f"| {r['backend']} | {r['threads'] or 'all'} | {r['w']}×{r['h']} | {tile} | "
            f"{r['ms']:.0f} | {r['mpx_s']:.2f} | {r['gflops']:.0f} | {pct} | {torch_ms} | "
            f"{speedup} |"
        )
    return "\n".join(lines) + "\n"


def available_backends() -> list[str]:
    from n2nkit.runtime.ort_backend import cuda_provider_available

    names = ["ort-cpu"]
    if cuda_provider_available():
        names.append("ort-cuda")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="n2n", help="shipped name, .onnx file or folder")
    parser.add_argument("--sizes", default="512x768,1080x1920", help="HxW list")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts")
    parser.add_argument("--tiles", default="1024,4096", help="tile sizes for large images")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds per case")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch eager column")
    parser.add_argument("--md", type=Path, default=None)
    args = parser.parse_args(argv)

    from n2nkit.runtime import Denoiser
    from n2nkit.runtime.tiling import round_up
    from n2nkit.sysinfo import machine_line, package_version

    load = os.getloadavg()[0]
    where = (
        f"{machine_line()}; onnxruntime {package_version('onnxruntime')}, "
        f"torch {package_version('torch')}; load average {load:.1f} at start"
    )
    print(where, flush=True)
    threads_list = [int(t) for t in args.threads.split(",")]
    peaks = {}
    per_cycle = flops_per_cycle()
    for t in threads_list:
        gemm = gemm_peak_gflops(t, args.budget)
        ghz = gemm / t / per_cycle if per_cycle else None
        peaks[t] = {"gemm": gemm, "per_cycle": per_cycle, "ghz": ghz}
        print(f"{t} thread(s): peak {peaks[t]}", flush=True)

    rows = []
    tiles = [int(t) for t in args.tiles.split(",")]
    for h, w in parse_sizes(args.sizes):
        image = noisy_photo(h, w)
        torch_ms: dict[int, float] = {}
        for tile in tiles if max(h, w) > min(tiles) else tiles[:1]:
            for backend in available_backends():
                for t in threads_list if backend == "ort-cpu" else [None]:
                    denoiser = Denoiser.load(args.model, backend=backend, threads=t, tile=tile)
                    meta = denoiser.metadata
                    ph, pw = round_up(h, meta.size_multiple), round_up(w, meta.size_multiple)
                    stats = measure_latency(lambda d=denoiser, x=image: d(x), budget_s=args.budget)
                    denoiser.close()  # TensorRT: free this engine's GPU memory before the next
                    work = 2 * macs(meta.variant, ph, pw) / 1e9
                    row = {"backend": backend, "threads": t, "h": h, "w": w, "tile": tile,
                           "ms": stats.p50_ms, "runs": stats.runs,
                           "mpx_s": h * w / 1e6 / (stats.p50_ms / 1e3),
                           "gflops": work / (stats.p50_ms / 1e3)}  # fmt: skip
                    if t is not None:
                        row["pct_peak"] = 100 * row["gflops"] / peaks[t]["gemm"]
                        if not args.no_torch:
                            if t not in torch_ms:
                                torch_ms[t] = torch_eager_ms(meta.variant, ph, pw, t, args.budget)
                            row["torch_ms"] = torch_ms[t]
                    rows.append(row)
                    print(row, flush=True)
    text = section(rows, where, peaks, args.model)
    print(text)
    if args.md:
        replace_section(args.md, "Runtime latency", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
