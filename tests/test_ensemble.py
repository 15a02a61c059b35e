"""Quality mode: the mean over the 8 flips/rotations, in the runtime and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from n2nkit.runtime import Denoiser
from n2nkit.runtime.ensemble import self_ensemble


def test_ensemble_of_an_equivariant_map_is_the_map() -> None:
    x = np.random.default_rng(0).random((2, 3, 8, 12), dtype=np.float32)
    np.testing.assert_allclose(self_ensemble(x, lambda t: t * 2.0), x * 2.0, rtol=1e-6)


def test_ensemble_makes_any_map_equivariant() -> None:
    x = np.random.default_rng(1).random((1, 1, 8, 8), dtype=np.float32)

    def lopsided(t: np.ndarray) -> np.ndarray:  # adds a ramp along the width: not equivariant
        return t + np.linspace(0.0, 1.0, t.shape[-1], dtype=np.float32)

    assert not np.allclose(lopsided(x[..., ::-1])[..., ::-1], lopsided(x))
    flipped = self_ensemble(np.ascontiguousarray(x[..., ::-1]), lopsided)[..., ::-1]
    np.testing.assert_allclose(flipped, self_ensemble(x, lopsided), atol=1e-6)
    rotated = np.rot90(
        self_ensemble(np.ascontiguousarray(np.rot90(x, 1, (2, 3))), lopsided), -1, (2, 3)
    )
    np.testing.assert_allclose(rotated, self_ensemble(x, lopsided), atol=1e-6)


@pytest.fixture(scope="module")
def noisy_photo() -> tuple[np.ndarray, np.ndarray]:
    from n2nkit.training.data import load_builtin_images

    clean = load_builtin_images("val")[0][:96, :128]
    noise = np.random.default_rng(2).normal(0, 25, clean.shape)
    return clean, np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_shipped_model_in_quality_mode_scores_higher(noisy_photo) -> None:
    clean, noisy = noisy_photo
    with Denoiser.load("n2n", backend="ort-cpu", threads=1) as plain:
        base = plain(noisy)
    with Denoiser.load("n2n", backend="ort-cpu", threads=1, ensemble=True) as quality:
        assert quality.ensemble
        better = quality(noisy)
    small_tiles = {"tile": 64, "overlap": 16, "ensemble": True}
    with Denoiser.load("n2n", backend="ort-cpu", threads=1, **small_tiles) as streamed:
        tiled = streamed(noisy)
    assert better.shape == noisy.shape and better.dtype == np.uint8
    assert _psnr(better, clean) > _psnr(base, clean) + 0.02
    assert _psnr(tiled, clean) > _psnr(base, clean)  # streamed tiles are averaged too


def test_denoise_cli_quality_mode(tmp_path, noisy_photo) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from n2nkit.cli import app

    clean, noisy = noisy_photo
    Image.fromarray(noisy).save(tmp_path / "in.png")
    outputs = {}
    for flag in ([], ["--ensemble"]):
        out = tmp_path / f"out{len(flag)}.png"
        args = ["denoise", str(tmp_path / "in.png"), str(out), "--backend", "ort-cpu", *flag]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert ("quality mode" in result.output) == bool(flag)
        outputs[bool(flag)] = np.asarray(Image.open(out))
    assert _psnr(outputs[True], clean) > _psnr(outputs[False], clean) + 0.02
