"""Recipes: ``fast`` is the default, ``report`` is the reference report's recipe, flags win."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.errors import UnknownNameError
from n2nkit.training.recipes import recipe_settings

TINY = ["--epochs", "1", "--epoch-size", "8", "--val-size", "6", "--threads", "2"]


def test_settings_fill_only_what_the_caller_left_unset() -> None:
    fast = recipe_settings("fast", "cpu")
    assert fast["residual"] is True and fast["crop"] == 64 and fast["batch_size"] == 25
    assert fast["schedule"] == "cosine"
    assert recipe_settings("fast", "cuda")["batch_size"] == 128
    report = recipe_settings("report", "cpu", crop=64, batch_size=None)
    assert report["crop"] == 64 and report["batch_size"] == 400  # None does not override
    assert report["residual"] is False and report["synthetic_fraction"] == 0.0
    with pytest.raises(UnknownNameError, match="fast"):
        recipe_settings("quick")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], {"crop": 64, "batch_size": 25, "schedule": "cosine", "residual": True}),
        (["--recipe", "report"], {"crop": 32, "batch_size": 400, "schedule": "step",
                                  "residual": False, "synthetic_fraction": 0.0}),
        (["--recipe", "report", "--residual", "--crop", "64"], {"crop": 64, "residual": True}),
    ],
)  # fmt: skip
def test_the_cli_trains_with_the_recipe_it_names(
    tmp_path: Path, args: list[str], expected: dict
) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["train", "--variant", "truncated", "--out", str(out), "--no-progress", *TINY, *args]
    )
    assert result.exit_code == 0, result.output
    ckpt = torch.load(out / "best.pt", weights_only=True)
    config = ckpt["config"]
    config["residual"] = ckpt["model"]["kwargs"].get("residual", False)
    for key, value in expected.items():
        assert config[key] == value, key
