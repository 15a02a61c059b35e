"""The lightweight runtime: real onnxruntime sessions on the shipped model and on identity
models (which make padding, tiling and dtype handling checkable bit for bit)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import make_onnx_model

from n2nkit.errors import (
    MissingDependencyError,
    ModelFormatError,
    N2NError,
    UnknownNameError,
    UserInputError,
)
from n2nkit.runtime import Denoiser, shipped_model_names
from n2nkit.runtime.tiling import plan_axis
from n2nkit.runtime.trt_backend import check_compatible

ODD = (333, 517)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A crop of a built-in test photo: real content, so denoising has something to keep."""
    from n2nkit.training.data import load_builtin_images

    coffee = load_builtin_images("test")[0]
    reps = (-(-h // coffee.shape[0]), -(-w // coffee.shape[1]), 1)
    return np.tile(coffee, reps)[:h, :w].astype(np.float32) / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def shipped() -> Denoiser:
    return Denoiser.load(backend="ort-cpu", threads=2)


# ------------------------------------------------------------------ light at import
def test_runtime_imports_and_denoises_with_torch_blocked() -> None:
    """An app without torch (or onnx) installed: import, load the shipped model, denoise."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "tensorrt"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
import n2nkit.runtime
assert "onnxruntime" not in sys.modules, "onnxruntime imported at import time"
from n2nkit.runtime import Denoiser
d = Denoiser.load()
out = d(np.full((37, 45, 3), 128, np.uint8))
assert out.shape == (37, 45, 3) and out.dtype == np.uint8
print(d.backend)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ort-cpu"


def test_the_shipped_models_load_and_carry_metadata() -> None:
    assert shipped_model_names()[:2] == ["n2n", "truncated"]
    for name in shipped_model_names():
        d = Denoiser.load(name)
        assert d.metadata.variant == name and d.metadata.precision == "fp32"
        assert d.metadata.noise == "gaussian:0-50"  # blind training, as documented


# ------------------------------------------------------------------ shapes and dtypes
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4])
def test_identity_round_trips_every_layout_exactly(identity_model, dtype, channels) -> None:
    """Padding, cropping and conversion lose nothing: an identity model returns the input."""
    d = Denoiser.load(identity_model)
    rng = np.random.default_rng(0)
    shape = ODD if channels is None else (*ODD, channels)
    if np.issubdtype(dtype, np.integer):
        image = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    else:
        image = rng.random(shape).astype(dtype)
    out = d(image)
    assert out.shape == image.shape and out.dtype == image.dtype
    if np.issubdtype(dtype, np.integer):
        assert np.array_equal(out, image)
    else:
        assert np.abs(out.astype(np.float64) - image).max() < 1e-6


@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4])
def test_shipped_model_denoises_odd_sizes_and_keeps_alpha(shipped, channels) -> None:
    rng = np.random.default_rng(1)
    clean = _photo(*ODD)
    if channels in (None, 1, 2):
        clean = clean.mean(axis=2, keepdims=True)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
    alpha = rng.integers(0, 256, (*ODD, 1)).astype(np.uint8)
    image = np.rint(noisy * 255).astype(np.uint8)
    if channels in (2, 4):
        image = np.concatenate([image, alpha], axis=2)
    if channels is None:
        image = image[..., 0]
    out = shipped(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    if channels in (2, 4):
        assert np.array_equal(out[..., -1], alpha[..., 0])  # alpha passes through untouched
    colour = (out if channels is None else out[..., : 1 if channels <= 2 else 3]) / 255.0
    colour = colour.reshape(clean.shape)
    assert _psnr(colour, clean) > _psnr(noisy, clean) + 3.0  # it really denoises


def test_sixteen_bit_and_float_inputs_give_the_same_result(shipped) -> None:
    rng = np.random.default_rng(2)
    noisy = np.clip(_photo(64, 96) + rng.normal(0, 0.1, (64, 96, 3)), 0, 1)
    as16 = shipped(np.rint(noisy * 65535).astype(np.uint16)).astype(np.float64) / 65535
    asfloat = shipped(noisy.astype(np.float32))
    assert np.abs(as16 - asfloat).max() < 2e-4


def test_batch_call_matches_single_calls(shipped) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (5, 40, 56, 3)).astype(np.uint8)
    out = shipped.batch(images)
    assert out.shape == images.shape and out.dtype == np.uint8
    for image, result in zip(images, out, strict=True):
        assert np.abs(shipped(image).astype(int) - result).max() <= 1


def test_report_sized_batch_runs(shipped) -> None:
    """The report's workload: 400 images of 32×32 in one call."""
    batch = np.random.default_rng(4).random((400, 32, 32, 3), dtype=np.float32)
    assert shipped.batch(batch).shape == batch.shape


# ------------------------------------------------------------------ tiling
def test_tiles_cover_each_axis_evenly() -> None:
    plan = plan_axis(1088, 1024, 64, 32)
    assert len(plan.starts) == 2 and plan.length == 576  # not 1024 + 1024
    cases = [(1920, 1024, 64, 32), (5000, 512, 64, 8), (104, 64, 16, 8), (96, 96, 32, 8),
             (2048, 1024, 64, 32), (333, 64, 20, 1)]  # fmt: skip
    for size, tile, overlap, multiple in cases:
        plan = plan_axis(size, tile, overlap, multiple)
        assert plan.length <= tile and plan.length % multiple == 0
        assert plan.starts[0] == 0 and plan.starts[-1] + plan.length == size
        assert all(s % multiple == 0 for s in plan.starts)  # on the model's pooling grid
        assert (plan.length - np.diff(plan.starts) >= overlap).all()  # enough overlap
    assert len(plan_axis(1920, 1024, 64, 32).starts) == 2


def test_identity_survives_tiling_exactly(identity_model) -> None:
    image = np.random.default_rng(5).integers(0, 256, (300, 413, 3)).astype(np.uint8)
    tiled = Denoiser.load(identity_model, tile=64, overlap=16)
    assert np.array_equal(tiled(image), image)


def test_tiled_output_matches_whole_image_output_without_seams(shipped) -> None:
    """An image that fits both ways: tiles blended with overlap give the same picture."""
    rng = np.random.default_rng(6)
    clean = _photo(256, 384)
    noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
    whole = shipped(noisy)
    tiled = Denoiser.load(backend="ort-cpu", threads=2, tile=128, overlap=32)(noisy)
    assert _psnr(tiled, whole) > 45.0  # agreement far above the denoising error (~30 dB)
    seam_cols = np.abs(tiled - whole).mean(axis=(0, 2))
    assert seam_cols.max() < 3 * seam_cols.mean() + 2e-3  # no column stands out as a seam
    assert abs(_psnr(tiled, clean) - _psnr(whole, clean)) < 0.1


# ------------------------------------------------------------------ threads
def test_concurrent_calls_match_sequential_ones(shipped) -> None:
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (48 + 8 * i, 64, 3)).astype(np.uint8) for i in range(6)]
    expected = [shipped(im) for im in images]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = shipped(images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, exp in enumerate(expected):
        assert np.array_equal(results[i], exp)


# ------------------------------------------------------------------ backends
def test_auto_on_an_export_folder_passes_over_engines_it_cannot_run(tmp_path: Path) -> None:
    make_onnx_model(tmp_path / "model.onnx")
    (tmp_path / "model.fp16.engine").write_bytes(b"not really an engine")
    d = Denoiser.load(tmp_path)
    assert d.backend == "ort-cpu"
    assert d.notes and d.notes[0].startswith("trt (model.fp16.engine) skipped")


def test_missing_backends_name_the_extra_to_install(identity_model, tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(MissingDependencyError, match=r"n2nkit\[gpu\]"):
        Denoiser.load(identity_model, backend="ort-cuda")
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"x")
    sidecar = {"format": "n2nkit.tensorrt-engine", "tensorrt_version": "10.0", "gpu": "g",
               "compute_capability": "9.0", "metadata": {}}  # fmt: skip
    (tmp_path / "model.fp16.engine.json").write_text(json.dumps(sidecar))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"TensorRT.*n2nkit\[gpu\]"):
            Denoiser.load(engine, backend="trt")
    else:  # TensorRT is here: the engine (for GPU "g", TensorRT 10.0) is refused, never run
        with pytest.raises(N2NError) as refused:
            Denoiser.load(engine, backend="trt")
        message = str(refused.value)
        assert "rebuild" in message or "n2nkit[gpu]" in message, message


