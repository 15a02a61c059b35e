"""``--int8-calibration tail-percentile:P``: percentile ranges on the full-resolution tail,
MinMax ranges everywhere else, in real onnxruntime QDQ models of a real network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from n2nkit.errors import UserInputError
from n2nkit.export.pipeline import int8_calibrations
from n2nkit.export.quantize_int8 import (
    calibration_batches,
    calibration_options,
    full_resolution_tail,
    quantize_int8,
)


def _activation_scales(path: Path) -> dict[str, float]:
    """Scale of every activation QuantizeLinear, by the tensor it quantizes."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and inits[n.input[1]].ndim == 0
    }


def test_tail_starts_at_the_last_upsampling(untrained_truncated_onnx) -> None:
    model = onnx.load(str(untrained_truncated_onnx[0]))
    tail = full_resolution_tail(model)
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert tail[0] == resizes[-1].input[0] and resizes[-1].output[0] in tail
    assert model.graph.output[0].name in tail
    assert not any(r.output[0] in tail for r in resizes[:-1])  # the coarser levels are out
    assert model.graph.input[0].name not in tail


def test_tail_takes_percentile_ranges_and_the_rest_minmax(
    untrained_truncated_onnx, tmp_path: Path
) -> None:
    source, meta = untrained_truncated_onnx
    calibration = calibration_batches("gaussian:0-50", 8, crops=16, side=64)
    built = {
        method: _activation_scales(
            quantize_int8(source, tmp_path / f"{i}.onnx", meta, calibration, method=method)
        )
        for i, method in enumerate(("minmax", "percentile:99.9", "tail-percentile:99.9"))
    }
    mixed, minmax, percentile = (
        built["tail-percentile:99.9"],
        built["minmax"],
        built["percentile:99.9"],
    )
    tail = set(full_resolution_tail(onnx.load(str(source))))
    in_tail = [t for t in mixed if t in tail]
    elsewhere = [t for t in mixed if t not in tail]
    assert in_tail and elsewhere
    for tensor in in_tail:
        assert mixed[tensor] == pytest.approx(percentile[tensor], rel=1e-4)
    for tensor in elsewhere:
        assert mixed[tensor] == pytest.approx(minmax[tensor], rel=1e-4)
    assert any(percentile[t] < 0.9 * minmax[t] for t in in_tail)  # the two really differ there
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "2.onnx")).metadata_props}
    assert props["n2nkit.int8_calibration"].startswith("tail-percentile:99.9,")


@pytest.mark.parametrize("name", ["tail-percentile:40", "tail-percentile:", "tail-minmax", "x"])
def test_bad_calibration_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown INT8 calibration"):
        calibration_options(name)
    with pytest.raises(UserInputError, match="--int8-calibration"):
        int8_calibrations(name)


def test_auto_means_every_candidate_and_a_name_means_that_one() -> None:
    assert int8_calibrations("auto") == ()
    assert int8_calibrations("tail-percentile:99.99") == ("tail-percentile:99.99",)
    assert np.isfinite(float(int8_calibrations("percentile:99.9")[0].split(":")[1]))
