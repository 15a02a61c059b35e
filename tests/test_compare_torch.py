"""The PyTorch rows of ``n2nkit compare``: the checkpoint's network measured in torch beside its
ONNX export (same PSNR), CUDA rows skipped here with a reason, and the torch-free runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from n2nkit.bench.targets import CHECKPOINT, TARGETS, select_targets
from n2nkit.cli import app

runner = CliRunner()


def test_pytorch_targets_come_first_and_need_the_checkpoint() -> None:
    assert TARGETS[0].name == "pytorch-cpu-fp32"
    torch_rows = [t for t in TARGETS if t.artifact == CHECKPOINT]
    assert {t.name for t in torch_rows} == {
        "pytorch-cpu-fp32", "pytorch-cuda-fp32", "pytorch-cuda-fp16", "pytorch-cuda-bf16",
    }  # fmt: skip
    assert {t.backend for t in torch_rows} == {"torch-cpu", "torch-cuda"}
    assert select_targets(["pytorch-cuda-bf16"])[0].precision == "bf16"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real training steps (the PSNR comparison needs a trained network, not a good one)."""
    from n2nkit.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "n2n"
    config = TrainConfig(variant="n2n", out=out, epochs=1, epoch_size=6 * 32, batch_size=32,
                         crop=32, val_size=32, num_threads=1, precision="fp32")  # fmt: skip
    return train(config, progress=False).run_dir


@pytest.fixture(scope="module")
def torch_report(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from n2nkit.export.pipeline import export_checkpoint

    both = tmp_path_factory.mktemp("both") / "n2n"
    rows = export_checkpoint(tiny_run, both)  # FP32 ONNX only
    assert all(r.passed for r in rows), rows
    shutil.copy(tiny_run / "best.pt", both / "best.pt")  # the export and its checkpoint
    out = tmp_path_factory.mktemp("torch-report")
    args = ["compare", str(both), "--out", str(out), "--noise", "gaussian:25", "--no-baselines"]
    for target in ("pytorch-cpu-fp32", "cpu-fp32", "pytorch-cuda-fp16"):
        args += ["--target", target]
    args += ["--budget", "0", "--min-runs", "1", "--warmup", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    return {r["target"]: r for r in report["rows"]}


def test_pytorch_cpu_row_matches_the_onnx_fp32_row(torch_report: dict) -> None:
    torch_row, onnx_row = torch_report["pytorch-cpu-fp32"], torch_report["cpu-fp32"]
    assert torch_row["status"] == "measured", torch_row
    assert torch_row["backend"] == "torch-cpu"
    assert torch_row["latency"]["1080x1920x1"]["p50_ms"] > 0
    assert abs(torch_row["psnr"]["gaussian:25"] - onnx_row["psnr"]["gaussian:25"]) < 0.05
    assert torch_row["psnr_delta"]["gaussian:25"] == 0.0  # the reference of its model
    assert abs(onnx_row["psnr_delta"]["gaussian:25"]) < 0.05


def test_pytorch_cuda_row_skips_with_a_reason(torch_report: dict) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the row is measured")
    row = torch_report["pytorch-cuda-fp16"]
    assert row["status"] == "skipped" and "CUDA" in row["reason"]


def test_export_folder_alone_skips_the_pytorch_rows(torch_report, tmp_path: Path) -> None:
    from n2nkit.bench.compare import _missing_artifact_reason, resolve_model
    from n2nkit.runtime.shipped import shipped_model_path

    shutil.copy(shipped_model_path("n2n"), tmp_path / "model.onnx")
    entry = resolve_model(str(tmp_path))
    assert entry.checkpoint is None and entry.artifacts
    assert "run folder" in _missing_artifact_reason(CHECKPOINT)


def test_run_folder_and_checkpoint_are_models(tiny_run: Path) -> None:
    from n2nkit.bench.compare import resolve_model

    entry = resolve_model(str(tiny_run))
    assert entry.checkpoint == tiny_run / "best.pt" and entry.variant == "n2n"
    assert not entry.artifacts
    assert resolve_model(str(tiny_run / "last.pt")).checkpoint.name == "last.pt"
