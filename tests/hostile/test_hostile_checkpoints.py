"""Hostile checkpoints through real `n2nkit export` and `n2nkit train --resume` runs: damaged
bytes, NaN weights, random bytes, a string format_version, odd model kwargs and misshapen
weights each give one CheckpointError line, exit 2, the checkpoint untouched and nothing
written; torch's advice to load with ``weights_only=False`` never reaches the user. Also
``n2nkit models --size`` with sizes no variant can be counted at."""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.errors import CheckpointError
from n2nkit.training.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from n2nkit.training.config import TrainConfig
from n2nkit.training.models import create_model

runner = CliRunner()
VARIANT = "truncated"


def _payload(run: Path) -> dict:
    """What the trainer writes into last.pt, for a small real network (weights, optimizer)."""
    torch.manual_seed(0)
    model = create_model(VARIANT)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(1, 3, 16, 16)).mean().backward()
    optimizer.step()
    config = TrainConfig(variant=VARIANT, out=run, epochs=1, epoch_size=64, batch_size=16)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"variant": VARIANT, "kwargs": {}, "size_multiple": model.size_multiple},
        "state_dict": model.state_dict(),
        "epoch": 1,
        "config": config.to_dict(),
        "metrics": {"val_psnr": 20.0},
        "best_val_psnr": 20.0,
        "optimizer": optimizer.state_dict(),
    }


def _flip_tensor_bytes(path: Path) -> None:
    """Damage the bytes of the first stored tensor (inside the zip member, not its header)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename)
    data = bytearray(path.read_bytes())
    header = info.header_offset  # the local header's own name and extra (alignment) lengths
    name_len, extra_len = struct.unpack("<HH", data[header + 26 : header + 30])
    start = header + 30 + name_len + extra_len
    assert info.file_size > 24
    for i in range(start + 8, start + 24):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _edit(change: Callable[[dict], None]) -> Callable[[Path, dict], None]:
    def write(path: Path, payload: dict) -> None:
        change(payload)
        save_checkpoint(path, payload)

    return write


def _nan_weight(p: dict) -> None:
    weight = next(iter(p["state_dict"].values()))
    weight.view(-1)[3] = float("nan")


def _misshapen(p: dict) -> None:
    key = next(iter(p["state_dict"]))
    p["state_dict"][key] = torch.zeros(2, 2)


def _nan_in_optimizer(p: dict) -> None:
    next(iter(p["optimizer"]["state"].values()))["exp_avg"].view(-1)[0] = float("inf")


def _damaged(path: Path, payload: dict) -> None:
    save_checkpoint(path, payload)
    _flip_tensor_bytes(path)


def _truncated(path: Path, payload: dict) -> None:
    save_checkpoint(path, payload)
    path.write_bytes(path.read_bytes()[:-700])


CASES = {
    "damaged-bytes": (_damaged, "corrupt"),
    "truncated": (_truncated, "not a"),
    "random-bytes": (lambda path, _: path.write_bytes(os.urandom(20_000)), "not a checkpoint"),
    "nan-weights": (_edit(_nan_weight), "NaN or infinite"),
    "inf-optimizer-state": (_edit(_nan_in_optimizer), "NaN or infinite"),
    "string-version": (_edit(lambda p: p.update(format_version="1")), "format version '1'"),
    "unknown-kwarg": (
        _edit(lambda p: p["model"].update(kwargs={"wings": 2})),
        "do not build variant",
    ),
    "wrong-kwarg-type": (
        _edit(lambda p: p["model"].update(kwargs={"depth": "three"})),
        "do not build variant",
    ),
    "kwargs-not-a-dict": (_edit(lambda p: p["model"].update(kwargs=[1, 2])), "model kwargs"),
    "misshapen-weights": (_edit(_misshapen), "do not fit"),
    # Hand edits of the run's record (each a traceback in resume or export before).
    "config-of-another-variant": (
        _edit(lambda p: p["config"].update(variant="n2n")),
        "its config says variant 'n2n' but its weights are 'truncated'",
    ),
    "text-lr": (_edit(lambda p: p["config"].update(lr="0.001")), "unusable training config"),
    "betas-not-a-pair": (_edit(lambda p: p["config"].update(betas=5)), "unusable training config"),
    "no-data": (_edit(lambda p: p["config"].update(data=None)), "unusable training config"),
    "bool-crop": (_edit(lambda p: p["config"].update(crop=True)), "unusable training config"),
    "text-elapsed": (_edit(lambda p: p.update(elapsed_s="x")), "malformed elapsed_s 'x'"),
    "text-best": (_edit(lambda p: p.update(best_val_psnr="x")), "malformed best_val_psnr"),
    "history-not-a-list": (_edit(lambda p: p.update(history=5)), "malformed history"),
    "nan-noise-range": (
        _edit(lambda p: p.update(noise_range=[float("nan"), 5.0])),
        "malformed noise_range",
    ),
    "three-noise-range": (
        _edit(lambda p: p.update(noise_range=[1, 2, 3])),
        "malformed noise_range",
    ),
}


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line(result, fragment: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert fragment in errors[0], errors[0]
    _no_unsafe_advice(result.output)
    return errors[0]


def _no_unsafe_advice(text: str) -> None:
    """torch's UnpicklingError opens with advice to load with weights_only=False (which runs
    the file's code): it must never reach a user."""
    flat = " ".join(text.split())
    for advice in ("weights_only=False", "set to `False`", "likely succeed", "trusted source"):
        assert advice not in flat, flat


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"epoch": 1, "val_psnr": 20.0}\n')
    return folder


