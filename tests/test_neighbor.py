"""Neighbor2Neighbor: the sub-sampler, the regularised loss, and real tiny ``--pairs neighbor``
runs from the command line (a folder of small noisy PNGs, no clean image in training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.training.neighbor import (
    clip_sigma,
    clipped_mean,
    neighbor_subimages,
    regularised_loss,
    subsample,
)

SIGMA = 25
TINY = ["--epoch-size", "320", "--batch-size", "16", "--val-size", "16", "--threads", "2"]
TINY += ["--no-progress", "--variant", "truncated", "--residual", "--crop", "32"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_subsampler_picks_two_different_neighbours_in_every_cell() -> None:
    n, c, h, w = 3, 2, 8, 12
    # every pixel holds its own index, so each sub-image pixel says where it came from
    x = torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)
    g1, g2, _ = neighbor_subimages(x, torch.Generator().manual_seed(0))
    assert g1.shape == g2.shape == (n, c, h // 2, w // 2)
    flat = x.reshape(n, c, h * w)
    for sub in (g1, g2):
        pos = (sub - flat[:, :, :1, None]).long()  # index inside the image plane
        row, col = pos // w, pos % w
        cell_r = torch.arange(h // 2)[None, None, :, None]
        cell_c = torch.arange(w // 2)[None, None, None, :]
        assert torch.equal(row // 2, cell_r.expand_as(row))  # stays inside its own 2×2 cell
        assert torch.equal(col // 2, cell_c.expand_as(col))
    p1, p2 = (g1 - x[:, :, :1, :1]).long(), (g2 - x[:, :, :1, :1]).long()
    r1, c1, r2, c2 = p1 // w, p1 % w, p2 // w, p2 % w
    assert bool(((r1 - r2).abs() + (c1 - c2).abs() == 1).all())  # different and adjacent
    assert bool((r1[:, 0] == r1[:, 1]).all() and (c1[:, 0] == c1[:, 1]).all())  # same for channels


def test_regulariser_is_zero_when_the_network_is_the_identity() -> None:
    y = torch.rand(4, 3, 16, 16)
    g1, g2, choice = neighbor_subimages(y, torch.Generator().manual_seed(1))
    f1, f2 = subsample(y, *choice)  # f(y) = y, then sub-sampled as the input was
    reg_only = regularised_loss(g1, g2, f1, f2, gamma=2.0) - regularised_loss(g1, g2, f1, f2, 0.0)
    assert abs(float(reg_only)) < 1e-7
    assert float(regularised_loss(g1, g2, f1, f2, 0.0)) > 0  # the reconstruction term is not


def _noisy_folder(folder: Path, sigma: float, count: int = 4, side: int = 64) -> Path:
    """Small noisy photos: smooth shapes with Gaussian noise, clipped and rounded to 8 bits."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side] / side
    from PIL import Image

    for k in range(count):
        clean = np.stack(
            [0.5 + 0.3 * np.sin(6 * xx + k + ch) * np.cos(4 * yy) for ch in range(3)], -1
        )
        noisy = np.clip(np.round(clean * 255 + rng.normal(0, sigma, clean.shape)), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(folder / f"img{k}.png")
    return folder


def test_neighbor_run_records_its_pairs_and_improves_on_its_noisy_input(tmp_path: Path) -> None:
    data = _noisy_folder(tmp_path / "noisy", SIGMA)
    out = tmp_path / "run"
    result = invoke("train", "--data", str(data), "--pairs", "neighbor", "--epochs", "2",
                    "--noise", f"gaussian:{SIGMA}", "--out", str(out), *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["config"]["pairs"] == "neighbor"
    assert ckpt["config"]["permute_colours"]  # neighbor's default
    low, high = ckpt["noise_range"]  # estimated from the noisy photos
    assert 0.8 * SIGMA < low <= high < 1.2 * SIGMA
    assert ckpt["best_val_psnr"] > ckpt["metrics"]["val_psnr_noisy"] + 1.0


def test_neighbor_fine_tunes_from_init(tmp_path: Path) -> None:
    data = _noisy_folder(tmp_path / "noisy", 50)
    clean = _noisy_folder(tmp_path / "clean", 0)
    base = tmp_path / "base"
    first = invoke("train", "--data", str(clean), "--epochs", "1", "--out", str(base),
                   *TINY, "--epoch-size", "64")  # fmt: skip
    assert first.exit_code == 0, first.output
    tuned = tmp_path / "tuned"
    result = invoke("train", "--data", str(data), "--pairs", "neighbor", "--epochs", "1",
                    "--init", str(base / "best.pt"), "--noise", "gaussian:50",
                    "--no-permute-colours",
                    "--out", str(tuned), *TINY, "--epoch-size", "64")  # fmt: skip
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tuned / "best.pt", weights_only=True)
    assert ckpt["config"]["pairs"] == "neighbor" and ckpt["config"]["init"]
    assert ckpt["config"]["permute_colours"] is False  # --no-permute-colours
    base_config = torch.load(base / "best.pt", weights_only=True)["config"]
    assert base_config["pairs"] == "synthetic" and base_config["permute_colours"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "truncated", "--crop", "24"], "multiple of 16"),
        (["--variant", "n2n", "--crop", "32"], "multiple of 64"),
        (["--variant", "truncated", "--data", "builtin"], "folder of noisy photos"),
        (["--variant", "truncated", "--synthetic-fraction", "0.5"], "--synthetic-fraction"),
    ],
)
def test_neighbor_refuses_what_cannot_work_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    data = _noisy_folder(tmp_path / "noisy", SIGMA, count=1)
    result = invoke("train", "--data", str(data), "--pairs", "neighbor", "--epochs", "1",
                    "--out", str(tmp_path / "run"), "--no-progress", *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_clipped_mean_matches_sampling() -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.0, 0.02, 0.1, 0.5, 0.95, 1.0])
    sigma = 25 / 255
    noise = torch.randn(200_000, mu.numel(), generator=gen) * sigma
    sampled = (mu + noise).clamp(0, 1).mean(0)
    assert torch.allclose(clipped_mean(mu, sigma), sampled, atol=1e-3)
    assert torch.equal(clipped_mean(mu, 0.0), mu)


def test_clipped_mean_loss_recovers_dark_values_plain_mse_does_not() -> None:
    """Fitting noisy clipped targets: the corrected loss finds the clean value, MSE its bias."""
    gen = torch.Generator().manual_seed(1)
    sigma, clean = 25 / 255, torch.tensor([0.01, 0.05, 0.98])
    targets = (clean + torch.randn(20_000, 3, generator=gen) * sigma).clamp(0, 1)

    def fit(correct: bool) -> torch.Tensor:
        mu = torch.full((3,), 0.5, requires_grad=True)
        opt = torch.optim.Adam([mu], lr=0.01)
        for _ in range(600):
            out = clipped_mean(mu, sigma) if correct else mu
            loss = ((out - targets) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return mu.detach()

    assert torch.allclose(fit(True), clean, atol=0.01)
    assert (fit(False) - clean).abs().max() > 0.03  # ~+5/255 on black, -3/255 near white


def test_clip_sigma_is_the_middle_of_the_estimated_range() -> None:
    assert clip_sigma([24.0, 26.0]) == 25 / 255
    assert clip_sigma(None) == 0.0
