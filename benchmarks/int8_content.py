"""What INT8 costs against its own FP32 model, on the validation photos and on unusual content.

    python benchmarks/int8_content.py runs/art7/n2n runs/art7/truncated [--md docs/benchmarks.md]

Each export folder's ``model.int8.onnx`` and ``model.onnx`` denoise the same inputs through
onnxruntime (one thread): the six built-in validation photos, whole, and six dead-leaves images
painted in colours drawn uniformly from the RGB cube (saturated colours and hard edges the
training photos lack; painted from fixed seeds, never used by training or calibration), each
with Gaussian noise at σ = 15, 25 and 50 under the 8-bit protocol (clipped and rounded). The
figure is the mean PSNR change of INT8 against FP32, and the worst image's. This is how the
INT8 export was chosen (docs/models.md, INT8 of the shipped models); the test photos stay for
`n2nkit compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from mdsection import publish  # noqa: E402

from n2nkit.psnr import psnr  # noqa: E402
from n2nkit.sysinfo import machine_line, package_version  # noqa: E402
from n2nkit.training.data import load_builtin_images  # noqa: E402
from n2nkit.training.noisy_crops import add_noise_np, to_nchw  # noqa: E402
from n2nkit.training.synthetic import PALETTE_SIZE, dead_leaves  # noqa: E402

SIGMAS = (15, 25, 50)
HEADING = "INT8 against FP32 on validation photos and unusual content"


def unusual_images(count: int = 6, side: int = 256) -> list[np.ndarray]:
    palette = np.random.default_rng(12345).random((PALETTE_SIZE, 3), dtype=np.float32)
    return [dead_leaves(side, palette, np.random.default_rng(900 + i)) for i in range(count)]


def _session(path: Path):  # noqa: ANN202
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _denoise(session, noisy: np.ndarray, multiple: int) -> np.ndarray:  # noqa: ANN001
    h, w = noisy.shape[2:]
    pad = ((0, 0), (0, 0), (0, -h % multiple), (0, -w % multiple))
    out = session.run(None, {session.get_inputs()[0].name: np.pad(noisy, pad, mode="reflect")})
    return np.round(out[0][:, :, :h, :w].clip(0, 1) * 255) / 255


def measure(folder: Path, sets: dict[str, list[np.ndarray]]) -> dict[str, tuple[float, float]]:
    """(set, σ) label -> (mean, worst) PSNR change of INT8 against FP32, dB."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    multiple = int(props.get("n2nkit.size_multiple", "1"))
    fp32, int8 = _session(folder / "model.onnx"), _session(folder / "model.int8.onnx")
    result = {}
    for name, images in sets.items():
        for sigma in SIGMAS:
            changes = []
            for i, image in enumerate(images):
                clean = to_nchw([image])
                noisy = add_noise_np(clean, f"gaussian:{sigma}", 7 + i)
                noisy = (np.round(noisy * 255) / 255).astype(np.float32)
                a, b = _denoise(fp32, noisy, multiple), _denoise(int8, noisy, multiple)
                changes.append(psnr(b, clean) - psnr(a, clean))
            result[f"{name} σ={sigma}"] = (float(np.mean(changes)), float(min(changes)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folders", nargs="+", type=Path, help="export folders (model.onnx, model.int8.onnx)"
    )
    parser.add_argument("--md", type=Path, help="put the section into this markdown file")
    args = parser.parse_args()
    sets = {"validation photos": load_builtin_images("val"), "unusual content": unusual_images()}
    rows = {str(folder): measure(folder, sets) for folder in args.folders}
    labels = list(next(iter(rows.values())))
    lines = [
        f"## {HEADING}",
        "",
        f"`python benchmarks/int8_content.py {' '.join(map(str, args.folders))}` — "
        f"{machine_line()}, onnxruntime {package_version('onnxruntime')}, one thread. "
        "PSNR change of `model.int8.onnx` against `model.onnx` (dB), "
        "mean over the images (worst image in brackets); validation photos: the six built-in "
        "ones, whole; unusual content: six dead-leaves images in uniformly drawn colours; "
        "8-bit protocol, one noise draw per image and σ.",
        "",
        "| export | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for folder, result in rows.items():
        cells = [f"{result[k][0]:+.3f} ({result[k][1]:+.2f})" for k in labels]
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    publish("\n".join(lines) + "\n", args.md, HEADING)


if __name__ == "__main__":
    main()
