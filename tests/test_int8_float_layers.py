"""``--int8-float-layers``: the last convolution layers of an INT8 model stay float, the rest
runs in INT8, in real onnxruntime QDQ models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from n2nkit.errors import UserInputError
from n2nkit.export.quantize_int8 import (
    calibration_batches,
    float_tail,
    quantize_int8,
    quantized_ops,
)


def test_float_tail_counts_a_split_convolution_as_one_layer(untrained_truncated_onnx) -> None:
    model = onnx.load(str(untrained_truncated_onnx[0]))
    one, two = float_tail(model, 1), float_tail(model, 2)
    assert [n for n in one if "conv" in n] == ["node_conv2d_13"]
    # the head's first convolution was split over its concatenation: both parts and their add
    assert {"node_conv2d_12.part0", "node_conv2d_12.part1", "node_conv2d_12.sum1"} <= set(two)
    assert set(one) < set(two) and float_tail(model, 0) == []
    with pytest.raises(UserInputError, match="convolution layers"):
        float_tail(model, 99)


def test_float_layers_run_in_float_and_the_rest_in_int8(
    untrained_truncated_onnx, tmp_path: Path
) -> None:
    source, meta = untrained_truncated_onnx
    calibration = calibration_batches("gaussian:25", 8, crops=8, side=32)
    full = quantize_int8(source, tmp_path / "q0.onnx", meta, calibration)
    mixed = quantize_int8(source, tmp_path / "q2.onnx", meta, calibration, float_layers=2)
    convs_full = quantized_ops(onnx.load(str(full)))["Conv"]
    mixed_model = onnx.load(str(mixed))
    assert quantized_ops(mixed_model)["Conv"] == convs_full - 3  # part0, part1, conv2d_13
    props = {p.key: p.value for p in mixed_model.metadata_props}
    assert props["n2nkit.int8_float_layers"] == "2"
    assert "node_conv2d_13" in props["n2nkit.int8_float_nodes"].split(",")
    x = calibration_batches("gaussian:25", 8, crops=1, side=64, seed=3)[0]

    def run(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    reference = run(source)
    error_full = np.abs(run(full) - reference).mean()
    error_mixed = np.abs(run(mixed) - reference).mean()
    assert 0 < error_mixed < error_full  # fewer 8-bit steps between the input and the output
