"""`n2nkit export` error paths: bad checkpoints and missing TensorRT give one line, a non-zero
exit and nothing written; TensorRT profile parsing; engines where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.errors import UserInputError
from n2nkit.export.tensorrt_engine import DEFAULT_PROFILES, Profile
from n2nkit.training.checkpoint import FORMAT, FORMAT_VERSION, save_checkpoint
from n2nkit.training.models import create_model

runner = CliRunner()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def _payload(variant: str = "truncated") -> dict:
    model = create_model("truncated")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"variant": variant, "kwargs": {}, "size_multiple": model.size_multiple},
        "state_dict": model.state_dict(),
        "epoch": 1,
        "config": {"noise": "gaussian:25"},
        "metrics": {"val_psnr": 20.0},
        "best_val_psnr": 20.0,
    }


def _export(args: list[str]):
    return runner.invoke(app, ["export", *args])


def _one_line_error(result, *fragments: str) -> None:
    text = " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert "error:" in text, text
    for fragment in fragments:
        assert fragment in text, text


class Payload:
    """Unpickling this would create a marker file: the checkpoint loader must not run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_missing_checkpoint(tmp_path: Path) -> None:
    result = _export([str(tmp_path / "nope.pt"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    _one_line_error(result, "not found")
    assert not (tmp_path / "out").exists()


def test_truncated_checkpoint(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", _payload())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    result = _export([str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    _one_line_error(result, "bad.pt")
    assert not (tmp_path / "out").exists()


def test_foreign_checkpoint(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": create_model("truncated").state_dict()}, foreign)
    result = _export([str(foreign), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    _one_line_error(result, "not an n2nkit checkpoint")


def test_unknown_variant(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "odd.pt", _payload(variant="resnet9000"))
    result = _export([str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    _one_line_error(result, "resnet9000")


def _plain_load_runs_it(path: Path, marker: Path, loader: str) -> bool:
    """Load ``path`` with a plain unpickler in a fresh interpreter; True if that created the
    marker (the file really carries code, so n2nkit's refusal is what kept it from running)."""
    import subprocess
    import sys

    code = (
        "import pickle, sys, torch; path = sys.argv[1]\n"
        "try:\n"
        f"    {loader}\n"
        "except Exception:\n"
        "    pass\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
    return marker.exists()


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "x": Payload(marker)}, evil)  # torch.save pickles it
    result = _export([str(evil), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    _one_line_error(result, "refused")
    assert not marker.exists()
    # The file is a real exploit: torch.load(weights_only=False) does run it.
    assert _plain_load_runs_it(evil, marker, "torch.load(path, weights_only=False)")

    marker.unlink()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    result = _export([str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and not marker.exists()
    assert _plain_load_runs_it(raw, marker, "pickle.load(open(path, 'rb'))")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT and a GPU are present here")
def test_trt_without_tensorrt_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ok.pt", _payload())
    out = tmp_path / "out"
    result = _export([str(path), "--out", str(out), "--trt"])
    assert result.exit_code == 3
    _one_line_error(result, "TensorRT", "pip install 'n2nkit[gpu]'")  # not eaten as markup
    assert not out.exists() or not any(out.iterdir())


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ok.pt", _payload())
    result = _export([str(path), "--out", str(tmp_path / "o"), "--trt-profile", "big=1x2x3"])
    assert result.exit_code == 2
    _one_line_error(result, "NxHxW")
    result = _export([str(path), "--out", str(tmp_path / "o"), "--reduce-range", "maybe"])
    assert result.exit_code == 2
    _one_line_error(result, "auto")
    result = _export([str(path), "--out", str(tmp_path / "o"), "--int8-max-loss", "-1"])
    assert result.exit_code == 2
    _one_line_error(result, "--int8-max-loss")
    result = _export([str(path), "--out", str(tmp_path / "o"), "--int8-float-layers", "-1"])
    assert result.exit_code == 2
    _one_line_error(result, "give 0 or more")
    result = _export([str(path), "--out", str(tmp_path / "o"), "--int8", "--int8-calibration",
                      "percentile:101"])  # fmt: skip
    assert result.exit_code == 2
    _one_line_error(result, "unknown INT8 calibration 'percentile:101'")
    result = _export([str(path), "--out", str(tmp_path / "o"), "--int8", "--int8-float-layers",
                      "15"])  # fmt: skip
    assert result.exit_code == 2
    _one_line_error(result, "14 convolution layers")  # truncated: 15 Conv2d, one is the head
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_profiles_parse_and_validate() -> None:
    profile = Profile.parse("patches=1x32x32:400x32x32:512x64x64")
    assert profile == DEFAULT_PROFILES[0] and Profile.parse(str(profile)) == profile
    assert profile.nchw(3)[1] == (400, 3, 32, 32)
    assert profile.holds((400, 3, 32, 32)) and not profile.holds((1, 3, 128, 128))
    for profile in DEFAULT_PROFILES:
        profile.validate(32, 32)  # fits n2n's size multiple
    with pytest.raises(UserInputError, match="multiples of 32"):
        Profile.parse("p=1x32x32:1x48x48:1x64x64").validate(32, 32)
    with pytest.raises(UserInputError, match="min <= opt <= max"):
        Profile.parse("p=1x64x64:1x32x32:1x64x64").validate(32, 32)


def test_help() -> None:
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    for flag in ("--int8", "--fp16", "--ort", "--trt", "--trt-profile"):
        assert flag in result.output
