"""Hostile command lines for export, compare and pipeline (and train's --out): a file-typed,
under-a-file or uncreatable --out, an export into another checkpoint's folder, --opset 99,
pipeline --batch-size 0, export without onnxscript, and INT8 calibration chatter. Each gives one
line, a non-zero exit, the inputs untouched and nothing written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from n2nkit.cli import app

runner = CliRunner()
UNCREATABLE = "/proc/n2nkit-hostile/out"  # /proc refuses new folders, even to root


def _checkpoint(path: Path, seed: int, variant: str = "truncated") -> Path:
    """A real checkpoint of a small network with seeded random weights."""
    import torch

    from n2nkit.training.checkpoint import build_payload, save_checkpoint
    from n2nkit.training.config import TrainConfig
    from n2nkit.training.models import create_model

    torch.manual_seed(seed)
    model = create_model(variant)
    config = TrainConfig(variant=variant, out=path.parent)
    payload = build_payload(model, config, epoch=1, metrics={"val_psnr": 20.0},
                            best_val_psnr=20.0, noise="gaussian:25")  # fmt: skip
    return save_checkpoint(path, payload)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _export_folder_of(tmp_path: Path, run: str) -> Path:
    """An export folder of ``run``'s: a model.onnx, an INT8 model and the manifest naming it."""
    from n2nkit.runtime.artifacts import write_manifest

    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(f"{run} fp32 model".encode())
    (folder / "model.int8.onnx").write_bytes(f"{run} int8 model".encode())
    write_manifest(folder, f"{run}/best.pt", "sha256:" + run[-1].lower() * 64)
    return folder


@pytest.fixture(scope="module")
def ckpt_a(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("a") / "a.pt", seed=1)


# ------------------------------------------------------------------ --out that cannot be one
def _commands(ckpt: Path, out: str) -> dict[str, list[str]]:
    return {
        "train": ["train", "--out", out, "--epochs", "1", "--val-size", "4", "--no-progress"],
        "export": ["export", str(ckpt), "--out", out],
        "compare": ["compare", "n2n", "--out", out, "--no-baselines", "-t", "cpu-fp32"],
        "pipeline": ["pipeline", "--out", out, "--budget", "5s", "--no-trt"],
    }


@pytest.mark.parametrize("command", ["train", "export", "compare", "pipeline"])
@pytest.mark.parametrize("kind", ["file", "under-a-file", "uncreatable"])
def test_out_that_cannot_be_a_folder_is_one_line_before_any_work(tmp_path, ckpt_a, command, kind):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("keep me")
    out = {"file": str(blocker), "under-a-file": str(blocker / "sub"), "uncreatable": UNCREATABLE}
    before = _digest(tmp_path)
    start = time.monotonic()
    result = runner.invoke(app, _commands(ckpt_a, out[kind])[command])
    line = _one_line_error(result)
    assert "--out" in line
    assert time.monotonic() - start < 60  # refused up front, not after training or measuring
    assert _digest(tmp_path) == before  # the file, and nothing new, in the folder


# ------------------------------------------------------------------ one checkpoint per folder
def test_export_into_another_checkpoints_folder_is_refused(tmp_path, ckpt_a):

    folder = _export_folder_of(tmp_path, "runA")
    before = _digest(folder)
    ckpt_b = _checkpoint(tmp_path / "runB" / "best.pt", seed=2)
    line = _one_line_error(runner.invoke(app, ["export", str(ckpt_b), "-o", str(folder)]))
    assert "runA/best.pt" in line and "--overwrite" in line
    assert _digest(folder) == before

    # A folder of artifacts with no manifest (an older export): refused as well.
    (folder / "export.json").unlink()
    line = _one_line_error(runner.invoke(app, ["export", str(ckpt_b), "-o", str(folder)]))
    assert "unknown checkpoint" in line


