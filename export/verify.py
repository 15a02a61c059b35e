"""Prove an exported artifact is right: structure, parity with PyTorch, PSNR on real images.

An artifact is *verified* when the ONNX checker accepts it, its inputs/outputs and metadata
follow :mod:`n2nkit.runtime.metadata`, its output stays within :data:`TOLERANCES` of PyTorch on
random inputs and on noisy real images at several sizes, and its PSNR on validation images is
no more than the tolerated amount below the reference's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2nkit.errors import VerificationError, first_line
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from n2nkit.runtime.tiling import round_up
from n2nkit.training.noisy_crops import add_noise_np, to_nchw

# Sizes the issue names; each is rounded up to the model's size multiple.
PARITY_SIZES: tuple[tuple[int, int], ...] = ((32, 32), (64, 96), (256, 384))
VAL_SIDE = 128  # validation tiles: big enough for the U-Net's context, cheap on 2 cores
VAL_TILES_PER_IMAGE = 8  # the built-in val split has few photos: use several tiles of each
FLOAT = 1  # onnx.TensorProto.FLOAT

Runner = Callable[[Any], Any]  # numpy N×C×H×W float32 -> numpy N×C×H×W float32


@dataclass(frozen=True)
class Tolerance:
    """Largest accepted |artifact - PyTorch| and PSNR loss (dB) against the FP32 reference."""

    max_abs: float
    max_psnr_loss: float


# FP32 is the same arithmetic in another order; FP16 keeps ~3 significant digits; INT8 is
# judged by PSNR, the max error only catches a broken graph (outputs live in [0, 1]) and is
# taken on the noisy-photo parity inputs alone: activation ranges are calibrated on photos, so
# on uniform-random inputs clipped activations move single pixels by 0.3-0.55 (measured on the
# shipped models) without anything being broken.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4, max_psnr_loss=0.01),
    "fp16": Tolerance(max_abs=2e-2, max_psnr_loss=0.05),
    "int8": Tolerance(max_abs=0.35, max_psnr_loss=0.2),
}


@dataclass
class EvalSet:
    """Noisy inputs for parity checks and (noisy, clean) validation crops for PSNR."""

    parity: list[Any]  # float32 N×C×H×W arrays: random and noisy real images, several sizes
    val_noisy: Any  # float32 N×C×S×S
    val_clean: Any
    parity_is_photo: list[bool] = field(default_factory=list)  # per parity entry


def parity_sizes(size_multiple: int, min_side: int = 1) -> list[tuple[int, int]]:
    """:data:`PARITY_SIZES` rounded up to multiples of ``size_multiple`` (at least ``min_side``)."""
    m = max(size_multiple, 1)
    return [(round_up(max(h, min_side), m), round_up(max(w, min_side), m)) for h, w in PARITY_SIZES]


def _crop_hw(image: Any, h: int, w: int) -> Any:
    """Centre crop of an H×W×3 image, tiled by reflection first if it is too small."""
    import numpy as np

    ih, iw = image.shape[:2]
    if ih < h or iw < w:
        image = np.pad(image, ((0, max(0, h - ih)), (0, max(0, w - iw)), (0, 0)), mode="reflect")
        ih, iw = image.shape[:2]
    top, left = (ih - h) // 2, (iw - w) // 2
    return image[top : top + h, left : left + w]


def _tiles(image: Any, side: int, limit: int) -> list[Any]:
    """Up to ``limit`` non-overlapping side×side tiles (row-major); one padded crop if too small."""
    h, w = image.shape[:2]
    tiles = [
        image[top : top + side, left : left + side]
        for top in range(0, h - side + 1, side)
        for left in range(0, w - side + 1, side)
    ]
    return tiles[:limit] or [_crop_hw(image, side, side)]


def build_evalset(
    metadata: ModelMetadata, noise: str, seed: int = 0, images: Sequence[Any] | None = None
) -> EvalSet:
    """Random inputs plus noisy crops of the built-in validation photos at every parity size."""
    import numpy as np

    from n2nkit.training.data import load_builtin_images

    photos = list(images) if images is not None else list(load_builtin_images("val"))
    rng = np.random.default_rng(seed)
    parity, is_photo = [], []
    for i, (h, w) in enumerate(parity_sizes(metadata.size_multiple, metadata.min_side)):
        parity.append(rng.random((2, metadata.channels, h, w), dtype=np.float32))
        clean = to_nchw([_crop_hw(photos[i % len(photos)], h, w)])
        parity.append(add_noise_np(clean, noise, seed + i))
        is_photo += [False, True]
    side = round_up(max(VAL_SIDE, metadata.min_side), max(metadata.size_multiple, 1))
    clean = to_nchw([tile for p in photos for tile in _tiles(p, side, VAL_TILES_PER_IMAGE)])
    return EvalSet(parity, add_noise_np(clean, noise, seed + 100), clean, is_photo)


def torch_runner(model: Any) -> Runner:
    import torch

    def run(x: Any) -> Any:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run


def ort_runner(path: Path, threads: int | None = None) -> Runner:
    """Run an .onnx or .ort file the way apps will: through the runtime's onnxruntime CPU
    backend (its input/output contract checked on load, every call validated)."""
    from n2nkit.runtime.ort_backend import OrtBackend

    return OrtBackend(Path(path), device="cpu", threads=threads).infer


def run_batched(run: Runner, x: Any, batch: int = 4) -> Any:
    import numpy as np

    return np.concatenate([run(x[i : i + batch]) for i in range(0, len(x), batch)])


def max_abs_error(
    reference: Runner | list[Any],
    candidate: Runner,
    inputs: list[Any],
    counted: Sequence[bool] | None = None,
) -> float:
    """Largest |candidate - reference| over the inputs (reference: a runner or its outputs).

    ``counted`` limits the maximum to some inputs; the others are still run and checked for
    shape and finiteness.
    """
    import numpy as np

    worst = 0.0
    for i, x in enumerate(inputs):
        ref = reference[i] if isinstance(reference, list) else reference(x)
        out = candidate(x)
        if out.shape != ref.shape:
            raise VerificationError(f"output shape {out.shape} differs from PyTorch's {ref.shape}")
        if not np.isfinite(out).all():
            return float("inf")
        if counted is not None and not counted[i]:
            continue
        worst = max(worst, float(np.abs(out.astype(np.float64) - ref).max()))
    return worst


def mean_psnr(run: Runner, evalset: EvalSet) -> float:
    """Mean PSNR (dB) of the denoised validation crops against the clean ones, output clipped."""
    import numpy as np

    from n2nkit.psnr import psnr

    out = np.clip(run_batched(run, evalset.val_noisy), 0.0, 1.0)
    return float(np.mean([psnr(o, c) for o, c in zip(out, evalset.val_clean, strict=True)]))


def check_onnx(path: Path, precision: str) -> ModelMetadata:
    """ONNX checker + the runtime contract (names, float32 I/O, dynamic N/H/W, metadata)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = first_line(exc)
        raise VerificationError(f"{Path(path).name} fails the ONNX checker: {first}") from None
    model = onnx.load(str(path), load_external_data=False)
    for values, name in ((model.graph.input, INPUT_NAME), (model.graph.output, OUTPUT_NAME)):
        if [v.name for v in values] != [name]:
            raise VerificationError(f"{Path(path).name}: expected a single tensor named {name!r}")
        tensor = values[0].type.tensor_type
        if tensor.elem_type != FLOAT:
            raise VerificationError(f"{Path(path).name}: {name!r} is not float32")
        dims = tensor.shape.dim
        if len(dims) != 4 or any(dims[i].HasField("dim_value") for i in (0, 2, 3)):
            raise VerificationError(
                f"{Path(path).name}: {name!r} must be N×C×H×W with dynamic N/H/W"
            )
    meta = ModelMetadata.from_props(
        {p.key: p.value for p in model.metadata_props}, source=Path(path).name
    )
    if meta.precision != precision:
        raise VerificationError(
            f"{Path(path).name}: metadata says {meta.precision}, expected {precision}"
        )
    return meta
