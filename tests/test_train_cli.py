"""``n2nkit train`` from the command line: help, a real tiny run of two variants, and every
user mistake answered with one line, exit code 2 and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from n2nkit.cli import app

TINY = ["--epochs", "1", "--epoch-size", "32", "--batch-size", "16", "--val-size", "8"]
TINY += ["--threads", "2", "--no-progress"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_help_lists_the_options() -> None:
    result = invoke("train", "--help")
    assert result.exit_code == 0
    for flag in (
        "--variant",
        "--data",
        "--val-data",
        "--noise",
        "--supervision",
        "--budget",
        "--resume",
    ):
        assert flag in result.output


def test_two_variants_train_in_turn_with_a_summary(tmp_path: Path) -> None:
    result = invoke("train", "--variant", "truncated,hls", "--out", str(tmp_path), *TINY)
    assert result.exit_code == 0, result.output
    for name in ("truncated", "hls"):
        assert (tmp_path / name / "best.pt").is_file()
        assert (tmp_path / name / "metrics.jsonl").is_file()
    assert "n2nkit train" in result.output and "gain" in result.output
    # the same folders again: refused without --resume / --overwrite ...
    again = invoke("train", "--variant", "truncated", "--out", str(tmp_path / "truncated"), *TINY)
    assert again.exit_code == 2 and "--overwrite" in again.output
    # ... and continued with --resume
    more = ["--epochs", "2", "--no-progress", "--threads", "2"]
    resumed = invoke("train", "--out", str(tmp_path / "truncated"), "--resume", *more)
    assert resumed.exit_code == 0, resumed.output
    assert "after 2 epochs" in resumed.output


def _not_tensor(tmp_path: Path) -> Path:
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    return path


def _wrong_dtype(tmp_path: Path) -> Path:
    path = tmp_path / "float.pt"
    torch.save((torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)), path)
    return path


def _count_mismatch(tmp_path: Path) -> Path:
    path = tmp_path / "counts.pt"
    a = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    torch.save((a, a[:3]), path)
    return path


@pytest.mark.parametrize(
    "args,message",
    [
        (["--variant", "resnet"], "unknown model variant"),
        (["--noise", "speckle:2"], "unknown noise kind"),
        (["--noise", "gaussian:abc"], "malformed noise spec"),
        (["--budget", "soon"], "cannot read duration"),
        (["--data", "{tmp}/missing.pt"], "not found"),
        (["--data", "NOT_TENSOR"], "not a torch tensor file"),
        (["--data", "WRONG_DTYPE"], "torch.uint8"),
        (["--data", "COUNTS"], "4 noisy input images but 3"),
        (["--crop", "40"], "multiple"),
        (["--device", "cuda:7x"], "unknown device"),
        (["--resume"], "nothing to resume"),
        (["--qat"], "give --init CHECKPOINT"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    files = {
        "NOT_TENSOR": _not_tensor,
        "WRONG_DTYPE": _wrong_dtype,
        "COUNTS": _count_mismatch,
    }
    args = [str(files[a](tmp_path)) if a in files else a.format(tmp=tmp_path) for a in args]
    result = invoke("train", "--out", str(tmp_path / "run"), *args, "--no-progress")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())  # rich wraps the line at the console width
    assert message in text
    assert "Traceback" not in result.output
    assert text.startswith("error:") and text.count("error:") == 1  # one message only


def test_target_is_a_deprecated_alias_of_supervision() -> None:
    from n2nkit.training.config import TrainConfig

    assert "--target" not in invoke("train", "--help").output  # hidden
    result = invoke("train", "--target", "clean", "--variant", "nope")
    assert "--target is deprecated" in result.output and result.exit_code == 2
    assert TrainConfig(target="clean").supervision == "clean"
    old = TrainConfig().to_dict()
    old["target"] = old.pop("supervision")  # a checkpoint written before the rename
    old["target"] = "clean"
    assert TrainConfig.from_dict(old).supervision == "clean"


def test_images_smaller_than_the_crop_are_named_in_a_note(tmp_path: Path) -> None:
    """Five of six photos smaller than --crop were left out without a word."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, side in enumerate((16, 16, 16, 16, 16, 64)):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(tmp_path / f"{i}.png")
    result = invoke("train", "--variant", "truncated", "--data", str(tmp_path), "--crop", "32",
                    "--out", str(tmp_path / "run"), *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == ["note: 5 of 6 images are smaller than the 32×32 crop and are not trained on "
                     "(a smaller --crop takes them)"], result.output  # fmt: skip
