"""Real training runs on tiny data: the acceptance run, the report's file format, resume,
Ctrl-C, divergence and refused configurations."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from n2nkit.errors import TrainingDivergedError, UnknownNameError, UserInputError
from n2nkit.training import trainer
from n2nkit.training.checkpoint import load_checkpoint, load_model
from n2nkit.training.config import TrainConfig, parse_duration
from n2nkit.training.data import load_builtin_images
from n2nkit.training.gpu_batches import CropBank
from n2nkit.training.noise import add_noise
from n2nkit.training.trainer import train

TINY = dict(epoch_size=64, batch_size=32, val_size=16, num_threads=2)


@pytest.mark.slow
def test_sixty_second_cpu_run_gains_four_db(tmp_path: Path) -> None:
    """The issue's acceptance test: <= 60 s of CPU training on built-in data at gaussian:25.

    Small batches: on a CPU, many small steps learn more per second than a few of 400. One
    thread: on a shared 2-core machine two torch threads collapse (measured 15 img/s against
    237 img/s for one thread while other jobs held the cores).
    """
    config = TrainConfig(
        noise="gaussian:25",
        budget_s=45,
        batch_size=32,
        val_size=300,
        num_threads=1,
        out=tmp_path / "n2n",
    )
    result = train(config, progress=False)
    assert result.stopped_by == "budget"
    assert 18 < result.val_psnr_noisy < 22  # sigma 25 on 8-bit photos: ~20.2 dB
    assert result.best_val_psnr - result.val_psnr_noisy >= 4.0, result.history
    model, ckpt = load_model(result.best_checkpoint)
    assert ckpt["model"] == {"variant": "n2n", "kwargs": {}, "size_multiple": 32}
    assert ckpt["config"]["noise"] == "gaussian:25" and ckpt["noise"] == "gaussian:25"
    assert ckpt["config"]["out_dir"] == str(tmp_path / "n2n")
    assert ckpt["best_val_psnr"] == pytest.approx(result.best_val_psnr)
    assert {"n2nkit", "torch", "python"} <= set(ckpt["versions"])
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)


def _report_files(tmp_path: Path) -> tuple[Path, Path]:
    """A small dataset in the report's format, made from built-in crops."""
    g = torch.Generator().manual_seed(0)
    bank = CropBank([load_builtin_images("train")], 32, torch.device("cpu"))
    (clean,) = bank.draw(96, g)
    x = clean.float() / 255
    to_u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731
    train_path, val_path = tmp_path / "train.pt", tmp_path / "val.pt"
    noisy = [to_u8(add_noise(x, "gaussian:25", g)) for _ in range(2)]
    torch.save((noisy[0][:64], noisy[1][:64]), train_path)
    torch.save((noisy[0][64:], clean[64:]), val_path)
    return train_path, val_path


def test_run_on_report_format_files(tmp_path: Path) -> None:
    train_path, val_path = _report_files(tmp_path)
    config = TrainConfig(
        variant="truncated",
        data=str(train_path),
        val_data=str(val_path),
        epochs=2,
        out=tmp_path / "run",
        **TINY,
    )
    result = train(config, progress=False)
    assert result.epochs_completed == 2 and len(result.history) == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert result.val_psnr_noisy == pytest.approx(json.loads(lines[0])["val_psnr_noisy"])
    assert 18 < result.val_psnr_noisy < 22  # the file's own noisy/clean pairs were used
    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt["epoch"] == 2 and "optimizer" in ckpt and "rng" in ckpt
    assert ckpt["config"]["data"] == str(train_path)


def test_clean_supervision_needs_clean_images(tmp_path: Path) -> None:
    train_path, _ = _report_files(tmp_path)
    config = TrainConfig(data=str(train_path), supervision="clean", epochs=1, out=tmp_path / "r")
    with pytest.raises(UserInputError, match="clean training images"):
        train(config, progress=False)


