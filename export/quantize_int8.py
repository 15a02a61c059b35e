"""FP32 ONNX -> static INT8 in QDQ format through ``onnxruntime.quantization``.

Per-channel INT8 weights, UINT8 activations calibrated on noisy crops of the built-in
*training* photos with the checkpoint's own noise: the distribution the model will see.

How activation ranges are calibrated decides most of the loss. MinMax lets a few noise-driven
outliers stretch the 8-bit scale; clipping ranges at a percentile trades them for clipped
activations. Which wins depends on the noise level, and a blind model sees them all: on the
shipped residual n2n (gaussian 0-50, training photos) MinMax lost 1.0 dB at σ=5 and 0.2 dB at
σ=50, the 99.9th percentile 0.4 dB and 1.0 dB; more calibration crops make MinMax worse (more
outliers). So :func:`quantize_best` builds a few candidates and keeps the one with the highest
PSNR on *other* noisy training crops, which leaves the validation crops the export reports on
unseen by the choice. The loss is spread over all ~40 activation tensors (bypassing any single
one recovers under 0.1 dB); weights cost 0.004 dB at σ=25 and 0.025 dB at σ=15 on the shipped
n2n (docs/models.md). ``reduce_range`` (7-bit weights)
avoids the saturation of unreduced INT8 on CPUs without VNNI but costs precision where VNNI
exists, so it is measured too. The graph is pre-processed with ``quant_pre_process``
(optimisation only: symbolic shape inference cannot follow the dynamic Resize scales).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2nkit.errors import UserInputError
from n2nkit.export.onnx_export import save_onnx, set_metadata
from n2nkit.export.quiet import quiet
from n2nkit.export.verify import EvalSet, mean_psnr, ort_runner
from n2nkit.runtime.metadata import INPUT_NAME, ModelMetadata
from n2nkit.runtime.tiling import round_up

CALIBRATION_CROPS = 48
CALIBRATION_SIDE = 64
CALIBRATION_BATCH = 8
SELECTION_SEED_OFFSET = 1_000  # selection crops: same photos, other crops and noise draws
# Activation-range calibrations tried, most clipping first ("minmax" clips nothing).
CALIBRATIONS = ("percentile:99.9", "percentile:99.99", "percentile:99.999", "minmax")
# MinMax except on the full-resolution tail (:func:`full_resolution_tail`); asked for by name
# (``--int8-calibration``), not a candidate: the selection crops, photos like the calibration
# crops, cannot see what it is for (content unlike them).
TAIL_PREFIX = "tail-percentile:"


@dataclass
class Int8Choice:
    """What :func:`quantize_best` measured and kept."""

    calibration: str
    reduce_range: bool
    psnr: dict[str, float]  # candidate label -> PSNR on the selection crops
    ops: dict[str, int]  # op type -> count of nodes that run on quantized inputs


def candidate_label(calibration: str, reduce_range: bool) -> str:
    return f"{calibration}{',reduce_range' if reduce_range else ''}"


def calibration_options(calibration: str) -> dict[str, Any]:
    """``quantize_static`` keyword arguments of a calibration named like ``percentile:99.9``."""
    from onnxruntime.quantization import CalibrationMethod

    unknown = ValueError(
        f"unknown INT8 calibration {calibration!r}; use minmax, percentile:P or {TAIL_PREFIX}P "
        "(50 < P <= 100)"
    )
    if calibration.startswith(TAIL_PREFIX):
        try:
            calibration_options(calibration.removeprefix("tail-"))
        except ValueError:
            raise unknown from None
        return calibration_options("minmax")  # the tail's ranges come as overrides
    method, _, value = calibration.partition(":")
    if method == "minmax" and not value:
        return {"calibrate_method": CalibrationMethod.MinMax}
    if method == "percentile":
        try:
            percentile = float(value)
        except ValueError:
            percentile = -1.0
        if 50.0 < percentile <= 100.0:
            return {
                "calibrate_method": CalibrationMethod.Percentile,
                # ORT's percentile is symmetric by default: |x| histogram, range [-t, t], which
                # wastes half of the UINT8 codes on LeakyReLU outputs (measured: 0.2 dB more
                # loss on the shipped truncated at σ=50). Each side cut on its own instead.
                "extra_options": {
                    "CalibPercentile": percentile,
                    "CalibTensorRangeSymmetric": False,
                },
            }
    raise unknown


def calibration_batches(
    noise: str,
    size_multiple: int,
    crops: int = CALIBRATION_CROPS,
    side: int = CALIBRATION_SIDE,
    seed: int = 0,
    images: Sequence[Any] | None = None,
) -> list[Any]:
    """Noisy random crops of the built-in training photos (or ``images``), float32 N×3×S×S
    batches, the side rounded up to the model's size multiple."""
    from n2nkit.training.noisy_crops import noisy_crop_batches

    side = round_up(side, max(size_multiple, 1))
    return noisy_crop_batches(noise, side, crops, CALIBRATION_BATCH, seed, images)


