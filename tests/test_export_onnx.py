"""ONNX export of every registered variant: parity with PyTorch at several sizes, dynamic
shapes (scale-driven Resize), metadata in the file, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from n2nkit.export.onnx_export import check_dynamic_resize, export_onnx, metadata_for
from n2nkit.export.verify import TOLERANCES, check_onnx, parity_sizes
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from n2nkit.runtime.ort_backend import OrtBackend
from n2nkit.training.models import create_model, variant_names


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[torch.nn.Module, Path]]:
    """Every variant, random-initialised (seeded), exported once for the whole module."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name in variant_names():
        torch.manual_seed(0)
        model = create_model(name).eval()
        out[name] = (model, export_onnx(model, folder / f"{name}.onnx", metadata_for(model, None)))
    return out


@pytest.mark.parametrize("name", variant_names())
def test_parity_with_pytorch_at_several_sizes(exported, name: str) -> None:
    model, path = exported[name]
    session = OrtBackend(path).session
    sizes = parity_sizes(model.size_multiple, metadata_for(model, None).min_side)
    assert (64, 96) in sizes or model.size_multiple > 32  # the sizes, where they fit
    rng = np.random.default_rng(1)
    for batch, (h, w) in zip((2, 1, 1), sizes, strict=True):
        x = rng.random((batch, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        out = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        assert out.shape == ref.shape == x.shape
        assert np.abs(out - ref).max() <= TOLERANCES["fp32"].max_abs, (name, h, w)


@pytest.mark.parametrize("name", variant_names())
def test_graph_is_dynamic_and_carries_metadata(exported, name: str) -> None:
    model, path = exported[name]
    meta = check_onnx(path, "fp32")  # checker + names + float32 + dynamic dims + metadata
    assert meta.variant == name and meta.size_multiple == model.size_multiple
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    check_dynamic_resize(proto)  # Resize driven by scales, never by baked sizes
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]
    # The runtime reads metadata through onnxruntime: same keys there.
    props = OrtBackend(path).session.get_modelmeta().custom_metadata_map
    assert ModelMetadata.from_props(props).input_layout == "NCHW"
    assert props["n2nkit.value_range"] == "0,1" and props["n2nkit.precision"] == "fp32"


def test_metadata_for_reads_the_checkpoint() -> None:
    model = create_model("truncated")
    ckpt = {"config": {"noise": "gaussian:25"}, "best_val_psnr": 31.23456, "metrics": {}}
    meta = metadata_for(model, ckpt, precision="int8")
    assert (meta.variant, meta.size_multiple, meta.min_side) == ("truncated", 8, 8)
    assert meta.noise == "gaussian:25" and meta.val_psnr == pytest.approx(31.2346)
    assert meta.precision == "int8" and meta.version
    fallback = metadata_for(model, {"config": {}, "metrics": {"val_psnr": 29.5}})
    assert fallback.val_psnr == 29.5
    assert metadata_for(create_model("hls"), None).min_side == 6  # depth 5 + 1, stride-1 pools


def test_export_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    model = create_model("truncated").eval()
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")

    class Broken(torch.nn.Module):
        size_multiple, variant, in_channels = 1, "broken", 3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("cannot trace")

    with pytest.raises(Exception, match="cannot trace"):
        export_onnx(Broken(), target, metadata_for(model, None))
    assert target.read_bytes() == b"old"  # untouched by the failed export
    export_onnx(model, target, metadata_for(model, None))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    onnx.checker.check_model(str(target))


def test_convolutions_over_odd_concatenations_are_split(exported) -> None:
    """The 51-channel DEC1 convolution becomes 48- and 3-channel ones (onnxruntime's blocked
    kernels need multiples of 8/16); the parity test above proves the rewrite exact."""
    from onnx import numpy_helper

    _, path = exported["n2n"]
    proto = onnx.load(str(path))
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    in_channels = sorted(
        weights[n.input[1]].shape[1] for n in proto.graph.node if n.op_type == "Conv"
    )
    assert 51 not in in_channels and in_channels.count(3) == 2  # first conv and the split part
    assert sum(n.op_type == "Add" for n in proto.graph.node) == 1


def test_an_interrupt_the_exporter_wrapped_stays_an_interrupt() -> None:
    """Ctrl-C during torch's ONNX export came back as a TorchExportError, so the export
    reported 'model.onnx (export failed)' and exit 4 instead of 'interrupted'."""
    from n2nkit.export.pipeline import _raise_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise RuntimeError("\x1b[96mThis is step 1/3\x1b[0m of exporting") from interrupt
    except RuntimeError as wrapped:
        with pytest.raises(KeyboardInterrupt):
            _raise_interrupt(wrapped)
    _raise_interrupt(ValueError("an ordinary failure"))  # returns: the row reports it
