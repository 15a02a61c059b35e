"""TensorRT engines, built for real where TensorRT, cuda-python and an NVIDIA GPU exist: the
small trained n2n exported with ``trt=True`` (FP32, FP16 and INT8 engines, strongly typed),
each engine run through the runtime and compared with the FP32 ONNX model on onnxruntime.
Elsewhere every test skips with the reason (what is missing and how to install it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from n2nkit.errors import MissingDependencyError, ModelFormatError

pytestmark = pytest.mark.tensorrt

# Largest |engine - FP32 ONNX| on a real photo crop, and the least PSNR between the two outputs.
AGREEMENT = {"fp32": (1e-3, 60.0), "fp16": (2e-2, 40.0), "int8": (0.25, 28.0)}


def _tensorrt_missing() -> str | None:
    from n2nkit.export.tensorrt_engine import require_tensorrt

    try:
        require_tensorrt()  # TensorRT, cuda-python and a CUDA GPU, with the install line
    except MissingDependencyError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def trt_export(request: pytest.FixtureRequest) -> tuple[Path, list]:
    """(folder, rows) of the small n2n exported with TensorRT engines of every precision."""
    reason = _tensorrt_missing()
    if reason:
        pytest.skip(reason)  # before training anything
    from n2nkit.export.pipeline import export_checkpoint

    run = request.getfixturevalue("trained_n2n_run")
    out = request.getfixturevalue("tmp_path_factory").mktemp("engines")
    rows = export_checkpoint(run, out, trt=True, trt_precisions=("fp32", "fp16", "int8"))
    return out, rows


def _photo() -> np.ndarray:
    from n2nkit.training.data import load_builtin_images

    image = load_builtin_images("test")[0][:200, :264].astype(np.float32) / 255.0
    noise = np.random.default_rng(3).normal(0, 25 / 255, image.shape).astype(np.float32)
    return np.clip(image + noise, 0, 1)


def test_every_engine_is_built_and_verified(trt_export) -> None:
    out, rows = trt_export
    engines = {r.precision: r for r in rows if r.target == "tensorrt"}
    assert set(engines) == {"fp32", "fp16", "int8"}
    for precision, row in engines.items():
        assert row.passed, f"{row.name}: {row.status.value}: {row.message}"
        assert (out / f"model.{precision}.engine").is_file()
    import json

    sidecar = json.loads((out / "model.int8.engine.json").read_text())
    assert sidecar["strongly_typed"] and sidecar["precision"] == "int8"
    assert not json.loads((out / "model.fp32.engine.json").read_text())["tf32"]
    # one timing cache per TF32 setting
    assert (out / "tensorrt.timing.cache").is_file()
    assert (out / "tensorrt.timing.no-tf32.cache").is_file()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_runs_like_the_onnx_model(trt_export, precision: str) -> None:
    from n2nkit.runtime import Denoiser

    out, _ = trt_export
    image = _photo()
    with Denoiser.load(out / "model.onnx", backend="ort-cpu") as reference:
        expected = reference(image)
    with Denoiser.load(out / f"model.{precision}.engine", backend="trt") as engine:
        assert engine.backend == "trt"
        got = engine(image)
        batch = engine.batch(np.stack([image[:64, :64]] * 3))  # the patches profile
    max_abs, min_psnr = AGREEMENT[precision]
    assert np.abs(got - expected).max() < max_abs
    mse = float(np.mean((got.astype(np.float64) - expected) ** 2))
    assert mse == 0 or 10 * np.log10(1 / mse) > min_psnr
    assert batch.shape == (3, 64, 64, 3)


def test_a_closed_engine_frees_its_memory_and_refuses_work(trt_export) -> None:
    from n2nkit.runtime.trt_backend import TrtBackend

    out, _ = trt_export
    backend = TrtBackend(out / "model.fp16.engine")
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert backend.infer(x).shape == x.shape
    backend.close()
    backend.close()  # idempotent
    with pytest.raises(ModelFormatError, match="closed"):
        backend.infer(x)
