"""The runtime's noise-level estimate on a real photo, and ``n2nkit denoise``'s note when an
input's noise lies outside the range the model was trained for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_onnx_model
from PIL import Image
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.runtime import Denoiser
from n2nkit.runtime.noise_level import estimate_sigma, estimate_sigma_255, parse_sigma_range


def _photo() -> np.ndarray:
    from n2nkit.training.data import load_builtin_photos

    return load_builtin_photos(("coffee",))[0]


def _noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [10, 40])
def test_estimate_is_within_10_percent_on_a_real_photo(sigma: float) -> None:
    estimate = estimate_sigma(_noisy(_photo(), sigma))
    assert abs(estimate / sigma - 1) < 0.10, estimate


def test_estimate_is_on_the_0_255_scale_whatever_the_dtype() -> None:
    noisy = _noisy(_photo()[:256, :256], 20)
    as_float = estimate_sigma_255(noisy.astype(np.float32) / 255)
    as_16 = estimate_sigma_255(noisy.astype(np.uint16) * 257)
    assert as_float == pytest.approx(estimate_sigma_255(noisy), rel=0.05)
    assert as_16 == pytest.approx(estimate_sigma_255(noisy), rel=0.05)


def test_alpha_is_never_read_as_a_colour_channel() -> None:
    """Grey + alpha was estimated as the median of the grey plane's σ and the flat alpha's 0:
    half the noise, so `denoise` missed its out-of-range note."""
    rgb = _noisy(_photo()[:256, :256], 30)
    grey = rgb[..., 1]
    opaque = np.full_like(grey, 255)
    assert estimate_sigma(np.dstack([grey, opaque])) == estimate_sigma(grey)
    assert estimate_sigma(np.dstack([rgb, opaque])) == estimate_sigma(rgb)
    assert estimate_sigma(grey) > 25


def test_trained_range_reads_metadata_then_a_gaussian_spec() -> None:
    assert parse_sigma_range("20-31.5") == (20.0, 31.5)
    assert parse_sigma_range("", "gaussian:0-50") == (0.0, 50.0)
    assert parse_sigma_range("", "gaussian:25") == (25.0, 25.0)
    assert parse_sigma_range("", "poisson:30") is None
    assert parse_sigma_range("", "") is None


@pytest.fixture
def gaussian_model(tmp_path: Path) -> Path:
    """An identity model whose metadata says it was trained on Gaussian σ 0-50."""
    meta = {"n2nkit.variant": "identity", "n2nkit.size_multiple": "8", "n2nkit.min_side": "8",
            "n2nkit.noise": "gaussian:0-50"}  # fmt: skip
    return make_onnx_model(tmp_path / "identity.onnx", metadata=meta)


def test_denoiser_estimate_noise(gaussian_model: Path) -> None:
    with Denoiser.load(gaussian_model, backend="ort-cpu") as denoiser:
        assert denoiser.metadata.sigma_range() == (0.0, 50.0)
        assert denoiser.estimate_noise(_noisy(_photo(), 30)) == pytest.approx(30, rel=0.1)


@pytest.mark.parametrize(("sigma", "noted"), [(70, True), (20, False)])
def test_denoise_notes_noise_outside_the_trained_range(
    tmp_path: Path, gaussian_model: Path, sigma: float, noted: bool
) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(_noisy(_photo()[:200, :300], sigma)).save(source)
    args = ["denoise", str(source), str(tmp_path / "out.png"), "--model", str(gaussian_model)]
    result = CliRunner().invoke(app, [*args, "--backend", "ort-cpu"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "outside the model's trained" in line]
    assert len(lines) == (1 if noted else 0), result.output
    if noted:
        assert "photo.png: estimated noise σ≈" in lines[0]
        assert "--noise gaussian:LOW-HIGH --init" in lines[0]


def test_export_writes_the_checkpoints_range_and_the_runtime_reads_it() -> None:
    from n2nkit.export.onnx_export import metadata_for
    from n2nkit.runtime.metadata import ModelMetadata
    from n2nkit.training.models import create_model

    ckpt = {"noise_range": [60.9, 65.4], "config": {"noise": "gaussian:60"}}
    props = metadata_for(create_model("truncated"), ckpt).to_props()
    assert props["n2nkit.noise_range"] == "60.9-65.4"
    assert ModelMetadata.from_props(props).sigma_range() == (60.9, 65.4)