def test_resume_continues_from_the_saved_epoch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(TrainConfig(variant="truncated", epochs=1, out=out, **TINY), progress=False)
    assert first.epochs_completed == 1
    with pytest.raises(UserInputError, match="--resume"):
        train(TrainConfig(variant="truncated", epochs=1, out=out, **TINY), progress=False)
    # resume takes the saved config (noise, variant...) and only the new length
    resumed = train(TrainConfig(epochs=3, out=out, resume=True, num_threads=2), progress=False)
    assert resumed.epochs_completed == 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["model"]["variant"] == "truncated" and ckpt["epoch"] == 3
    assert ckpt["optimizer"]["state"]  # Adam moments carried over
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    fresh = train(
        TrainConfig(variant="truncated", epochs=1, out=out, overwrite=True, **TINY), progress=False
    )
    assert fresh.epochs_completed == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_resume_with_only_more_time_keeps_the_planned_epochs(tmp_path: Path) -> None:
    """A run planned for 2 epochs, stopped by its budget after 1: `--resume --budget 60s` once
    dropped the plan and trained up to the default 25 epochs (or 60 s)."""
    out = tmp_path / "run"
    first = train(TrainConfig(variant="truncated", epochs=2, budget_s=1e-3, out=out, **TINY),
                  progress=False)  # fmt: skip
    assert first.epochs_completed == 1 and first.stopped_by == "budget"
    resumed = train(TrainConfig(out=out, resume=True, budget_s=60.0), progress=False)
    assert resumed.epochs_completed == 2 and resumed.stopped_by == "epochs"


def test_resume_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="nothing to resume"):
        train(TrainConfig(out=tmp_path / "none", resume=True), progress=False)


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real = trainer.make_batch

    def interrupt_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # 2 steps per epoch: the last step of epoch 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "make_batch", interrupt_in_epoch_two)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(variant="truncated", epochs=3, out=out, **TINY), progress=False)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["interrupted"] and ckpt["epoch"] == 1  # epoch 2 was not completed
    monkeypatch.setattr(trainer, "make_batch", real)
    result = train(TrainConfig(out=out, resume=True, num_threads=2), progress=False)
    assert result.epochs_completed == 3
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_nan_loss_stops_with_a_clear_message(tmp_path: Path) -> None:
    config = TrainConfig(variant="truncated", epochs=2, lr=10.0, out=tmp_path / "nan", **TINY)
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        train(config, progress=False)


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"variant": "resnet"}, UnknownNameError),
        ({"noise": "speckle"}, UnknownNameError),
        ({"loss": "huber"}, UnknownNameError),
        ({"crop": 48}, UserInputError),  # not a multiple of n2n's 32
        ({"batch_size": 0}, UserInputError),
        ({"device": "tpu"}, UserInputError),
        ({"data": "/no/such/file.pt"}, UserInputError),
        ({"num_threads": 100_000}, UserInputError),  # torch.set_num_threads would crash
        ({"epochs": 2.5}, UserInputError),  # range() would raise a TypeError mid-run
        ({"seed": 1.0}, UserInputError),
        ({"lr": 1e38}, UserInputError),  # overflowed inside Adam with a traceback
        ({"lr": float("inf")}, UserInputError),  # "diverged" only after an epoch
        ({"data": ""}, UserInputError),  # trained on the images in the current folder
        ({"variant": "hls", "crop": 5}, UserInputError),  # "Output size is too small" traceback
    ],
)
def test_bad_configurations_are_user_errors(tmp_path: Path, kwargs, error) -> None:
    with pytest.raises(error):
        train(TrainConfig(out=tmp_path / "r", **{"epochs": 1, **kwargs}), progress=False)


def test_numpy_integers_are_taken_and_saved_as_plain_ints(tmp_path: Path) -> None:
    import numpy as np

    counts = {k: np.int64(v) for k, v in TINY.items()}
    config = TrainConfig(variant="truncated", epochs=np.int32(1), seed=np.int64(3), **counts)
    train(dataclasses.replace(config, out_dir=tmp_path / "r"), progress=False)
    saved = load_checkpoint(tmp_path / "r" / "best.pt")["config"]  # weights_only load
    assert saved["seed"] == 3 and type(saved["seed"]) is int
    assert all(type(saved[k]) is int for k in ("epochs", *TINY))


def test_seed_check_takes_numpy_integers_and_refuses_the_rest() -> None:
    import numpy as np

    from n2nkit.training.config import MAX_SEED, check_seed

    for seed in (0, np.int64(7), np.uint32(MAX_SEED)):
        check_seed(seed)
    for seed in (True, -1, MAX_SEED + 1, 1.0, np.float64(2), "3"):
        with pytest.raises(UserInputError, match="whole number"):
            check_seed(seed)