def _reader(batches: list[Any]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self._it, None)
            return None if batch is None else {INPUT_NAME: batch}

    return Reader()


def quantized_ops(model: Any) -> dict[str, int]:
    """Op types (with counts) whose inputs come from DequantizeLinear: what runs in INT8.

    A convolution counts when its *weights* do: one left in float may still read a quantized
    activation (the graph input it shares with the first, quantized, convolution)."""
    produced_by_dq = {
        o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output
    }

    def quantized(node: Any) -> bool:
        if node.op_type in ("Conv", "ConvTranspose"):
            return len(node.input) > 1 and node.input[1] in produced_by_dq
        return any(i in produced_by_dq for i in node.input)

    counts = collections.Counter(
        n.op_type
        for n in model.graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and quantized(n)
    )
    return dict(sorted(counts.items()))


def qdq_zero_points(model: Any) -> dict[str, Any]:
    """Zero point of every QuantizeLinear/DequantizeLinear node, by node name: numpy arrays
    read from the initializers (a Q/DQ without one has the implicit UINT8 zero point 0)."""
    import numpy as np
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    points: dict[str, Any] = {}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        name = node.input[2] if len(node.input) > 2 else ""
        points[node.name] = (
            numpy_helper.to_array(inits[name]) if name in inits else np.zeros((), np.uint8)
        )
    return points


def tensorrt_qdq_problems(model: Any) -> list[str]:
    """What keeps TensorRT's ONNX parser from taking this QDQ model: Q/DQ zero points that are
    not INT8 or not 0 (onnx-tensorrt operators.md, QuantizeLinear/DequantizeLinear). Empty when
    it is fine."""
    import numpy as np

    problems = []
    for node, point in qdq_zero_points(model).items():
        if point.dtype != np.int8:
            problems.append(f"{node}: zero point is {point.dtype}")
        elif np.any(point != 0):
            problems.append(f"{node}: zero point {int(point.flat[np.flatnonzero(point)[0]])}")
    return problems


