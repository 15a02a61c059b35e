"""The GPU half of n2nkit, exercised on one CUDA GPU in one command (under 9 minutes on an H100).

    python benchmarks/gpu_check.py [--json benchmarks/gpu_check.json] [--md docs/benchmarks.md]

What it runs, each step timed and recorded (a failed step is recorded and the script exits 1):

1. CUDA training of ``n2n`` with the report's recipe (32×32 crops, batch 400) in fp32, bf16 and
   fp16 (fp16 with its gradient scaler), a few hundred steps each: validation PSNR, images/s.
2. Resume cuda -> cpu: the fp32 run's ``last.pt`` continued on the CPU for a few seconds.
3. Export of the CUDA-trained (bf16) checkpoint (FP32 + FP16 ONNX), verified against
   onnxruntime by the export pipeline itself (max error, PSNR change).
4. The PyTorch CUDA target on a 1-megapixel image (1024×1024): fp16 and bf16 autocast,
   channels-last, eager and ``torch.compile`` (``default`` and ``reduce-overhead``, i.e. CUDA
   graphs). GPU time from CUDA events with the image already on
   the device (the 2 ms target), and end to end through the runtime's Denoiser (numpy in and out).
5. The 50,000-pair 32×32 epoch of ``n2n`` (report recipe, bf16 where native): the real
   ``train()`` loop's last epoch, beside forward+backward+Adam alone on a fixed batch (no crops,
   no noise), so the figure says whether the data path or the network limits it (target ≤ 1 s).

It writes the figures as JSON and as the "## GPU check" section of ``--md`` (the GPU named).
Without a CUDA GPU it prints one line, ``skipped: no CUDA GPU ...``, runs nothing else and exits
0, so it can sit in any script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
HEADING = "GPU check"
DEADLINE_S = 8 * 60  # optional steps (torch.compile) are left out past this point
TRAIN_STEPS = 250  # per precision in step 1
MPX_SIDE = 1024  # a 1-megapixel image
MIN_GAIN_DB = 2.0  # a few hundred steps must at least learn this much (a smoke test, no target)
COMPILE_MODES = ("default", "reduce-overhead")  # reduce-overhead replays CUDA graphs


def no_cuda_reason() -> str | None:
    """Why this machine cannot run the check (None: it can). Imports torch, nothing more."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'n2nkit[training]')"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees none"
    return None


