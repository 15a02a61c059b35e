"""ONNX -> ORT format (``.ort``), the flatbuffer model ONNX Runtime Mobile loads.

Conversion runs onnxruntime's own tool with *fixed* optimisations for a generic ARM target
(no x86-only NCHWc layout), in a scratch folder; the result is renamed into place, so a
failure leaves nothing behind. Metadata props survive the conversion (checked by the verifier).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path


def convert_ort(source: Path, path: Path) -> Path:
    """Convert ``source`` (.onnx) to ``path`` (.ort); raise ``RuntimeError`` if it fails."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model = scratch / "model.onnx"
        shutil.copyfile(source, model)
        log = io.StringIO()
        quiet = logging.getLogger("ort_format_model.utils")  # logs an INFO line per model
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                convert_onnx_models_to_ort(
                    model,
                    output_dir=scratch / "out",
                    optimization_styles=[OptimizationStyle.Fixed],
                    target_platform="arm",
                )
        finally:
            quiet.setLevel(level)
        produced = sorted((scratch / "out").glob("*.ort"))
        if len(produced) != 1:
            tail = log.getvalue().strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"ORT conversion produced no .ort file: {tail[0]}")
        os.replace(produced[0], path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path
