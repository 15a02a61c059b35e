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
        # colours as they are: permuted colours make channels respond to every colour alike,
        # and test_equalize needs the colour-selective channels of such a network
        permute_colours=False,
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


@pytest.fixture(scope="session")
def untrained_truncated_onnx(tmp_path_factory: pytest.TempPathFactory):
    """(path, metadata) of a seeded, untrained residual truncated exported to FP32 ONNX: a real
    graph (splits, skips, upsampling) for tests of what INT8 quantization does to it."""
    import torch

    from n2nkit.export.onnx_export import export_onnx, metadata_for
    from n2nkit.training.models import create_model

    torch.manual_seed(0)
    model = create_model("truncated", residual=True).eval()
    meta = metadata_for(model, None)
    return export_onnx(model, tmp_path_factory.mktemp("truncated") / "m.onnx", meta), meta


def make_onnx_model(
    path: Path,
    *,
    metadata: dict[str, str] | None = None,
    input_name: str = "noisy",
    output_name: str = "denoised",
    channels: int = 3,
    op: str = "Identity",
) -> Path:
    """A tiny real ONNX model (``Identity`` by default) with n2nkit metadata.

    An identity "denoiser" lets tests check the runtime's padding, tiling, blending and dtype
    handling exactly: whatever goes in must come back bit for bit.
    """
    import onnx
    from onnx import TensorProto, helper

    shape = ["batch", channels, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node(op, [input_name], [output_name])],
        "n2nkit-test",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = (
        {"n2nkit.variant": "identity", "n2nkit.size_multiple": "8", "n2nkit.min_side": "8"}
        if metadata is None
        else metadata
    )
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.fixture
def identity_model(tmp_path: Path) -> Path:
    """An identity ONNX model with size multiple 8 (see :func:`make_onnx_model`)."""
    return make_onnx_model(tmp_path / "identity.onnx")
