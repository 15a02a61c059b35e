"""Per-channel activation equalization before INT8 (``training/equalize.py``): the network's
function is unchanged, every inner activation spans one range, networks it cannot rewrite are
left alone, and onnxruntime's INT8 of the equalized network is closer to float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from n2nkit.export.onnx_export import export_onnx, metadata_for
from n2nkit.export.quantize_int8 import calibration_batches, quantize_int8
from n2nkit.training.equalize import (
    MIN_FACTOR,
    colour_diverse_batches,
    equalization_pairs,
    equalize_activations,
)
from n2nkit.training.models import create_model


def _spans(model: torch.nn.Module, batches: list[np.ndarray]) -> dict[int, torch.Tensor]:
    """max(max, -min) of every producing convolution's output, per channel, by pair index."""
    pairs = equalization_pairs(model)
    assert pairs is not None
    spans: dict[int, torch.Tensor] = {}
    hooks = [
        conv.register_forward_hook(
            lambda _m, _i, out, i=i: spans.__setitem__(
                i,
                torch.maximum(
                    torch.maximum(out.amax((0, 2, 3)), -out.amin((0, 2, 3))),
                    spans.get(i, torch.zeros(out.shape[1])),
                ),
            )
        )
        for i, (conv, _) in enumerate(pairs)
    ]
    with torch.no_grad():
        for batch in batches:
            model(torch.from_numpy(batch))
    for hook in hooks:
        hook.remove()
    return spans


@pytest.mark.parametrize("variant", ["n2n", "truncated", "deeper"])
def test_same_function_and_equal_channel_ranges(variant: str) -> None:
    torch.manual_seed(0)
    model = create_model(variant, residual=True).eval()
    multiple = model.size_multiple
    batches = calibration_batches("gaussian:0-50", multiple, crops=8, side=64)
    equalized = equalize_activations(model, batches)
    assert equalized is not None and equalized is not model
    x = torch.from_numpy(calibration_batches("gaussian:25", multiple, crops=2, side=64, seed=9)[0])
    with torch.no_grad():
        before, after = model(x), equalized(x)
    assert torch.allclose(before, after, atol=1e-4)
    old, new = _spans(model, batches), _spans(equalized, batches)
    for i, span in new.items():
        clamped = old[i] < old[i].max() * MIN_FACTOR  # near-dead channels: scaled 16× at most
        assert torch.allclose(span[~clamped], span.max().expand(int((~clamped).sum())), rtol=1e-3)
        assert torch.all(span[clamped] < span.max())
    assert any(float(old[i].min() / old[i].max()) < 0.5 for i in old)  # there was work to do


def test_every_inner_convolution_is_paired_once() -> None:
    model = create_model("truncated")
    pairs = equalization_pairs(model)
    assert pairs is not None
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    producers = [p for p, _ in pairs]
    consumers = [c for _, cs in pairs for c, _ in cs]
    assert len(producers) == len(set(producers)) == len(convs) - 1  # all but the output conv
    assert set(producers) == set(convs) - {model.head[-1]}
    assert set(consumers) == set(convs) - {model.encoders[0][0]}  # all but the input conv
    skip_reads = [(c, off) for _, cs in pairs for c, off in cs if off]
    assert skip_reads == [(block[0], 48) for block in model.decoders]  # the skips' half


@pytest.mark.parametrize("variant", ["inception", "fft", "hls"])
def test_networks_it_cannot_rewrite_are_left_alone(variant: str) -> None:
    model = create_model(variant)
    assert equalization_pairs(model) is None
    assert equalize_activations(model, []) is None


def test_colour_diverse_batches_reorder_the_photos_channels() -> None:
    batches = colour_diverse_batches("gaussian:0", 8)
    crops = np.concatenate(batches)
    assert crops.shape[1:] == (3, 64, 64) and len(crops) == 192
    means = crops.mean(axis=(2, 3))  # per crop and channel
    assert (means.argmax(axis=1) == 0).mean() < 0.6  # not the photos' red-heavy colours alone
    assert len({tuple(np.argsort(m)) for m in means}) == 6  # every channel order occurs


def test_int8_of_the_equalized_network_is_closer_to_float(
    trained_n2n_run: Path, tmp_path: Path
) -> None:
    """A trained network and the same calibration crops, quantized as it is and after
    equalization, run by onnxruntime on colour-reordered noisy crops: equalization cuts the
    INT8 error. (An untrained network has no such channels: its ranges are alike.)"""
    from n2nkit.training.checkpoint import load_model, resolve_checkpoint

    model, checkpoint = load_model(resolve_checkpoint(trained_n2n_run))
    model = model.eval()
    meta = metadata_for(model, checkpoint)
    multiple = meta.size_multiple
    equalized = equalize_activations(model, colour_diverse_batches("gaussian:0-50", multiple))
    assert equalized is not None
    calibration = calibration_batches("gaussian:0-50", multiple, crops=16, side=64)
    fp32 = export_onnx(model, tmp_path / "m.onnx", meta)
    plain = quantize_int8(fp32, tmp_path / "q.onnx", meta, calibration)
    balanced = quantize_int8(
        export_onnx(equalized, tmp_path / "e.onnx", meta), tmp_path / "qe.onnx", meta, calibration
    )
    x = np.concatenate(colour_diverse_batches("gaussian:25", multiple, seed=4))[::12]

    def run(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"noisy": x})[0]

    reference = run(fp32)
    error_plain = float(np.sqrt(np.mean((run(plain) - reference) ** 2)))
    error_balanced = float(np.sqrt(np.mean((run(balanced) - reference) ** 2)))
    assert 0 < error_balanced < 0.9 * error_plain  # measured: 0.76×
