"""Neighbor2Neighbor and noise-level figures (issue 12), on the built-in test photos.

    python benchmarks/neighbor_bench.py estimate                  # noise estimate's error
    python benchmarks/neighbor_bench.py folder OUT --sigma 25     # noisy training PNGs, once
    python benchmarks/neighbor_bench.py evaluate --sigma 25 RUN_OR_CKPT ...   # PSNR + NLM

8-bit protocol: Gaussian noise of σ (0-255) added to the clean photo, clipped to [0, 255] and
rounded, one draw per photo with a fixed seed. ``folder`` writes the built-in *training* photos
with noise added once (the clean photos never reach a neighbor run). ``evaluate`` exports each
checkpoint to ONNX and denoises through :class:`n2nkit.runtime.Denoiser` (what users run), next
to non-local means as ``n2nkit compare`` runs it; PSNR in dB, mean over coffee and flower.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

TEST = ("coffee", "flower")
SEED = 12


def noisy_8bit(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = clean.astype(np.float64) + rng.normal(0.0, sigma, clean.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def test_photos() -> list[tuple[str, np.ndarray]]:
    from n2nkit.training.data import load_builtin_photos

    return list(zip(TEST, load_builtin_photos(TEST), strict=True))


def cmd_estimate(args: argparse.Namespace) -> None:
    from n2nkit.runtime.noise_level import estimate_sigma_255

    print("| σ | " + " | ".join(TEST) + " | worst error |")
    print("|---:|" + "---:|" * len(TEST) + "---:|")
    for sigma in args.sigmas:
        row, worst = [], 0.0
        for k, (_, clean) in enumerate(test_photos()):
            est = estimate_sigma_255(noisy_8bit(clean, sigma, SEED + k))
            worst = max(worst, abs(est / sigma - 1))
            row.append(f"{est:.1f}")
        print(f"| {sigma:g} | " + " | ".join(row) + f" | {100 * worst:.1f} % |")


def cmd_folder(args: argparse.Namespace) -> None:
    from PIL import Image

    from n2nkit.training.data import BUILTIN_SPLITS, load_builtin_images

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, (name, clean) in enumerate(
        zip(BUILTIN_SPLITS["train"], load_builtin_images("train"), strict=True)
    ):
        Image.fromarray(noisy_8bit(clean, args.sigma, 1000 + k)).save(out / f"{name}.png")
    print(f"{len(BUILTIN_SPLITS['train'])} noisy photos (σ={args.sigma:g}) -> {out}")


def _onnx(checkpoint: Path, folder: Path) -> Path:
    from n2nkit.export.onnx_export import export_onnx, metadata_for
    from n2nkit.training.checkpoint import load_model, resolve_checkpoint

    model, ckpt = load_model(resolve_checkpoint(checkpoint))
    return export_onnx(model.eval(), folder / "model.onnx", metadata_for(model, ckpt))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from n2nkit.bench.baselines import _nlm
    from n2nkit.psnr import psnr as psnr_np
    from n2nkit.runtime import Denoiser

    photos = [(n, c, noisy_8bit(c, args.sigma, SEED + k)) for k, (n, c) in enumerate(test_photos())]
    rows = [("noisy input", [psnr_np(noisy, clean) for _, clean, noisy in photos])]
    nlm = []
    for _, clean, noisy in photos:
        out = _nlm(noisy.astype(np.float64) / 255.0, args.sigma / 255.0)
        nlm.append(psnr_np(np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8), clean))
    rows.append(("non-local means", nlm))
    for run in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            denoiser = Denoiser.load(_onnx(Path(run), Path(tmp)), threads=args.threads)
            with denoiser:
                scores = [psnr_np(denoiser(noisy), clean) for _, clean, noisy in photos]
        rows.append((run, scores))
    print(f"σ = {args.sigma:g}, 8-bit protocol")
    print("| model | " + " | ".join(TEST) + " | mean |")
    print("|---|" + "---:|" * (len(TEST) + 1))
    for name, scores in rows:
        cells = " | ".join(f"{s:.2f}" for s in scores)
        print(f"| {name} | {cells} | {np.mean(scores):.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("estimate", help="noise estimate vs true σ on the test photos")
    p.add_argument("--sigmas", type=float, nargs="+", default=[10, 20, 30, 40, 50])
    p.set_defaults(func=cmd_estimate)
    p = sub.add_parser("folder", help="built-in training photos with noise added once, as PNGs")
    p.add_argument("out")
    p.add_argument("--sigma", type=float, default=25)
    p.set_defaults(func=cmd_folder)
    p = sub.add_parser("evaluate", help="PSNR of runs (exported to ONNX) and NLM")
    p.add_argument("runs", nargs="*")
    p.add_argument("--sigma", type=float, default=25)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_evaluate)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