def test_a_valid_checkpoint_passes_every_check(run: Path) -> None:
    path = save_checkpoint(run / "last.pt", _payload(run))
    ckpt = load_checkpoint(path)
    assert build_model(ckpt).size_multiple == create_model(VARIANT).size_multiple


@pytest.mark.parametrize("case", CASES)
def test_export_refuses_a_bad_checkpoint_in_one_line(run: Path, tmp_path: Path, case: str):
    make, fragment = CASES[case]
    make(run / "best.pt", _payload(run))
    before = _digest(run)
    out = tmp_path / "artifacts"
    result = runner.invoke(app, ["export", str(run / "best.pt"), "--out", str(out)])
    _one_line(result, fragment)
    assert not out.exists()
    assert _digest(run) == before


@pytest.mark.parametrize(
    "case",
    ["damaged-bytes", "nan-weights", "string-version", "unknown-kwarg", "random-bytes",
     "config-of-another-variant", "text-lr", "text-elapsed", "history-not-a-list"],
)  # fmt: skip
def test_resume_refuses_a_bad_last_checkpoint_in_one_line(run: Path, case: str) -> None:
    make, fragment = CASES[case]
    make(run / "last.pt", _payload(run))
    before = _digest(run)
    result = runner.invoke(
        app,
        ["train", "--variant", VARIANT, "--out", str(run), "--resume", "--epochs", "2",
         "--no-progress", "--device", "cpu"],
    )  # fmt: skip
    _one_line(result, fragment)
    assert _digest(run) == before  # no new checkpoint, no metrics line, nothing else


def test_a_pickle_with_code_is_refused_without_torchs_advice(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "x": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil)
    message = str(err.value)
    assert "refused" in message and "Python object" in message
    _no_unsafe_advice(message)
    assert "\n" not in message
    assert not marker.exists()


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ------------------------------------------------------------------ models --size
@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        ("0", "positive"),
        ("-32", "positive"),
        ("33", "multiple of 32"),
        ("16", "n2n (32)"),
        ("100000", "too large"),
    ],
)
def test_models_size_out_of_reach_is_one_line(size: str, fragment: str) -> None:
    result = runner.invoke(app, ["models", f"--size={size}"])
    _one_line(result, fragment)
    assert "variants" not in result.output  # refused before any table


def test_models_sizes_that_fit_every_variant_pass() -> None:
    """The check itself (the table, slow to count, is covered by test_cli_basics)."""
    import inspect

    command = next(c for c in app.registered_commands if c.name == "models").callback
    check_size = inspect.getmodule(inspect.unwrap(command)).check_size
    for size in (32, 64, 1024):
        check_size(size)  # no exception: the table would follow


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real one-epoch run: its last.pt holds every state a resume restores."""
    from n2nkit.training.trainer import train

    out = tmp_path_factory.mktemp("trained") / "run"
    config = TrainConfig(variant=VARIANT, out=out, epochs=1, epoch_size=32, batch_size=16,
                         val_size=8, num_threads=1, device="cpu")  # fmt: skip
    train(config, progress=False)
    return out


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p.update(rng={**p["rng"], "torch": torch.zeros(3, dtype=torch.uint8)}),
        lambda p: p.update(scheduler=5),
    ],
    ids=["short-random-state", "scheduler-not-a-dict"],
)
def test_resume_refuses_restorable_looking_states_that_are_not(trained_run, tmp_path, edit):
    """A torch generator state of the wrong size raised RuntimeError, a scheduler state that is
    no dict TypeError: both tracebacks, from a file whose archive checks out."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    payload = torch.load(run / "last.pt", weights_only=True)
    edit(payload)
    torch.save(payload, run / "last.pt")
    before = _digest(run)
    result = runner.invoke(app, ["train", "--out", str(run), "--resume", "--epochs", "2",
                                 "--no-progress", "--device", "cpu"])  # fmt: skip
    _one_line(result, "last.pt cannot resume this run")
    assert _digest(run) == before