def test_engine_for_another_gpu_or_tensorrt_is_refused_with_rebuild() -> None:
    info = {"tensorrt_version": "10.3.0", "gpu": "NVIDIA H100 80GB HBM3",
            "compute_capability": "9.0"}  # fmt: skip
    check_compatible(info, "10.3.0", "NVIDIA H100 80GB HBM3", "9.0")  # same machine: fine
    with pytest.raises(ModelFormatError, match="TensorRT 10.3.0.*rebuild"):
        check_compatible(info, "10.7.0", "NVIDIA H100 80GB HBM3", "9.0")
    with pytest.raises(ModelFormatError, match="built for NVIDIA H100.*RTX 4090.*rebuild"):
        check_compatible(info, "10.3.0", "NVIDIA GeForce RTX 4090", "8.9")


def test_engine_without_sidecar_is_refused(tmp_path: Path) -> None:
    engine = tmp_path / "model.fp32.engine"
    engine.write_bytes(b"x")
    with pytest.raises(ModelFormatError, match="no sidecar"):
        Denoiser.load(engine, backend="trt")


def test_wrong_backend_for_the_file_is_one_clear_error(identity_model, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="ort-cpu"):
        Denoiser.load(identity_model, backend="coreml")
    with pytest.raises(UserInputError, match="TensorRT engines"):
        Denoiser.load(identity_model, backend="trt")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(UserInputError, match="is a TensorRT engine"):
        Denoiser.load(engine, backend="ort-cpu")


