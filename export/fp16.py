"""FP32 ONNX -> FP16 weights and arithmetic, float32 inputs/outputs (casts inside the graph).

Uses onnxruntime's own converter (``onnxruntime.transformers.float16``, shipped with
onnxruntime, so no extra package). ``keep_io_types=True`` keeps the runtime contract: callers
feed and read float32 whatever the artifact's precision.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from n2nkit.export.onnx_export import save_onnx, set_metadata
from n2nkit.runtime.metadata import ModelMetadata


def convert_fp16(source: Path, path: Path, metadata: ModelMetadata) -> Path:
    """Write the FP16 version of ``source`` to ``path`` atomically, metadata precision ``fp16``."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    # The converter appends its input casts at the end of the node list; the checker (and some
    # runtimes) want topological order.
    wrapped = OnnxModel(model)
    wrapped.topological_sort()
    model = wrapped.model
    set_metadata(model, dataclasses.replace(metadata, precision="fp16"))
    return save_onnx(model, Path(path))
