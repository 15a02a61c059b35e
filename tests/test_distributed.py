"""Multi-process training: a real ``torchrun --nproc-per-node 2 -m n2nkit train`` with gloo on
this CPU (tiny data), then ``--resume``; and the torchrun environment parsing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from n2nkit.errors import UserInputError
from n2nkit.training import distributed

TINY = [
    "train", "--variant", "n2n", "--recipe", "report", "--epoch-size", "16", "--batch-size", "4",
    "--val-size", "4", "--crop", "32", "--threads", "1", "--device", "cpu", "--precision", "fp32",
    "--no-progress",
]  # fmt: skip


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "torchrun"
    module = [sys.executable, "-m", "torch.distributed.run"]  # the same entry point
    launcher = [str(script)] if script.is_file() else module
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [*launcher, "--standalone", "--nproc-per-node", "2", "-m", "n2nkit", *TINY, *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("ddp")
    proc = _torchrun(["--epochs", "2", "--out", str(work / "run")], work)
    return work / "run", proc


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_ranks_train_one_run(ddp_run) -> None:
    run, proc = ddp_run
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    records = _metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]  # rank 0 alone writes, once per epoch
    for r in records:
        assert r["world_size"] == 2
        assert r["pairs"] == 16  # the epoch's pairs split between the two ranks
        assert r["replica_spread"] == 0.0  # both ranks' weights agree after every epoch
    assert proc.stdout.count("val PSNR") == 1  # rank 0 alone reports


def test_ddp_checkpoint_holds_the_unwrapped_network(ddp_run) -> None:
    from n2nkit.training.checkpoint import load_model

    run, _ = ddp_run
    model, ckpt = load_model(run / "last.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert ckpt["epoch"] == 2 and model.size_multiple == 32


def test_ddp_resume_continues(ddp_run, tmp_path: Path) -> None:
    run, _ = ddp_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    _torchrun(["--epochs", "3", "--out", str(copy), "--resume"], tmp_path)
    records = _metrics(copy)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["replica_spread"] == 0.0
    from n2nkit.training.checkpoint import load_checkpoint

    assert load_checkpoint(copy / "last.pt")["epoch"] == 3


def test_environment_without_torchrun_is_one_process() -> None:
    assert distributed.from_env({}) == distributed.SINGLE
    assert distributed.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == distributed.SINGLE
    d = distributed.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (d.rank, d.local_rank, d.world_size, d.is_main, d.enabled) == (3, 1, 4, False, True)


def test_incomplete_torchrun_environment_is_one_line() -> None:
    with pytest.raises(UserInputError, match="incomplete"):
        distributed.from_env({"WORLD_SIZE": "2"})
    with pytest.raises(UserInputError, match="do not fit"):
        distributed.from_env({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})


def test_rank_device() -> None:
    two = distributed.Dist(rank=1, local_rank=1, world_size=2)
    assert distributed.rank_device(distributed.SINGLE, "cuda:3") == "cuda:3"  # untouched
    assert distributed.rank_device(two, "cpu") == "cpu"
    with pytest.raises(UserInputError, match="cuda:LOCAL_RANK"):
        distributed.rank_device(two, "cuda:0")
    import torch

    if not torch.cuda.is_available():
        assert distributed.rank_device(two, "auto") == "cpu"
        with pytest.raises(UserInputError, match="no CUDA"):
            distributed.rank_device(two, "cuda")