# ------------------------------------------------------------------ refused models and inputs
def test_models_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no n2nkit metadata"):
        Denoiser.load(make_onnx_model(tmp_path / "a.onnx", metadata={}))
    with pytest.raises(ModelFormatError, match="one named 'noisy'"):
        Denoiser.load(make_onnx_model(tmp_path / "b.onnx", input_name="image"))
    wrong_range = {"n2nkit.variant": "x", "n2nkit.size_multiple": "8",
                   "n2nkit.value_range": "0,255"}  # fmt: skip
    with pytest.raises(ModelFormatError, match="range"):
        Denoiser.load(make_onnx_model(tmp_path / "c.onnx", metadata=wrong_range))
    four = {"n2nkit.variant": "x", "n2nkit.size_multiple": "8", "n2nkit.channels": "4"}
    with pytest.raises(ModelFormatError, match="4 channels"):
        Denoiser.load(make_onnx_model(tmp_path / "d.onnx", metadata=four, channels=4))
    (tmp_path / "e.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        Denoiser.load(tmp_path / "e.onnx")
    (tmp_path / "f.txt").write_text("hello")
    with pytest.raises(ModelFormatError, match="not a model file"):
        Denoiser.load(tmp_path / "f.txt")
    with pytest.raises(UserInputError, match="model not found.*n2n"):
        Denoiser.load(tmp_path / "missing.onnx")


def test_a_model_that_changes_the_size_is_refused_at_call(tmp_path: Path) -> None:
    path = make_onnx_model(tmp_path / "pool.onnx", op="GlobalAveragePool")
    d = Denoiser.load(path)
    with pytest.raises(ModelFormatError, match="keeps the image size"):
        d(np.zeros((16, 16, 3), np.uint8))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8, 3), np.int32), "dtype int32"),
        (np.zeros((8, 8, 5), np.uint8), "5 channels"),
        (np.zeros((2, 8, 8, 3, 1), np.uint8), "shape"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
    ],
)
def test_bad_arrays_are_one_clear_error(identity_model, image, message) -> None:
    with pytest.raises(UserInputError, match=message):
        Denoiser.load(identity_model)(image)


def test_bad_tile_settings_are_refused(identity_model) -> None:
    with pytest.raises(UserInputError, match="tile must be at least"):
        Denoiser.load(identity_model, tile=4)
    with pytest.raises(UserInputError, match="overlap"):
        Denoiser.load(identity_model, tile=64, overlap=40)
    with pytest.raises(UserInputError, match="threads"):
        Denoiser.load(identity_model, threads=0)


def test_float_inputs_are_clipped_to_the_models_range(shipped) -> None:
    rng = np.random.default_rng(9)
    noisy = (_photo(64, 96) + rng.normal(0, 0.2, (64, 96, 3))).astype(np.float32)
    assert noisy.min() < 0 and noisy.max() > 1
    assert np.array_equal(shipped(noisy), shipped(np.clip(noisy, 0, 1)))
