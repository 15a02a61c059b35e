"""Checkpoint -> verified deployable artifacts: ONNX, INT8/FP16, ORT format, TensorRT engines.

One small module per target (:mod:`.onnx_export`, :mod:`.quantize_int8`, :mod:`.fp16`,
:mod:`.ort_format`, :mod:`.tensorrt_engine`), one verifier (:mod:`.verify`) and the pipeline that
runs them and returns the table rows (:mod:`.pipeline`). Importing this package is cheap: torch,
onnx, onnxruntime and TensorRT are imported by the functions that use them.
"""