def output_head(model: Any) -> list[str]:
    """Names of the nodes that make the output, kept in float: the last convolution (3
    channels out, under 1 % of the work) and, for a residual network, the Add of the input.

    Quantizing them puts 8-bit steps straight onto the denoised pixels. Measured on a residual
    n2n (blind gaussian 0-50 validation), keeping them in float cut the INT8 PSNR loss from
    0.18 to 0.12 dB; they hold under 1 % of the multiply-accumulates.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    head: list[str] = []
    node = producer.get(model.graph.output[0].name)
    while node is not None and node.op_type in ("Add", "Conv") and len(head) < 2:
        head.append(node.name)
        if node.op_type == "Conv":
            break
        node = next((producer[i] for i in node.input if producer.get(i) is not None and
                     producer[i].op_type == "Conv"), None)  # fmt: skip
    return head


def check_float_layers(layers: int, available: int) -> None:
    """Refuse ``--int8-float-layers`` outside 0 to the ``available`` layers before the head."""
    if not 0 <= layers <= available:
        raise UserInputError(
            f"--int8-float-layers {layers}: this network has {available} convolution layers "
            "before its output head"
        )


def float_tail(model: Any, layers: int) -> list[str]:
    """Names of the nodes from the ``layers``-th last convolution layer to the output: what
    ``--int8-float-layers`` keeps in float, besides :func:`output_head`.

    A convolution split by ``graph_rewrite`` (its ``.partN`` convolutions and ``.sumN`` adds)
    counts as the one layer it was. The graph's nodes are in topological order, so everything
    after a node is downstream of it or independent of it, and a suffix of the list is closed
    under consumers. Measured on the shipped truncated (docs/models.md): the INT8 loss sits at
    the full-resolution output side, where 8-bit steps of the features land on the pixels.
    """
    import re

    if layers <= 0:
        return []
    head = set(output_head(model))
    nodes = list(model.graph.node)
    layer_of = [re.sub(r"\.(part|sum)\d+$", "", n.name) for n in nodes]
    starts: dict[str, int] = {}  # layer -> index of its first node
    for index, (node, layer) in enumerate(zip(nodes, layer_of, strict=True)):
        if node.op_type == "Conv" and node.name not in head:
            starts.setdefault(layer, index)
    check_float_layers(layers, len(starts))
    cut = sorted(starts.values())[-layers]
    return [n.name for n in nodes[cut:] if n.name not in head]


def full_resolution_tail(model: Any) -> list[str]:
    """Tensors from the input of the last ``Resize`` (the last upsampling) to the output: the
    decoder's full-resolution layers, whose 8-bit steps land straight on the pixels.

    ``tail-percentile:P`` clips these at the P-th percentile and calibrates everything else by
    MinMax. Why the split: a percentile range everywhere clips the encoder's activations on
    content unlike the calibration photos (measured on the shipped truncated: 0.4 % of one
    encoder tensor's values, up to 1.9× its range, on a saturated close-up), while MinMax
    everywhere spends the 8 bits of the last layers on rare outliers. It does not help where
    content exceeds even MinMax's range; per-channel equalization (:mod:`n2nkit.training.equalize`)
    does. Empty for a network without upsampling (then the calibration is plain MinMax).
    """
    nodes = list(model.graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type == "Resize"), default=None)
    if last is None:
        return []
    tail = [nodes[last].input[0], *nodes[last].output]
    reached = set(nodes[last].output)
    for node in nodes[last + 1 :]:  # topological order: consumers come later
        if any(i in reached for i in node.input):
            reached.update(node.output)
            tail.extend(node.output)
    return tail


def tail_ranges(
    model_path: Path, tensors: Sequence[str], calibration: list[Any], percentile: float
) -> dict[str, list[dict[str, Any]]]:
    """Percentile ranges of ``tensors`` over the calibration batches, each side cut on its own,
    as onnxruntime's ``TensorQuantOverrides`` (rmin/rmax) for :func:`quantize_int8`."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    scratch = Path(tempfile.mkdtemp(prefix=".calibrate.", dir=Path(model_path).parent))
    try:
        calibrator = create_calibrator(
            Path(model_path),
            augmented_model_path=str(scratch / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"percentile": percentile, "symmetric": False},
        )
        calibrator.collect_data(_reader(calibration))
        ranges = calibrator.compute_data()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    overrides = {}
    for name in tensors:
        if name in ranges:
            low, high = ranges[name].range_value
            overrides[name] = [{"rmin": low, "rmax": high}]
    return overrides


# The TensorRT-bound model places Q/DQ as NVIDIA's explicit-quantization guide advises: on
# the inputs of weighted operations, not on their outputs. TensorRT keeps every Q/DQ where the
# graph puts it, so a Q on a convolution's output would round the pre-activation tensor, whose
# negative side (before the LeakyReLU shrinks it tenfold) doubles the 8-bit step; without it,
# TensorRT fuses convolution, sum and LeakyReLU and rounds once, after the activation.
TENSORRT_FLOAT_OUTPUTS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
TENSORRT_UNQUANTIZED = ("LeakyRelu", "Add")  # run inside the fused convolution


def input_convolutions(model: Any) -> list[str]:
    """Names of the convolutions that read the graph's input, kept in float in the
    TensorRT-bound model; none when another quantized node reads the input too (fft's
    MatMul), since onnxruntime then hands every reader the rounded copy.

    Symmetric INT8 has 127 steps for an input in [0, 1]: half an 8-bit photo's precision, lost
    before the network starts. These convolutions have 3 input channels (about 3 % of n2n's
    work). They take the input as it is, so a residual network's skip (also the input as it
    is) adds the image the network saw. Measured on the shipped n2n (validation photos,
    σ = 25, ``percentile:99.99``), the INT8 loss was 0.047 dB with the input quantized
    everywhere, 0.063 dB with only the skip in float, 0.040 dB with these convolutions in float
    too.
    """
    source = model.graph.input[0].name
    readers = [n for n in model.graph.node if source in n.input]
    convolutions = [n.name for n in readers if n.op_type == "Conv"]
    others = {n.op_type for n in readers if n.op_type != "Conv"}
    return [] if others & set(_tensorrt_op_types(model)) else convolutions


def _tensorrt_op_types(model: Any) -> list[str]:
    """The op types the TensorRT-bound model quantizes: those of ``model`` onnxruntime has a
    quantizer for (its default list), less :data:`TENSORRT_UNQUANTIZED`."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    quantizable = set(QLinearOpsRegistry) | set(QDQRegistry)
    present = {node.op_type for node in model.graph.node}
    return sorted((present & quantizable) - set(TENSORRT_UNQUANTIZED))


def _tensorrt_options(options: dict[str, Any], model: Any, symmetric: bool) -> dict[str, Any]:
    """``options`` plus what the TensorRT-bound model needs (``symmetric``): zero points of 0
    on activations and weights (all TensorRT's ONNX parser accepts for QuantizeLinear), and
    Q/DQ only where TensorRT should round (:data:`TENSORRT_FLOAT_OUTPUTS`). Biases stay float:
    TensorRT's DequantizeLinear takes INT8 (or FP8) only, not the INT32 of a quantized bias,
    and TensorRT folds the float bias into its INT8 convolution itself.

    Measured on the shipped n2n (equalized, validation photos, σ 15 / 25 / 50, run by
    onnxruntime on the CPU, which computes what the engine computes): INT8 against FP32 lost
    0.32 / 0.12 / 0.08 dB with a Q/DQ on every tensor, 0.11 / 0.06 / 0.02 dB placed so (each
    with the calibration the export chose: ``percentile:99.99`` and ``99.999``).
    onnxruntime's CPU kernels have no INT8 convolution with a LeakyReLU inside, so the CPU
    artifact keeps a Q/DQ on every tensor (else its convolutions run in float).
    """
    if not symmetric:
        return options
    extra = {
        **options.get("extra_options", {}),
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "OpTypesToExcludeOutputQuantization": list(TENSORRT_FLOAT_OUTPUTS),
    }
    return {**options, "extra_options": extra, "op_types_to_quantize": _tensorrt_op_types(model)}


QUIET_LOGGERS = ("", "onnxruntime", "onnxruntime.quantization")  # "" is the root logger


def quantize_int8(
    source: Path,
    path: Path,
    metadata: ModelMetadata,
    calibration: list[Any],
    reduce_range: bool = False,
    method: str = "percentile:99.9",
    symmetric: bool = False,
    float_layers: int = 0,
) -> Path:
    """Quantize ``source`` into ``path`` (atomic), metadata precision ``int8``.

    ``symmetric`` makes the model a TensorRT engine is built from: INT8 activations and weights,
    every zero point 0, which is all TensorRT's ONNX parser accepts for QuantizeLinear
    (onnx-tensorrt operators.md), Q/DQ where TensorRT should round (:func:`_tensorrt_options`)
    and the input convolutions in float (:func:`input_convolutions`). The CPU artifact keeps
    UINT8 activations (asymmetric), whose zero point spends all 256 codes on a LeakyReLU's
    mostly positive range.
    ``float_layers`` keeps the last convolution layers in float (:func:`float_tail`).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        pre, quant = scratch / "pre.onnx", scratch / "quant.onnx"
        with quiet(QUIET_LOGGERS):  # calibration prints histogram counts otherwise
            quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        pre_model = onnx.load(str(pre))
        excluded = [*output_head(pre_model), *float_tail(pre_model, float_layers)]
        if symmetric:
            excluded += [n for n in input_convolutions(pre_model) if n not in excluded]
        options = calibration_options(method)
        with quiet(QUIET_LOGGERS):  # calibration prints histogram counts otherwise
            if method.startswith(TAIL_PREFIX):
                tail = full_resolution_tail(pre_model)
                overrides = tail_ranges(pre, tail, calibration, float(method.split(":")[1]))
                extra = {**options.get("extra_options", {}), "TensorQuantOverrides": overrides}
                options = {**options, "extra_options": extra}
            quantize_static(
                str(pre),
                str(quant),
                _reader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                **_tensorrt_options(options, pre_model, symmetric),
            )
        model = onnx.load(str(quant))
        extra = {
            **metadata.extra,
            "int8_reduce_range": str(reduce_range).lower(),
            "int8_calibration": f"{method},{sum(len(b) for b in calibration)} crops",
            "int8_float_nodes": ",".join(excluded),
            "int8_symmetric": str(symmetric).lower(),
            "int8_float_layers": str(float_layers),
        }
        set_metadata(model, dataclasses.replace(metadata, precision="int8", extra=extra))
        save_onnx(model, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def quantize_best(
    source: Path,
    path: Path,
    metadata: ModelMetadata,
    calibration: list[Any],
    selection: EvalSet,
    reduce_range: bool | None = None,
    calibrations: Sequence[str] = CALIBRATIONS,
    symmetric: bool = False,
    float_layers: int = 0,
) -> Int8Choice:
    """Build candidates and keep the one with the highest PSNR on ``selection``.

    Every calibration is tried with ``reduce_range`` as given (False when None); when None,
    the winner is also tried with 7-bit weights. ``symmetric`` builds the TensorRT-bound model
    (see :func:`quantize_int8`); onnxruntime on the CPU runs it too, so it is chosen the same way.
    """
    import onnx

    path = Path(path)
    psnr: dict[tuple[str, bool], float] = {}  # (calibration, reduce_range) -> selection PSNR
    candidates: dict[tuple[str, bool], Path] = {}

    def build(method: str, option: bool) -> None:
        candidate = path.with_name(f".{path.stem}.{len(candidates)}{path.suffix}")
        quantize_int8(
            source, candidate, metadata, calibration, option, method, symmetric, float_layers
        )
        candidates[(method, option)] = candidate
        psnr[(method, option)] = mean_psnr(ort_runner(candidate), selection)

    try:
        for method in calibrations:
            build(method, bool(reduce_range))
        if reduce_range is None:
            build(max(psnr, key=psnr.__getitem__)[0], True)
        best = max(psnr, key=psnr.__getitem__)
        os.replace(candidates.pop(best), path)
    finally:
        for leftover in candidates.values():
            leftover.unlink(missing_ok=True)
    labelled = {candidate_label(*key): value for key, value in psnr.items()}
    return Int8Choice(best[0], best[1], labelled, quantized_ops(onnx.load(str(path))))


def selection_set(metadata: ModelMetadata, noise: str, seed: int) -> EvalSet:
    """Noisy crops of the built-in *training* photos to choose among INT8 candidates."""
    from n2nkit.export.verify import build_evalset
    from n2nkit.training.data import load_builtin_images

    images = list(load_builtin_images("train"))
    return build_evalset(metadata, noise, seed + SELECTION_SEED_OFFSET, images=images)