def test_config_round_trips_as_plain_data(tmp_path: Path) -> None:
    config = TrainConfig(variant="hls", out_dir=tmp_path, budget_s=30.0)
    d = config.to_dict()
    assert d["out_dir"] == str(tmp_path) and d["betas"] == [0.9, 0.99]
    assert TrainConfig.from_dict(d) == config
    assert TrainConfig().out_dir == Path("runs/n2n")


def test_colours_are_permuted_by_default_except_for_real_noisy_pairs_and_the_report() -> None:
    from n2nkit.training.neighbor import default_permute_colours
    from n2nkit.training.recipes import recipe_settings

    assert [default_permute_colours(p) for p in ("synthetic", "neighbor", "files")] == [
        True,
        True,
        False,
    ]
    assert TrainConfig().permute_colours is None  # the pairing decides when the run starts
    assert recipe_settings("report")["permute_colours"] is False
    assert "permute_colours" not in recipe_settings("fast")
    assert recipe_settings("report", permute_colours=True)["permute_colours"] is True
    # a checkpoint written before the option resumes as it was trained: unpermuted
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "permute_colours"}
    assert TrainConfig.from_dict(old).permute_colours is False


@pytest.mark.parametrize(
    "text,seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("45", 45)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_refuses_nonsense() -> None:
    with pytest.raises(UserInputError, match="10m"):
        parse_duration("ten minutes")


def test_precision_choices_on_the_cpu(monkeypatch) -> None:
    from n2nkit import sysinfo

    cpu = torch.device("cpu")
    assert trainer.autocast_dtype("fp32", cpu) is None
    assert trainer.autocast_dtype("bf16", cpu) is torch.bfloat16
    # auto: bf16 only on CPUs that run it natively (fixed flag sets, not this machine's)
    for flags, expected in [({"avx2", "fma"}, None), ({"avx512f", "avx512_bf16"}, torch.bfloat16),
                            ({"amx_bf16"}, torch.bfloat16), (set(), None)]:  # fmt: skip
        monkeypatch.setattr(sysinfo, "cpu_flags", lambda flags=flags: set(flags))
        assert trainer.autocast_dtype("auto", cpu) is expected, flags
    with pytest.raises(UserInputError, match="fp16 needs a CUDA GPU"):
        trainer.autocast_dtype("fp16", cpu)
    with pytest.raises(UnknownNameError, match="precision"):
        TrainConfig(precision="fp8").validate()


def test_bf16_training_step_runs_and_records_its_precision(tmp_path: Path) -> None:
    from n2nkit.training.data import resolve_val_data
    from n2nkit.training.noise import parse_noise

    result = train(TrainConfig(epochs=2, precision="bf16", out=tmp_path / "r", **TINY), False)
    assert [h["precision"] for h in result.history] == ["bfloat16", "bfloat16"]
    # best_val_psnr is the best epoch's score, and best.pt's weights reproduce it
    assert result.best_val_psnr == max(h["val_psnr"] for h in result.history)
    model, ckpt = load_model(result.best_checkpoint)
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values())  # master weights
    val = trainer.build_val_set(resolve_val_data(None), parse_noise("gaussian:25"), 32,
                                TINY["val_size"], 32, torch.device("cpu"))  # fmt: skip
    assert trainer.validate(model, val) == pytest.approx(result.best_val_psnr, abs=1e-3)
    assert val.psnr_noisy == pytest.approx(result.val_psnr_noisy, abs=1e-4)


def test_init_starts_from_another_runs_weights(tmp_path: Path) -> None:
    first = train(TrainConfig(epochs=1, out=tmp_path / "a", **TINY), progress=False)
    tuned = train(
        TrainConfig(
            epochs=1, lr=1e-12, init=str(first.best_checkpoint), out=tmp_path / "b", **TINY
        ),
        progress=False,
    )
    a = load_checkpoint(first.best_checkpoint)["state_dict"]
    b = load_checkpoint(tuned.best_checkpoint)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # lr ~0: weights kept
    with pytest.raises(UserInputError, match="same network"):
        train(TrainConfig(variant="truncated", epochs=1, init=str(first.best_checkpoint),
                          out=tmp_path / "c", **TINY), progress=False)  # fmt: skip


def test_psnr_of_identical_images_is_capped_not_infinite() -> None:
    from n2nkit.training.metrics import psnr

    a = torch.rand(3, 3, 8, 8)
    values = psnr(a, a.clone())
    assert torch.isfinite(values).all() and float(values.min()) == pytest.approx(100.0)