# --------------------------------------------------------------------------- steps
def _config(out: Path, **kw: Any):
    from n2nkit.training.config import TrainConfig

    base = dict(
        variant="n2n", crop=32, batch_size=400, epoch_size=TRAIN_STEPS * 400, epochs=1,
        schedule="step", synthetic_fraction=0.0, val_size=1000, device="cuda", out_dir=out,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def step_train(work: Path) -> dict[str, Any]:
    import torch

    from n2nkit.training.trainer import train

    results = {}
    for precision in ("fp32", "bf16", "fp16"):
        if precision == "bf16" and torch.cuda.get_device_capability()[0] < 8:
            results[precision] = {"status": "skipped", "reason": "compute capability < 8.0"}
            continue
        t0 = time.perf_counter()
        r = train(_config(work / f"train-{precision}", precision=precision), progress=False)
        last = r.history[-1]
        results[precision] = {
            "status": "passed" if r.best_val_psnr > r.val_psnr_noisy + MIN_GAIN_DB else "failed",
            "steps": TRAIN_STEPS,
            "val_psnr": r.best_val_psnr,
            "val_psnr_noisy": r.val_psnr_noisy,
            "train_loss": last["train_loss"],
            "images_per_s": last["images_per_s"],
            "precision": last["precision"],
            "wall_s": time.perf_counter() - t0,
        }
    return results


def step_resume_on_cpu(work: Path) -> dict[str, Any]:
    from n2nkit.training.checkpoint import load_checkpoint
    from n2nkit.training.config import TrainConfig
    from n2nkit.training.trainer import train

    run = work / "train-fp32"
    config = TrainConfig(
        out_dir=run, resume=True, device="cpu", epochs=2, budget_s=10.0, precision="fp32"
    )
    r = train(config, progress=False)
    ckpt = load_checkpoint(run / "last.pt")
    ok = ckpt["epoch"] == 2 and r.history[-1]["device"] == "cpu"
    return {
        "status": "passed" if ok else "failed",
        "epoch": ckpt["epoch"],
        "device": r.history[-1]["device"],
        "val_psnr": r.history[-1]["val_psnr"],
        "val_psnr_on_cuda": r.history[0]["val_psnr"],
    }


def step_export(work: Path) -> dict[str, Any]:
    from n2nkit.export.pipeline import export_checkpoint

    source = work / "train-bf16" if (work / "train-bf16" / "best.pt").exists() else None
    source = source or work / "train-fp32"
    rows = export_checkpoint(source, work / "export", fp16=True)
    return {
        "status": "passed" if all(r.passed for r in rows) else "failed",
        "checkpoint": source.name,
        "artifacts": {
            r.name: {
                "status": r.status.value,
                "max_abs_error": r.max_abs_error,
                "psnr": r.psnr,
                "psnr_change": r.psnr_change,
                "message": r.message,
            }
            for r in rows
        },  # fmt: skip
    }


def _gpu_ms(fn, runs: int = 50) -> float:
    """Median GPU time of ``fn`` (CUDA events), after warm-up."""
    import torch

    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def step_torch_target(work: Path, started: float) -> dict[str, Any]:
    import numpy as np
    import torch

    from n2nkit.bench.torch_target import TorchBackend
    from n2nkit.runtime import Denoiser

    checkpoint = work / "train-fp32" / "best.pt"
    rows: dict[str, Any] = {}
    x = torch.rand(1, 3, MPX_SIDE, MPX_SIDE, device="cuda")
    x = x.contiguous(memory_format=torch.channels_last)
    image = np.random.default_rng(0).random((MPX_SIDE, MPX_SIDE, 3), dtype=np.float32)
    precisions = ["fp16"] + (["bf16"] if torch.cuda.get_device_capability()[0] >= 8 else [])
    for precision in precisions:
        for mode in ("eager", *COMPILE_MODES):
            key = f"{precision}-{mode}"
            if mode != "eager" and time.monotonic() - started > DEADLINE_S:
                rows[key] = {"status": "skipped", "reason": "past the check's time budget"}
                continue
            try:
                backend = TorchBackend(checkpoint, "torch-cuda", precision)
                if mode != "eager":
                    backend.net = torch.compile(backend.net, mode=mode, dynamic=False)
                dtype = backend.dtype

                def forward(net=backend.net, dtype=dtype):
                    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                        return net(x)

                t0 = time.perf_counter()
                forward()  # compiles, if compiled
                torch.cuda.synchronize()
                first_s = time.perf_counter() - t0
                gpu_ms = _gpu_ms(forward)
                denoiser = Denoiser(backend, tile=MPX_SIDE)
                denoiser(image)
                t0 = time.perf_counter()
                for _ in range(10):
                    denoiser(image)
                end_to_end_ms = (time.perf_counter() - t0) * 100
                rows[key] = {
                    "status": "measured",
                    "gpu_ms": gpu_ms,
                    "end_to_end_ms": end_to_end_ms,
                    "first_call_s": first_s,
                    "meets_2ms": gpu_ms <= 2.0,
                }
                backend.close()
            except Exception as exc:  # one mode failing (e.g. no Triton) is a row, not a stop
                rows[key] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    measured = [r["gpu_ms"] for r in rows.values() if r["status"] == "measured"]
    return {
        "status": "passed" if measured else "failed",
        "image": f"{MPX_SIDE}x{MPX_SIDE}",
        "best_gpu_ms": min(measured) if measured else None,
        "rows": rows,
    }


def step_epoch(work: Path) -> dict[str, Any]:
    """The report's 50,000-pair epoch through train(), and the network's step alone."""
    import torch
    from torch.nn import functional as F

    from n2nkit.training.models import create_model
    from n2nkit.training.trainer import autocast_dtype, train

    precision = "bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp16"
    r = train(
        _config(work / "epoch", epoch_size=50_000, epochs=3, precision=precision, val_size=200),
        progress=False,
    )
    epochs = [{"epoch": h["epoch"], "train_s": h["train_s"], "images_per_s": h["images_per_s"]}
              for h in r.history]  # fmt: skip
    last = r.history[-1]

    # The network alone: forward + backward + Adam on one fixed batch, no data path.
    dtype = autocast_dtype(precision, torch.device("cuda"))
    model = create_model("n2n").to("cuda", memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    x = torch.rand(400, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.rand_like(x)

    def step():
        with torch.autocast("cuda", dtype=dtype):
            loss = F.mse_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step_ms = _gpu_ms(step, runs=100)
    steps = -(-50_000 // 400)
    return {
        "status": "measured",
        "precision": last["precision"],
        "epochs": epochs,
        "epoch_s": last["train_s"],
        "images_per_s": last["images_per_s"],
        "meets_1s": last["train_s"] <= 1.0,
        "network_only_step_ms": step_ms,
        "network_only_epoch_s": step_ms * steps / 1e3,
        "data_path_share": max(0.0, 1 - step_ms * steps / 1e3 / last["train_s"]),
    }


# --------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    import torch

    from n2nkit.sysinfo import cpu_model

    p = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(p.total_memory / 2**30, 1),
        "compute_capability": f"{p.major}.{p.minor}",
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "cpu": cpu_model(),
    }


def section(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"## {HEADING}",
        "",
        f"`python benchmarks/gpu_check.py` — {m['gpu']} ({m['gpu_memory_gib']} GiB, compute "
        f"capability {m['compute_capability']}), CUDA {m['cuda']}, torch {m['torch']}, "
        f"{m['cpu']}; {result['wall_s']:.0f} s in all.",
        "",
        "| step | result |",
        "|---|---|",
    ]
    steps = result["steps"]
    for precision, r in steps.get("train", {}).get("result", {}).items():
        if r.get("status") == "skipped":
            lines.append(f"| train {precision} | skipped: {r['reason']} |")
        else:
            lines.append(
                f"| train {precision}, {r['steps']} steps of 400 | {r['status']}: val "
                f"{r['val_psnr']:.2f} dB (noisy {r['val_psnr_noisy']:.2f}), "
                f"{r['images_per_s']:,.0f} images/s |"
            )
    for name, label in (("resume", "resume cuda → cpu"), ("export", "export + ORT check")):
        s = steps.get(name, {})
        lines.append(f"| {label} | {s.get('status', '–')}: {_brief(s.get('result'))} |")
    for file, a in ((steps.get("export", {}).get("result") or {}).get("artifacts") or {}).items():
        error = f"{a['max_abs_error']:.1e}" if a.get("max_abs_error") is not None else "–"
        change = f"{a['psnr_change']:+.3f} dB" if a.get("psnr_change") is not None else "–"
        lines.append(f"| {file} vs its reference | {a['status']}: max error {error}, {change} |")
    tt = steps.get("torch_target", {}).get("result") or {}
    for key, r in (tt.get("rows") or {}).items():
        if r["status"] == "measured":
            lines.append(
                f"| PyTorch CUDA {key}, 1 MP | GPU {r['gpu_ms']:.2f} ms (target ≤ 2 ms: "
                f"{'met' if r['meets_2ms'] else 'not met'}); numpy in/out "
                f"{r['end_to_end_ms']:.1f} ms |"
            )
        else:
            lines.append(f"| PyTorch CUDA {key}, 1 MP | {r['status']}: {r.get('reason', '')} |")
    ep = steps.get("epoch", {}).get("result") or {}
    if ep:
        lines.append(
            f"| n2n 50,000-pair epoch ({ep['precision']}) | {ep['epoch_s']:.2f} s, "
            f"{ep['images_per_s']:,.0f} images/s (target ≤ 1 s: "
            f"{'met' if ep['meets_1s'] else 'not met'}); the network alone "
            f"{ep['network_only_epoch_s']:.2f} s, so the data path takes "
            f"{100 * ep['data_path_share']:.0f} % |"
        )
    for name, s in steps.items():
        if s.get("status") == "failed" and s.get("error"):
            lines.append(f"| {name} | failed: {s['error'].splitlines()[-1][:200]} |")
    return "\n".join(lines) + "\n"


def _brief(result: Any) -> str:
    if not isinstance(result, dict):
        return ""
    keep = {k: v for k, v in result.items() if k != "status" and not isinstance(v, dict)}
    parts = (f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in keep.items())
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=HERE / "gpu_check.json")
    parser.add_argument("--md", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args(argv)
    reason = no_cuda_reason()
    if reason:
        print(f"skipped: no CUDA GPU ({reason})")
        return 0

    started = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "steps": {}}
    with tempfile.TemporaryDirectory(prefix="n2nkit-gpu-check-") as tmp:
        work = args.work or Path(tmp)
        plan = [
            ("train", lambda: step_train(work)),
            ("resume", lambda: step_resume_on_cpu(work)),
            ("export", lambda: step_export(work)),
            ("torch_target", lambda: step_torch_target(work, started)),
            ("epoch", lambda: step_epoch(work)),
        ]
        for name, run in plan:
            t0 = time.monotonic()
            print(f"gpu_check: {name} …", flush=True)
            try:
                out = run()
                status = out.get("status", "measured") if isinstance(out, dict) else "measured"
                if name == "train":
                    bad = [r for r in out.values() if r.get("status") == "failed"]
                    status = "failed" if bad else "passed"
                result["steps"][name] = {"status": status, "result": out}
            except Exception:
                result["steps"][name] = {"status": "failed", "error": traceback.format_exc()}
            result["steps"][name]["seconds"] = time.monotonic() - t0
    result["wall_s"] = time.monotonic() - started
    args.json.write_text(json.dumps(result, indent=2, default=str))
    from mdsection import publish

    publish(section(result), args.md, HEADING)
    failed = [n for n, s in result["steps"].items() if s["status"] == "failed"]
    print(f"gpu_check: {len(failed)} failed step(s) {failed}; JSON {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