def test_overwrite_replaces_every_artifact_and_the_same_checkpoint_adds_to_its_folder(tmp_path):
    """What export does once it holds the folder's lock (the export itself is tested
    elsewhere): --overwrite removes all of runA's files; the same weights keep them."""
    from n2nkit.errors import UserInputError
    from n2nkit.export.pipeline import _claim_folder
    from n2nkit.runtime.artifacts import read_manifest, write_manifest

    folder = tmp_path / "exported"
    folder.mkdir()
    names = ["model.onnx", "model.int8.onnx", "model.fp16.engine", "model.fp16.engine.json"]
    for name in names:
        (folder / name).write_bytes(b"runA")
    killed = [".n2nkit-export-k1ll3d", ".model.int8.onnx.k1ll3d.tmp"]  # a killed export's
    (folder / killed[0]).mkdir()
    (folder / killed[1]).write_bytes(b"half a model")
    (folder / ".notes.tmp").write_bytes(b"the user's own")  # not ours: never touched
    (folder / "tensorrt.timing.cache").write_bytes(b"this machine's")
    write_manifest(folder, "runA/best.pt", "sha256:a")

    with pytest.raises(UserInputError):  # refused: nothing in the folder changes
        _claim_folder(folder, "runB/best.pt", "sha256:b", overwrite=False)
    assert all((folder / n).exists() for n in [*names, *killed])
    _claim_folder(folder, "runA/best.pt", "sha256:a", overwrite=False)  # same weights: kept
    assert all((folder / n).exists() for n in names)
    assert not any((folder / n).exists() for n in killed)  # a killed export's leftovers go
    _claim_folder(folder, "runB/best.pt", "sha256:b", overwrite=True)
    listing = [".n2nkit-replaced-export", ".notes.tmp", "export.json", "tensorrt.timing.cache"]
    assert sorted(os.listdir(folder)) == listing  # runA's set aside until the export ends
    kept = sorted(os.listdir(folder / ".n2nkit-replaced-export"))
    assert kept == sorted([*names, "export.json", ".names.json"])
    assert read_manifest(folder)["source"] == "runB/best.pt"


