"""The whole export of a small trained n2n: every artifact verified, INT8 within 0.2 dB and
FP16 within 0.05 dB of the FP32 ONNX model on validation images, metadata in each, the CLI
table, and a failing artifact deleted with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.export.pipeline import Status, export_checkpoint
from n2nkit.export.quantize_int8 import CALIBRATIONS, candidate_label
from n2nkit.export.verify import Tolerance
from n2nkit.runtime.metadata import ModelMetadata
from n2nkit.runtime.ort_backend import OrtBackend

NOISE = "gaussian:25"


@pytest.fixture(scope="module")
def run_dir(trained_n2n_run: Path) -> Path:
    return trained_n2n_run


@pytest.fixture(scope="module")
def exported(exported_n2n_results):
    return exported_n2n_results


def test_every_artifact_passes_and_is_published(exported) -> None:
    out, rows = exported
    names = [r.name for r in rows]
    assert names == [
        "model.onnx",
        "model.int8.onnx",
        "model.fp16.onnx",
        "model.ort",
        "model.int8.ort",
    ]
    for row in rows:
        assert row.status is Status.PASSED, (row.name, row.message)
        assert row.path == out / row.name and row.path.stat().st_size == row.size_bytes
        assert row.max_abs_error is not None and row.psnr_change is not None
    # no scratch left behind; the manifest names the checkpoint the artifacts came from
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "export.json"])


def test_int8_and_fp16_psnr_loss_within_budget(exported) -> None:
    _, rows = exported
    by_name = {r.name: r for r in rows}
    assert by_name["model.onnx"].psnr > 21.5  # trained (23.0 dB here): noisy input is ~20.2 dB
    assert by_name["model.int8.onnx"].psnr_change >= -0.2
    assert by_name["model.fp16.onnx"].psnr_change >= -0.05
    int8 = by_name["model.int8.onnx"].details
    tried = int8["selection_psnr_change"]  # every calibration, plus the winner with 7-bit
    assert len(tried) == len(CALIBRATIONS) + 1
    label = candidate_label(int8["calibration"], int8["reduce_range"])
    assert tried[label] == max(tried.values())  # the kept one is the best measured
    assert int8["quantized_ops"].get("Conv", 0) >= 20  # every convolution runs in INT8


def test_each_artifact_carries_its_metadata(exported, run_dir: Path) -> None:
    out, rows = exported
    for row in rows:
        meta = OrtBackend(row.path).metadata  # what the runtime will read
        assert (meta.variant, meta.size_multiple, meta.min_side) == ("n2n", 32, 32)
        assert meta.precision == row.precision and meta.noise == NOISE
        assert meta.val_psnr is not None and meta.version
    int8 = onnx.load(str(out / "model.int8.onnx"))
    props = {p.key: p.value for p in int8.metadata_props}
    assert props["n2nkit.int8_reduce_range"] in ("true", "false")
    assert ModelMetadata.from_props(props).extra["int8_reduce_range"] in ("true", "false")
    assert props["n2nkit.int8_calibration"].split(",")[0] in CALIBRATIONS
    assert props["n2nkit.int8_equalized"] == "true"  # by default, for n2n
    assert next(r for r in rows if r.name == "model.int8.onnx").details["equalized"] is True


def test_failed_verification_deletes_the_artifact(run_dir: Path, tmp_path: Path) -> None:
    strict = {"fp16": Tolerance(max_abs=1e-9, max_psnr_loss=-1.0)}  # impossible to meet
    rows = export_checkpoint(run_dir, tmp_path, fp16=True, tolerances=strict)
    fp32, fp16 = rows
    assert fp32.status is Status.PASSED
    assert fp16.status is Status.FAILED_VERIFICATION and fp16.path is None
    assert "exceeds" in fp16.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "model.onnx"]


def test_an_export_whose_every_artifact_failed_leaves_no_folder_it_made(
    run_dir: Path, tmp_path: Path
) -> None:
    """The manifest went with the failed artifacts, but the empty --out it had made stayed."""
    out = tmp_path / "new" / "artifacts"
    strict = {"fp32": Tolerance(max_abs=0.0, max_psnr_loss=-1.0)}  # impossible to meet
    (row,) = export_checkpoint(run_dir, out, tolerances=strict)
    assert row.status is Status.FAILED_VERIFICATION
    assert not out.exists()


def test_cli_prints_the_table(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "✅" in result.output and "model.onnx" in result.output
    assert (tmp_path / "model.onnx").is_file()


def test_a_named_calibration_is_the_only_one_built(run_dir: Path, tmp_path: Path) -> None:
    """``--int8-calibration`` pins the activation ranges (one candidate, and the model says
    so); ``--no-int8-equalize`` quantizes the network as it is."""
    args = ["export", str(run_dir), "--out", str(tmp_path), "--int8", "--reduce-range", "off",
            "--int8-calibration", "tail-percentile:99.99", "--no-int8-equalize",
            "--int8-max-loss", "5"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.int8.onnx")).metadata_props}
    assert props["n2nkit.int8_calibration"].startswith("tail-percentile:99.99,")
    assert props["n2nkit.int8_equalized"] == "false"
