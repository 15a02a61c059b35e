"""Quantization-aware fine-tuning (``--qat``): the simulated INT8 is INT8, it stays close to
what onnxruntime's static INT8 does to the same network, and a real fine-tune saves plain
weights that export as any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from n2nkit.errors import UserInputError
from n2nkit.export.onnx_export import export_onnx, metadata_for
from n2nkit.export.quantize_int8 import calibration_batches, quantize_int8
from n2nkit.training.checkpoint import load_checkpoint, load_model
from n2nkit.training.config import TrainConfig
from n2nkit.training.models import create_model
from n2nkit.training.qat import simulate_int8
from n2nkit.training.trainer import train

TINY = dict(epoch_size=64, batch_size=16, val_size=16, num_threads=2)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _simulated(model: torch.nn.Module, calibration: list[np.ndarray]):
    simulation = simulate_int8(model)
    simulation.calibrate(iter([torch.from_numpy(b) for b in calibration]), model)
    return simulation


def test_simulated_activations_and_weights_lie_on_8_bit_grids() -> None:
    torch.manual_seed(0)
    model = create_model("truncated", residual=True).eval()
    seen: dict[str, torch.Tensor] = {}
    model.head[1].register_forward_hook(lambda _m, _i, out: seen.update(act=out))
    simulation = _simulated(model, calibration_batches("gaussian:25", 8, crops=8, side=32))
    assert simulation.calibrated and len(simulation.ranges) > 20
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    assert 1 < seen["act"].unique().numel() <= 256  # one LeakyReLU output, 8-bit
    conv = model.encoders[0][2]
    with torch.no_grad():  # what the simulated convolution computes with: its weights in INT8
        from n2nkit.training.qat import fake_quant_weight

        levels = [fake_quant_weight(conv.weight)[c].unique().numel() for c in range(4)]
    assert all(1 < n <= 256 for n in levels)
    assert conv.weight.unique().numel() > 256  # the stored weights themselves stay float


def test_simulation_loses_about_what_onnxruntime_int8_loses(tmp_path: Path) -> None:
    """The same network, the same calibration crops: the simulated INT8 and onnxruntime's
    static INT8 move the output away from float by a similar amount (within 6 dB of each
    other), and both do move it."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = create_model("truncated", residual=True).eval()
    meta = metadata_for(model, None)
    calibration = calibration_batches("gaussian:25", 8, crops=16, side=64)
    fp32 = export_onnx(model, tmp_path / "m.onnx", meta)
    int8 = quantize_int8(fp32, tmp_path / "q.onnx", meta, calibration, method="percentile:99.99")
    x = calibration_batches("gaussian:25", 8, crops=2, side=64, seed=5)[0]

    def run(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    reference, quantized = run(fp32), run(int8)
    _simulated(model, calibration)
    with torch.no_grad():
        simulated = model(torch.from_numpy(x)).numpy()
    ort_error, sim_error = _psnr(reference, quantized), _psnr(reference, simulated)
    assert ort_error < 90 and sim_error < 90  # both round something
    assert abs(ort_error - sim_error) < 6.0


def test_qat_fine_tune_saves_plain_weights_that_export(tmp_path: Path) -> None:
    base = train(TrainConfig(variant="truncated", epochs=1, out=tmp_path / "a", **TINY), False)
    tuned = train(
        TrainConfig(variant="truncated", epochs=1, init=str(base.best_checkpoint), qat=True,
                    lr=1e-3, out=tmp_path / "b", **TINY),
        progress=False,
    )  # fmt: skip
    before = load_checkpoint(base.best_checkpoint)
    after = load_checkpoint(tuned.last_checkpoint)
    assert after["config"]["qat"] is True
    assert set(after["state_dict"]) == set(before["state_dict"])  # no quantizer state saved
    assert any(not torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    assert np.isfinite(tuned.best_val_psnr)
    model, ckpt = load_model(tuned.best_checkpoint)  # a plain network: no hooks, exports as any
    assert not any(m._forward_hooks for m in model.modules())
    path = export_onnx(model.eval(), tmp_path / "tuned.onnx", metadata_for(model, ckpt))
    assert path.stat().st_size > 0


def test_qat_needs_a_trained_model_to_start_from() -> None:
    with pytest.raises(UserInputError, match="--init"):
        TrainConfig(qat=True).validate()
    TrainConfig(qat=True, init="runs/x/best.pt").validate()  # accepted; the file is read later


@pytest.fixture(scope="module")
def qat_n2n_run(trained_n2n_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real --qat run from the shared trained n2n, at a learning rate (1e-12) that leaves
    the weights where the run started them."""
    noise = load_checkpoint(trained_n2n_run / "best.pt")["config"]["noise"]
    config = TrainConfig(variant="n2n", noise=noise, epochs=1, qat=True, lr=1e-12,
                         init=str(trained_n2n_run / "best.pt"),
                         out=tmp_path_factory.mktemp("qat") / "n2n", **TINY)  # fmt: skip
    return train(config, progress=False).run_dir


def test_qat_trains_the_equalized_network_the_export_quantizes(
    trained_n2n_run: Path, qat_n2n_run: Path
) -> None:
    """From --init, --qat starts from the network the INT8 export quantizes: the same function
    with its per-channel activation ranges equalized (weights rescaled), not the weights as
    loaded."""
    from n2nkit.training.equalize import colour_diverse_batches

    before, ckpt = load_model(trained_n2n_run / "best.pt")
    after, _ = load_model(qat_n2n_run / "last.pt")
    noise = ckpt["config"]["noise"]
    x = torch.from_numpy(calibration_batches(noise, 16, crops=4, side=64, seed=3)[0])
    with torch.no_grad():
        assert torch.allclose(before.eval()(x), after.eval()(x), atol=2e-4)  # the same function
    first_before, first_after = before.encoders[0][0].weight, after.encoders[0][0].weight
    assert not torch.allclose(first_before, first_after, rtol=0.05)  # in other weights
    spans: list[torch.Tensor] = []
    after.encoders[0][0].register_forward_hook(
        lambda _m, _i, out: spans.append(torch.maximum(out.amax((0, 2, 3)), -out.amin((0, 2, 3))))
    )
    with torch.no_grad():
        for batch in colour_diverse_batches(noise, 16):
            after(torch.from_numpy(batch))
    span = torch.stack(spans).amax(0)
    assert (span / span.max() > 0.99).float().mean() > 0.5  # most channels span the same range


def test_the_export_quantizes_a_qat_checkpoint_as_simulated(
    qat_n2n_run: Path, tmp_path: Path
) -> None:
    """A --qat checkpoint is already the network its training simulated: the export's default
    quantizes it as it is (equalizing again would rescale the channels equalization clamps);
    --int8-equalize still forces it."""
    import onnx
    from typer.testing import CliRunner

    from n2nkit.cli import app

    def equalized(*flags: str) -> str:
        out = tmp_path / f"out{len(flags)}"
        args = ["export", str(qat_n2n_run), "--out", str(out), "--int8", "--reduce-range", "off",
                "--int8-calibration", "minmax", "--int8-max-loss", "5", *flags]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        props = onnx.load(str(out / "model.int8.onnx")).metadata_props
        return {p.key: p.value for p in props}["n2nkit.int8_equalized"]

    assert equalized() == "false"
    assert equalized("--int8-equalize") == "true"
