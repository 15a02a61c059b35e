"""Hostile `n2nkit train` runs: two real processes into one --out (the second is refused,
naming the first's pid), a SIGKILL mid-run then a resume (a stale lock does not block, no temp
files remain, one metrics line per epoch), sizes that cannot fit in memory (refused with the
figure), a failed run (no empty --out left), and a resume with other flags (one note saying
which it keeps)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from n2nkit.cli import app

runner = CliRunner()
TINY = ["--epoch-size", "8", "--batch-size", "4", "--val-size", "4", "--crop", "32",
        "--threads", "1", "--recipe", "report", "--no-progress"]  # fmt: skip


def _wait_until(process: subprocess.Popen, ready, failure: str, timeout: float = 120) -> None:
    """Poll ``ready()`` while ``process`` runs; fail with ``failure`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{failure} in {timeout:.0f} s"
        time.sleep(0.05)


def _n2nkit(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "n2nkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def _epochs(metrics: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]


def test_second_run_into_one_out_is_refused_and_a_killed_run_resumes_cleanly(tmp_path):
    from n2nkit.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    # Run A: many small epochs, so it is still training when B starts and when it is killed.
    a = _n2nkit("train", "--out", str(run), "--epochs", "100000", *TINY)
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.pt").exists():
            assert a.poll() is None, a.communicate()
            assert time.monotonic() < deadline, "run A wrote no checkpoint in 120 s"
            time.sleep(0.2)

        # Run B into the same folder: one line naming A's pid, non-zero exit.
        b = _n2nkit("train", "--out", str(run), "--epochs", "1", "--overwrite", *TINY)
        out, err = b.communicate(timeout=120)
        assert a.poll() is None, "run A ended before B was refused: the test proves nothing"
        assert b.returncode == 2, (out, err)
        assert f"pid {a.pid}" in err and "in use by another n2nkit train" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    finally:
        a.send_signal(signal.SIGKILL)  # kill -9 mid-run: no handler runs
        a.communicate(timeout=60)
    assert a.returncode == -signal.SIGKILL

    last = load_checkpoint(run / "last.pt")["epoch"]
    # What a kill at other points leaves: a half-written checkpoint, and (from an n2nkit that
    # wrote the line before the checkpoint) a line for an epoch no checkpoint holds.
    (run / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"epoch": last + 1, "orphan": True}) + "\n")

    # The lock of the dead run A does not block; the resume ends with unique, increasing epochs.
    # (In this process: a third interpreter start costs more than the resume itself.)
    args = ["train", "--out", str(run), "--resume", "--epochs", str(last + 1), "--threads", "1"]
    resumed = runner.invoke(app, [*args, "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert _epochs(run / "metrics.jsonl") == list(range(1, last + 2))
    assert not any("orphan" in line for line in (run / "metrics.jsonl").read_text().splitlines())
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_validation_set_too_large_for_memory_is_refused_with_the_figure(tmp_path):
    out = tmp_path / "new" / "run"
    args = ["train", "--out", str(out), "--epochs", "1", *TINY]
    args[args.index("--val-size") + 1] = "100000000"
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--val-size 100000000" in result.stderr and "TB" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "new").exists()


def test_batch_too_large_for_memory_is_refused_with_the_figure(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--epochs", "1", *TINY]
    args[args.index("--batch-size") + 1] = "200000"
    args[args.index("--epoch-size") + 1] = "200000"
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--batch-size 200000" in result.stderr and "per 32×32 crop" in result.stderr
    assert not out.exists()


def test_failed_train_removes_only_the_folders_it_created(tmp_path):
    keep = tmp_path / "existing"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    for out in (tmp_path / "a" / "b" / "run", keep):
        args = ["train", "--out", str(out), "--epochs", "1", "--data", str(tmp_path / "nope")]
        result = runner.invoke(app, [*args, *TINY])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()
    assert sorted(os.listdir(keep)) == ["notes.txt"] and (keep / "notes.txt").read_text() == "mine"


def test_resume_with_other_flags_says_which_it_keeps(tmp_path):
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", "--out", str(out), "--epochs", "1", *TINY])
    assert first.exit_code == 0, first.output
    result = runner.invoke(
        app,
        ["train", "--out", str(out), "--resume", "--epochs", "2", "--lr", "0.5",
         "--noise", "gaussian:10", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    note = [line for line in result.stderr.splitlines() if line.startswith("note: --resume")]
    assert len(note) == 1, result.stderr
    ignored, taken = note[0].split("taken from this call:")
    assert "--lr" in ignored and "--noise" in ignored and "--epochs" not in ignored
    assert taken.split("(")[0].strip() == "--epochs"
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == [1e-3, 1e-3]  # --lr 0.5 really was not taken


def test_sigterm_leaves_a_resumable_checkpoint_as_ctrl_c_does(tmp_path):
    """``timeout``, schedulers and ``docker stop`` send SIGTERM: the run saves last.pt (the
    epochs it completed) and exits 143, and --resume continues from it."""
    from n2nkit.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    a = _n2nkit("train", "--out", str(run), "--epochs", "100000", *TINY)
    try:  # until it is training, not starting up
        _wait_until(a, (run / "metrics.jsonl").exists, "the run finished no epoch")
    finally:
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=60)
    assert a.returncode == 143, (out, err)
    assert "terminated" in err and "Traceback" not in err, err
    saved = load_checkpoint(run / "last.pt")
    assert saved["epoch"] >= 1, saved["epoch"]
    args = ["train", "--out", str(run), "--resume", "--epochs", str(saved["epoch"] + 1),
            "--threads", "1", "--no-progress"]  # fmt: skip
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(run / "last.pt")["epoch"] == saved["epoch"] + 1


def test_options_that_would_change_nothing_or_break_the_data_are_refused(tmp_path):
    """--lr-step under the cosine schedule did nothing; poisson:1e30 trained on black images."""
    cases = [
        (["--lr-step", "1"], "--lr-step sets the step schedule's period"),
        (["--noise", "poisson:1e30"], "must be >= 0.001 and <= 1000000"),
        (["--resume", "--overwrite"], "--overwrite replaces it: give one"),  # one was ignored
        (["--data", "synthetic", "--synthetic-fraction", "0"], "all synthetic images"),
        (["--variant", "all,n2n"], "'all' stands alone"),
        (
            ["--recipe", "report", "--schedule", "cosine", "--lr-step", "3"],
            "schedule is cosine (--schedule)",
        ),  # not "the report recipe's"
    ]
    for flags, fragment in cases:
        tiny = ["--epochs", "1", "--epoch-size", "8", "--batch-size", "4", "--val-size", "4"]
        result = runner.invoke(app, ["train", "--out", str(tmp_path / "r"), *flags, *tiny])
        assert result.exit_code == 2 and fragment in result.output, result.output
        assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_every_variants_out_is_checked_before_the_first_trains(tmp_path):
    """With two variants, a run already in OUT/truncated is refused before n2n trains."""
    (tmp_path / "truncated").mkdir()
    (tmp_path / "truncated" / "best.pt").write_bytes(b"an earlier run's")
    args = ["train", "--variant", "n2n,truncated", "--out", str(tmp_path), "--epochs", "1", *TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "truncated already holds a run" in result.output
    assert not (tmp_path / "n2n").exists()


def test_a_resume_reports_the_variant_it_trained_not_the_default(tmp_path):
    run = tmp_path / "run"
    first = ["train", "--variant", "truncated", "--out", str(run), "--epochs", "1", *TINY]
    assert runner.invoke(app, first).exit_code == 0
    resumed = runner.invoke(app, ["train", "--out", str(run), "--resume", "--epochs", "2",
                                  "--no-progress"])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert "truncated: val PSNR" in resumed.output and "n2n: val PSNR" not in resumed.output


def _old_run(folder: Path) -> dict[str, bytes]:
    """A previous run's files (their content is never read by --overwrite)."""
    folder.mkdir(parents=True)
    files = {"best.pt": b"old best", "last.pt": b"old last", "metrics.jsonl": b'{"epoch": 1}\n'}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_an_overwrite_interrupted_before_its_first_epoch_loses_nothing(tmp_path):
    """--overwrite deleted the old best.pt, last.pt and metrics.jsonl while setting up: a
    SIGTERM (or Ctrl-C, or an error) before the new run's first epoch left neither run."""
    run = tmp_path / "run"
    before = _old_run(run)
    a = _n2nkit(
        "train", "--out", str(run), "--overwrite", "--epochs", "1", *TINY, "--epoch-size", "1000000"
    )  # fmt: skip  (TINY's 8 overridden: a long epoch)
    try:  # until it is set up and training its first epoch
        _wait_until(a, (run / ".n2nkit-replaced-run").exists, "the run did not start")
    finally:
        a.send_signal(signal.SIGTERM)
        _, err = a.communicate(timeout=60)
    assert a.returncode == 143 and "Traceback" not in err, err
    assert _files(run) == before and not (run / ".n2nkit-replaced-run").exists()

    # Once the new run ends an epoch, the old one is gone for good.
    done = runner.invoke(app, ["train", "--out", str(run), "--overwrite", "--epochs", "1", *TINY])
    assert done.exit_code == 0, done.output
    assert not (run / ".n2nkit-replaced-run").exists()
    assert _files(run)["best.pt"] != before["best.pt"]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_overwrite_from_its_own_best_keeps_it_until_the_new_run_has_an_epoch(tmp_path):
    """`--overwrite --init OUT/best.pt` (start the schedule again from the best weights) loads
    the weights first; the old best.pt waits aside and comes back if the run ends early."""
    import torch

    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--out", str(run), "--epochs", "1", *TINY]).exit_code == 0
    before = _files(run)
    init = torch.load(run / "best.pt", weights_only=True)["state_dict"]
    args = ["train", "--out", str(run), "--overwrite", "--init", str(run / "best.pt"),
            "--epochs", "1", *TINY]  # fmt: skip
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    after = torch.load(run / "best.pt", weights_only=True)["state_dict"]
    assert _files(run)["best.pt"] != before["best.pt"]
    from n2nkit.training.models import create_model

    torch.manual_seed(12345)
    fresh = create_model("n2n").state_dict()  # what a run not started from --init would be near

    def distance(a: dict, b: dict) -> float:
        return sum(float((a[k].float() - b[k].float()).norm()) for k in a)

    assert distance(after, init) < distance(after, fresh) / 2  # it trained on from init
    assert not (run / ".n2nkit-replaced-run").exists()
    # a run started with --overwrite resumes and loads like any other (its saved config says
    # overwrite=True; the check of a resumed config once refused it)
    resumed = runner.invoke(app, ["train", "--out", str(run), "--resume", "--epochs", "2",
                                  "--threads", "1", "--no-progress"])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output


def test_a_refused_second_run_leaves_the_set_aside_run_alone(tmp_path):
    """While one run holds the folder (an --overwrite run in its first epoch), a second call is
    refused; it once moved the set-aside run back under the first run's feet on its way out."""
    from n2nkit import runlock

    run = tmp_path / "run"
    old = _old_run(tmp_path / "old")
    (run / ".n2nkit-replaced-run").mkdir(parents=True)
    for name, content in old.items():
        (run / ".n2nkit-replaced-run" / name).write_bytes(content)
    (run / "last.pt").write_bytes(b"the running run's epoch-0 state")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with runlock.hold(run, "train"):
        args = ["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    after.pop(Path(runlock.LOCK_NAME), None)
    before.pop(Path(runlock.LOCK_NAME), None)
    assert after == before


def test_a_train_and_an_export_sharing_a_folder_restore_only_their_own_files(tmp_path):
    """`n2nkit export run --out run --overwrite` and `train --overwrite --out run` each set
    files aside; restoring one once deleted the other's files (one folder name for both)."""
    from n2nkit.export.pipeline import _restore_replaced
    from n2nkit.training.replaced_run import restore_set_aside

    run = tmp_path / "run"
    checkpoints = _old_run(run)
    (run / ".n2nkit-replaced-export").mkdir()
    (run / ".n2nkit-replaced-export" / "model.onnx").write_bytes(b"old model")
    (run / "model.onnx").write_bytes(b"half-exported new model")
    restore_set_aside(run)  # nothing of train's was set aside: nothing moves
    assert _files(run) == {**checkpoints, "model.onnx": b"half-exported new model"}
    _restore_replaced(run)
    assert _files(run) == {**checkpoints, "model.onnx": b"old model"}


def test_the_report_recipe_trains_on_synthetic_data(tmp_path):
    """The report recipe sets a synthetic fraction of 0; with --data synthetic that was taken
    for the user's own --synthetic-fraction and refused."""
    args = ["train", "--out", str(tmp_path / "r"), "--data", "synthetic", "--epochs", "1", *TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def test_infinite_budgets_and_out_of_range_seeds_are_refused(tmp_path):
    """--budget inf trained forever; --seed -1 or 2**64 ended in numpy's or torch's traceback."""
    cases = [
        (["--budget", "inf"], "give a finite time"),
        (["--budget", "1e400"], "give a finite time"),
        (["--budget", "nan"], "give a finite time"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
        (["--seed", str(2**64)], "--seed must be a whole number from 0 to 4294967295"),
    ]
    for flags, fragment in cases:
        args = ["train", "--out", str(tmp_path / "r"), "--epochs", "1", *flags, *TINY]
        result = runner.invoke(app, args)  # (--epochs 1: a regression ends instead of hanging)
        assert result.exit_code == 2 and fragment in result.output, (flags, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "r").exists()
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path / "p"), "--budget", "inf"])
    assert result.exit_code == 2 and "give a finite time" in result.output
    assert not (tmp_path / "p").exists()


def test_pair_folders_must_be_two_different_folders(tmp_path):
    """`--data A,A` trained the identity (each image paired with itself); `--data A,` paired
    A with the current folder."""
    from PIL import Image

    folder = tmp_path / "shots"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "a.png")
    for spec, fragment in ((f"{folder},{folder}", "pairs every image with itself"),
                           (f"{folder},", "names two folders of noisy pairs")):  # fmt: skip
        args = ["train", "--out", str(tmp_path / "r"), "--data", spec, "--epochs", "1", *TINY]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and fragment in result.output, result.output
        assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_a_multi_variant_resume_names_what_each_folder_trained(tmp_path):
    """OUT/n2n holding a truncated run: the result line said truncated, the table n2n."""
    for name in ("n2n", "truncated"):
        args = ["train", "--variant", "truncated", "--out", str(tmp_path / name), "--epochs", "1"]
        assert runner.invoke(app, [*args, *TINY]).exit_code == 0
    args = ["train", "--variant", "n2n,truncated", "--out", str(tmp_path), "--resume",
            "--epochs", "2", "--threads", "1", "--no-progress"]  # fmt: skip
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("n2nkit train") :]
    rows = [line.split("│")[1].strip() for line in table.splitlines() if line.count("│") > 2]
    assert rows == ["truncated", "truncated"], table


def test_training_on_in_a_folder_that_holds_an_export_says_to_re_export(tmp_path):
    """`n2nkit export run --out run`, then `train --resume --out run`: the artifacts are now of
    older weights (compare refuses such a folder); the resume says so as it ends."""
    from n2nkit.runtime.artifacts import write_manifest

    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--out", str(run), "--epochs", "1", *TINY]).exit_code == 0
    write_manifest(run, str(run / "best.pt"), "sha256:" + "0" * 64)
    args = ["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "holds artifacts exported before this training: re-export" in result.stderr
    assert f"n2nkit export {run} --out {run} --overwrite" in " ".join(result.stderr.split())
