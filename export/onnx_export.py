"""PyTorch model -> ONNX file with dynamic batch/height/width and n2nkit metadata.

Uses the torch.export-based exporter (the default since torch 2.9; the TorchScript one is
deprecated). The models upsample with ``F.interpolate(scale_factor=...)``, which becomes an ONNX
``Resize`` driven by *scales*, so no trace-time size is baked in: :func:`check_dynamic_resize`
proves it on every export.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from n2nkit.export.quiet import quiet
from n2nkit.runtime.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata

DEFAULT_OPSET = 17
DIM_NAMES = ("batch", "channels", "height", "width")
_QUIET_LOGGERS = ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo", "torch.fx")


def metadata_for(model: Any, ckpt: dict | None, precision: str = "fp32") -> ModelMetadata:
    """The :class:`ModelMetadata` of ``model`` (and of the checkpoint it came from, if any).

    ``min_side`` is the smallest input side the network accepts: one size multiple for pooled
    variants, ``depth + 1`` pixels for the stride-1 HLS variant.
    """
    from n2nkit import __version__

    size_multiple = int(getattr(model, "size_multiple", 1))
    min_side = int(getattr(model, "min_side", size_multiple))
    noise, val_psnr, noise_range = "", None, ""
    if ckpt:
        noise = str((ckpt.get("config") or {}).get("noise", "") or "")
        if ckpt.get("noise_range"):  # trained σ range (neighbor/files runs: estimated)
            noise_range = "-".join(f"{float(v):g}" for v in ckpt["noise_range"])
        best = ckpt.get("best_val_psnr")
        if best is None:
            best = (ckpt.get("metrics") or {}).get("val_psnr")
        val_psnr = None if best is None or not math.isfinite(float(best)) else round(float(best), 4)
    return ModelMetadata(
        variant=str(getattr(model, "variant", "unknown")),
        size_multiple=size_multiple,
        channels=int(getattr(model, "in_channels", 3)),
        precision=precision,
        noise=noise,
        val_psnr=val_psnr,
        version=__version__,
        min_side=min_side,
        noise_range=noise_range,
    )


def set_metadata(onnx_model: Any, metadata: ModelMetadata) -> Any:
    """Replace the ``n2nkit.*`` entries of ``onnx_model.metadata_props`` with ``metadata``."""
    keep = [(p.key, p.value) for p in onnx_model.metadata_props if not p.key.startswith("n2nkit.")]
    del onnx_model.metadata_props[:]
    for key, value in [*keep, *metadata.to_props().items()]:
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    return onnx_model


def save_onnx(onnx_model: Any, path: Path) -> Path:
    """Serialize ``onnx_model`` atomically (temp file beside ``path``, then rename)."""
    import os

    from n2nkit.fileio import atomic_write_bytes

    data = onnx_model.SerializeToString()
    atomic_write_bytes(Path(path), data)
    os.chmod(path, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
    return Path(path)


def check_dynamic_resize(onnx_model: Any) -> None:
    """Raise ``ValueError`` if any ``Resize`` node is driven by fixed output *sizes*."""
    for node in onnx_model.graph.node:
        if node.op_type != "Resize":
            continue
        inputs = list(node.input)
        if len(inputs) >= 4 and inputs[3]:
            raise ValueError(f"Resize node {node.name!r} has fixed output sizes baked in")
        if len(inputs) < 3 or not inputs[2]:
            raise ValueError(f"Resize node {node.name!r} has no scales input")


def _name_dims(onnx_model: Any) -> None:
    """Give the symbolic dims readable names (the exporter calls them s0, s53, ...)."""
    for value in [*onnx_model.graph.input, *onnx_model.graph.output]:
        for name, dim in zip(DIM_NAMES, value.type.tensor_type.shape.dim, strict=False):
            if dim.dim_param or not dim.HasField("dim_value"):
                dim.dim_param = name
    # Drop the exporter's intermediate shape annotations: they carry its s-names.
    del onnx_model.graph.value_info[:]


def supported_opsets() -> range:
    """The opsets n2nkit can export: 17 (n2nkit's floor) up to the newest that both the
    installed onnx and torch's exporter know."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET

        newest = min(newest, int(ONNX_MAX_OPSET))
    except (ImportError, AttributeError, ValueError):
        pass
    return range(17, newest + 1)


def require_export_packages() -> None:
    """Every package an export needs (the ``training`` extra), imported up front: a missing one
    is one :class:`~n2nkit.errors.MissingDependencyError` line (exit 3) with the install line,
    not a failed row after the checkpoint was loaded."""
    from n2nkit.errors import require

    for module in ("torch", "onnx", "onnxscript"):
        require(module, "training", f"{module} (needed to export)")


def check_opset(opset: int) -> None:
    """:class:`~n2nkit.errors.UserInputError` (with the supported range) unless ``opset`` is
    one this installation exports as asked (torch's exporter would silently pick another)."""
    from n2nkit.errors import UserInputError

    ok = supported_opsets()
    if opset not in ok:
        raise UserInputError(
            f"--opset {opset} is not supported: give {ok.start} to {ok.stop - 1} (the range of "
            "this n2nkit with the installed torch and onnx)"
        )


def to_onnx_proto(model: Any, opset: int = DEFAULT_OPSET, example_side: int | None = None) -> Any:
    """Export ``model`` (eval mode, CPU, float32) and return the ``onnx.ModelProto``."""
    import torch
    from torch.export import Dim

    model = model.eval()
    multiple = max(int(getattr(model, "size_multiple", 1)), 1)
    # A non-square example with batch 2 so no dimension is specialised to a constant.
    side = example_side or max(2 * multiple, 16)
    channels = int(getattr(model, "in_channels", 3))
    example = torch.rand(2, channels, side, side + max(multiple, 8))
    # Positional form: works whatever forward()'s argument is called.
    dynamic = ({0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC},)
    with quiet(_QUIET_LOGGERS), torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            None,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic,
            verbose=False,
        )
    proto = program.model_proto
    produced = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if produced != opset:
        raise ValueError(f"asked for opset {opset}, torch's exporter produced opset {produced}")
    _name_dims(proto)
    return proto


def export_onnx(
    model: Any, path: Path, metadata: ModelMetadata, opset: int = DEFAULT_OPSET
) -> Path:
    """Export ``model`` to ``path`` with dynamic N/H/W, scale-driven upsampling and metadata.

    The file appears atomically: a failure leaves no partial ``path``. Raises ``ValueError`` if
    the graph would bake in a size (see :func:`check_dynamic_resize`).
    """
    from n2nkit.export.graph_rewrite import split_concat_convs

    proto = to_onnx_proto(model, opset)
    check_dynamic_resize(proto)
    split_concat_convs(proto)  # exact; faster blocked convolutions (see graph_rewrite)
    set_metadata(proto, metadata)
    proto.producer_name = "n2nkit"
    proto.doc_string = f"n2nkit {metadata.variant} denoiser: float32 NCHW in [0,1] -> same"
    return save_onnx(proto, Path(path))