def test_an_interrupted_overwrite_leaves_the_old_artifacts_in_place(tmp_path, ckpt_a):
    """`export --overwrite` once deleted the old artifacts first: a Ctrl-C, SIGTERM or failure
    before the new ones were built left an empty folder. A real export, really terminated."""
    import signal

    folder = _export_folder_of(tmp_path, "runB")
    before = _digest(folder)
    export = subprocess.Popen(
        [sys.executable, "-m", "n2nkit", "export", str(ckpt_a), "-o", str(folder), "--overwrite",
         "--int8", "--fp16"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(folder.glob(".n2nkit-export-*")):  # exporting, past the claim
            assert export.poll() is None, export.communicate()
            assert time.monotonic() < deadline, "the export did not start in 120 s"
            time.sleep(0.05)
        assert not (folder / "model.int8.onnx").exists()  # runB's set aside meanwhile
    finally:
        export.send_signal(signal.SIGTERM)
        _, err = export.communicate(timeout=120)
    assert export.returncode == 143 and "Traceback" not in err, err
    assert _digest(folder) == before
    assert sorted(os.listdir(folder)) == ["export.json", "model.int8.onnx", "model.onnx"]


# ------------------------------------------------------------------ silently different values
def test_opset_outside_the_supported_range_is_refused(tmp_path, ckpt_a):
    from n2nkit.export.onnx_export import supported_opsets

    newest = supported_opsets().stop - 1
    for opset in ("99", "16", str(newest + 1)):
        out = tmp_path / f"out-{opset}"
        args = ["export", str(ckpt_a), "-o", str(out), "--opset", opset]
        line = _one_line_error(runner.invoke(app, args))
        assert f"--opset {opset}" in line and f"give 17 to {newest}" in line
        assert not out.exists()


def test_pipeline_batch_size_zero_is_refused(tmp_path):
    out = tmp_path / "p"
    result = runner.invoke(app, ["pipeline", "--out", str(out), "--batch-size", "0"])
    assert "--batch-size" in _one_line_error(result)
    assert not out.exists()


# ------------------------------------------------------------------ missing packages, chatter
def test_export_without_onnxscript_exits_3_with_the_install_line(tmp_path, ckpt_a):
    """The real CLI in a fresh interpreter where importing onnxscript fails."""
    out = tmp_path / "out"
    code = (
        "import sys; sys.modules['onnxscript'] = None; "  # import onnxscript -> ImportError
        "from n2nkit.cli import main; "
        f"sys.argv = ['n2nkit', 'export', {str(ckpt_a)!r}, '-o', {str(out)!r}]; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "onnxscript" in done.stderr and "pip install 'n2nkit[training]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not out.exists()


def test_int8_calibration_prints_nothing(tmp_path, capfd):
    """onnxruntime.quantization prints histogram counts and percentiles while calibrating;
    export's stdout must hold n2nkit's lines only."""
    import numpy as np
    from conftest import make_onnx_model

    from n2nkit.export.quantize_int8 import quantize_int8
    from n2nkit.runtime.metadata import ModelMetadata

    source = make_onnx_model(tmp_path / "relu.onnx", op="Relu")
    rng = np.random.default_rng(0)
    batches = [rng.random((2, 3, 16, 16), dtype=np.float32) for _ in range(2)]
    capfd.readouterr()
    quantize_int8(source, tmp_path / "int8.onnx", ModelMetadata("relu", 8), batches)
    captured = capfd.readouterr()
    assert (tmp_path / "int8.onnx").is_file()
    assert captured.out == "", captured.out


def test_export_options_that_would_change_nothing_are_refused(tmp_path, ckpt_a):
    """TensorRT's options need --trt, INT8's need an INT8 model: given alone they are refused
    with one line naming them, before anything is written."""
    out = tmp_path / "out"
    cases = [
        (["--trt-precision", "fp16", "--timing-cache", "tc"], "--trt-precision, --timing-cache"),
        (["--int8-calibration", "minmax", "--reduce-range", "on"], "add --int8"),
        (["--fp16", "--no-int8-equalize"], "--int8-equalize shape INT8 models"),
    ]
    for flags, fragment in cases:
        line = _one_line_error(runner.invoke(app, ["export", str(ckpt_a), "-o", str(out), *flags]))
        assert fragment in line, line
        assert not out.exists()


def test_denoise_format_that_contradicts_the_output_file_is_refused(tmp_path):
    from PIL import Image

    source = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (120, 60, 30)).save(source)
    args = ["denoise", str(source), str(tmp_path / "out.png"), "--format", "jpg"]
    line = _one_line_error(runner.invoke(app, args))
    assert "--format jpg" in line and "out.png" in line
    assert not (tmp_path / "out.png").exists()
    args[-1] = "png"  # agrees with the file's extension: fine
    assert runner.invoke(app, [*args, "--backend", "ort-cpu"]).exit_code == 0


def test_an_out_of_range_export_seed_is_refused(tmp_path, ckpt_a):
    for seed in ("-1", str(2**64)):
        result = runner.invoke(
            app, ["export", str(ckpt_a), "-o", str(tmp_path / "o"), "--seed", seed]
        )
        line = _one_line_error(result)
        assert "--seed must be a whole number" in line
        assert not (tmp_path / "o").exists()


def test_the_same_checkpoint_trained_further_is_named_as_such(tmp_path, ckpt_a):
    """The refusal read 'holds artifacts of runs/x/best.pt, not of runs/x/best.pt'."""
    from n2nkit.runtime.artifacts import write_manifest

    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"the model ckpt_a had before more training")
    write_manifest(folder, str(ckpt_a), "sha256:" + "0" * 64)
    line = _one_line_error(runner.invoke(app, ["export", str(ckpt_a), "-o", str(folder)]))
    assert f"of an earlier version of {ckpt_a}" in line and "--overwrite" in line


def test_exporting_a_checkpoint_saved_before_its_first_epoch_says_so(tmp_path):
    import torch

    from n2nkit.training.checkpoint import build_payload, save_checkpoint
    from n2nkit.training.config import TrainConfig
    from n2nkit.training.models import create_model

    torch.manual_seed(0)
    model = create_model("truncated")
    config = TrainConfig(variant="truncated", out=tmp_path / "run")
    payload = build_payload(model, config, epoch=0, metrics={}, best_val_psnr=float("-inf"),
                            noise="gaussian:25", interrupted=True)  # fmt: skip
    path = save_checkpoint(tmp_path / "run" / "last.pt", payload)
    result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "saved before its first epoch ended" in result.stderr
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "out" / "model.onnx")).metadata_props}
    assert "-inf" not in props.get("n2nkit.val_psnr", "")


def test_an_overwrite_whose_every_artifact_fails_keeps_the_old_ones(tmp_path, ckpt_a):
    """Verification failures are rows, not exceptions: such an --overwrite export once ended
    with the old artifacts deleted and no new one in their place."""
    from n2nkit.export.pipeline import export_checkpoint
    from n2nkit.export.verify import Tolerance
    from n2nkit.runtime.artifacts import write_manifest

    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"runB fp32 model")
    write_manifest(folder, "runB/best.pt", "sha256:" + "b" * 64)
    before = _digest(folder)
    impossible = {"fp32": Tolerance(max_abs=-1.0, max_psnr_loss=-1.0)}
    rows = export_checkpoint(ckpt_a, folder, overwrite=True, tolerances=impossible)
    assert rows and not any(row.passed for row in rows)
    assert _digest(folder) == before
    assert sorted(os.listdir(folder)) == ["export.json", "model.onnx"]
