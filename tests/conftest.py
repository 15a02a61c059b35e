"""Fixtures shared across test modules: one small trained n2n and its export, made once per
session because training and quantizing are the slowest steps of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

NOISE = "gaussian:25"


@pytest.fixture(scope="session")
def trained_n2n_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real training run: a fixed number of steps (45 batches of 64 crops, about a
    minute on 2 CPU cores) so the model, and every figure below, does not depend on CPU load."""
    from n2nkit.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        variant="n2n",
        noise=NOISE,
        out=out / "n2n",
        epochs=1,
        epoch_size=45 * 64,
        batch_size=64,
        val_size=200,
    )
    result = train(config, progress=False)
    assert result.best_checkpoint.is_file()
    return result.run_dir


@pytest.fixture(scope="session")
def exported_n2n_results(trained_n2n_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """(folder, rows) of a full CPU export: FP32, INT8, FP16 and ORT-format artifacts."""
    from n2nkit.export.pipeline import export_checkpoint

    out = tmp_path_factory.mktemp("artifacts")
    return out, export_checkpoint(trained_n2n_run, out, int8=True, fp16=True, ort=True)


@pytest.fixture(scope="session")
def exported_n2n(exported_n2n_results) -> Path:
    """The export folder of the small trained n2n."""
    return exported_n2n_results[0]
