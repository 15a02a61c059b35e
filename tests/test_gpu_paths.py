"""The GPU half, tested where it can be without a GPU: the TensorRT-bound INT8 model (real
onnxruntime quantization), the strongly typed build's inputs and timing caches, mixed precision
from the chosen device's compute capability, device-memory checks, and onnxruntime's CUDA
provider refusing to fall back to the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from n2nkit.errors import DataError, MissingDependencyError, UserInputError
from n2nkit.runtime.metadata import ModelMetadata

SHIPPED = Path(__file__).resolve().parents[1] / "runtime" / "models" / "n2n.onnx"


# ------------------------------------------------------------------ INT8 for TensorRT
@pytest.fixture(scope="module")
def int8_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(CPU model, TensorRT-bound model) quantized from the shipped n2n, few calibration crops."""
    from n2nkit.export.quantize_int8 import calibration_batches, quantize_int8

    out = tmp_path_factory.mktemp("int8")
    meta = ModelMetadata.from_props(
        {p.key: p.value for p in onnx.load(str(SHIPPED), load_external_data=False).metadata_props}
    )
    batches = calibration_batches("gaussian:25", meta.size_multiple, crops=8, side=32)
    cpu = quantize_int8(SHIPPED, out / "cpu.onnx", meta, batches)
    trt = quantize_int8(SHIPPED, out / "trt.onnx", meta, batches, symmetric=True)
    return cpu, trt


def test_engine_bound_int8_model_has_int8_zero_points_of_zero(int8_models) -> None:
    from n2nkit.export.quantize_int8 import qdq_zero_points, tensorrt_qdq_problems

    cpu, trt = int8_models
    model = onnx.load(str(trt))
    inits = {i.name: i for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 40  # activations and per-channel weights are all quantized
    for node in qdq:
        assert len(node.input) == 3, f"{node.name} has an implicit (UINT8) zero point"
        zero = inits[node.input[2]]
        assert zero.data_type == onnx.TensorProto.INT8, node.name
        assert not np.any(onnx.numpy_helper.to_array(zero)), node.name
    weights = [
        onnx.numpy_helper.to_array(inits[n.input[1]])
        for n in qdq
        if n.op_type == "DequantizeLinear" and n.input[0] in inits
    ]
    assert any(w.ndim == 1 and w.size > 1 for w in weights)  # per-channel weight scales
    assert tensorrt_qdq_problems(model) == []
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["n2nkit.int8_symmetric"] == "true" and meta["n2nkit.precision"] == "int8"

    # The CPU artifact keeps asymmetric UINT8 activations, which TensorRT's parser refuses.
    cpu_model = onnx.load(str(cpu))
    assert any(p.dtype == np.uint8 for p in qdq_zero_points(cpu_model).values())
    assert tensorrt_qdq_problems(cpu_model)


def test_engine_bound_int8_model_rounds_after_the_activation_only(int8_models) -> None:
    """Q/DQ on the inputs of convolutions, none on their outputs or around LeakyReLU (so
    TensorRT fuses them and rounds once), and the input convolutions and the residual skip
    read the input as it is; the CPU artifact quantizes every tensor (onnxruntime's CPU INT8
    convolution needs its output quantized)."""
    cpu, trt = (onnx.load(str(path)) for path in int8_models)

    def rounded_producers(model: onnx.ModelProto) -> set[str]:
        producer = {out: node.op_type for node in model.graph.node for out in node.output}
        return {
            producer[n.input[0]]
            for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] in producer
        }

    assert rounded_producers(trt).isdisjoint({"Conv", "Add"})
    assert "LeakyRelu" in rounded_producers(trt)  # rounded after the activation instead
    assert {"Conv", "LeakyRelu"} <= rounded_producers(cpu)
    producer = {out: node for node in trt.graph.node for out in node.output}
    meta = {p.key: p.value for p in trt.metadata_props}
    floats = set(meta["n2nkit.int8_float_nodes"].split(","))
    convs = [n for n in trt.graph.node if n.op_type == "Conv" and n.name not in floats]
    assert len(convs) > 15  # every other convolution reads 8-bit input and weights
    for conv in convs:
        for name in conv.input[:2]:
            assert producer[name].op_type == "DequantizeLinear", (conv.name, name)
    leaky = [n for n in trt.graph.node if n.op_type == "LeakyRelu"]
    assert leaky and all(producer[n.input[0]].op_type in ("Conv", "Add") for n in leaky)
    source = trt.graph.input[0].name
    readers = [n for n in trt.graph.node if source in n.input]
    assert {n.op_type for n in readers} >= {"Conv", "Add"}  # in float: no Q between


@pytest.mark.parametrize("variant, kept_float", [("n2n", 2), ("fft", 0)])
def test_input_convolutions_stay_float_only_where_they_alone_read_the_input(
    variant: str, kept_float: int, tmp_path: Path
) -> None:
    """fft's MatMul reads the input too, and onnxruntime then gives every reader the rounded
    copy: excluding its convolutions would only run them in float on rounded input. (n2n's
    input reaches the decoder through the split of its last concatenation: a convolution.)"""
    from n2nkit.export.onnx_export import export_onnx, metadata_for
    from n2nkit.export.quantize_int8 import input_convolutions
    from n2nkit.training.models import create_model

    network = create_model(variant).eval()
    path = export_onnx(network, tmp_path / "m.onnx", metadata_for(network, None))
    model = onnx.load(str(path))
    source = model.graph.input[0].name
    readers = {n.op_type for n in model.graph.node if source in n.input}
    assert ("MatMul" in readers) == (variant == "fft")
    assert len(input_convolutions(model)) == kept_float


def test_engine_bound_int8_model_still_denoises(int8_models) -> None:
    """Symmetric INT8 runs in onnxruntime on the CPU too, close to the FP32 model."""
    import onnxruntime as ort

    from n2nkit.export.quantize_int8 import calibration_batches

    x = calibration_batches("gaussian:25", 4, crops=4, side=64, seed=7)[0]
    ref = ort.InferenceSession(str(SHIPPED), providers=["CPUExecutionProvider"])
    sym = ort.InferenceSession(str(int8_models[1]), providers=["CPUExecutionProvider"])
    a, b = ref.run(None, {"noisy": x})[0], sym.run(None, {"noisy": x})[0]
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    assert 10 * np.log10(1 / mse) > 30  # dB between FP32 and INT8 outputs


def test_engine_sources_are_checked_before_tensorrt_is_touched(int8_models, tmp_path) -> None:
    """A strongly typed build takes its precision from the model: the wrong model is refused."""
    from n2nkit.export.tensorrt_engine import check_source_precision

    cpu, trt = int8_models
    check_source_precision(trt, "int8")
    check_source_precision(SHIPPED, "fp32")
    with pytest.raises(UserInputError, match="zero point 0"):
        check_source_precision(cpu, "int8")
    with pytest.raises(UserInputError, match="no Q/DQ"):
        check_source_precision(SHIPPED, "int8")
    with pytest.raises(UserInputError, match="no FP16 weights"):
        check_source_precision(SHIPPED, "fp16")
    with pytest.raises(UserInputError, match="not an FP32 model"):
        check_source_precision(trt, "fp32")


# ------------------------------------------------------------------ TensorRT build settings
def test_timing_cache_is_keyed_by_tf32(tmp_path: Path) -> None:
    from n2nkit.export.tensorrt_engine import timing_cache_for, uses_tf32

    cache = tmp_path / "tensorrt.timing.cache"
    assert not uses_tf32("fp32") and uses_tf32("fp16") and uses_tf32("int8")
    on, off = timing_cache_for(cache, True), timing_cache_for(cache, False)
    assert on == cache and off == tmp_path / "tensorrt.timing.no-tf32.cache"


def test_network_is_strongly_typed_on_tensorrt_10_and_11() -> None:
    from types import SimpleNamespace

    from n2nkit.export.tensorrt_engine import strongly_typed_flags

    ten = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    assert strongly_typed_flags(ten) == 2
    later = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace())  # flag dropped
    assert strongly_typed_flags(later) == 0


def test_require_tensorrt_checks_cuda_python_first(monkeypatch) -> None:
    """Without cuda-python no engine is built: the runtime could not verify it."""
    import sys

    from n2nkit.export import tensorrt_engine

    monkeypatch.setattr(tensorrt_engine, "tensorrt_module", lambda: object())
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    with pytest.raises(MissingDependencyError, match=r"cuda-python.*n2nkit\[gpu\]"):
        tensorrt_engine.require_tensorrt()


def test_tensorrt_is_bounded_in_pyproject() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"tensorrt>=10,<12"' in text and '"torch>=2.3,<3"' in text


# ------------------------------------------------------------------ TensorRT runtime
class _Engine:
    """What TrtBackend asks of an ICudaEngine when it makes its contexts."""

    num_optimization_profiles = 2

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.strategies = fail_at, []

    def get_device_memory_size_for_profile_v2(self, index: int) -> int:
        return (index + 1) << 20

    def create_execution_context(self, strategy):
        self.strategies.append(strategy)
        return None if len(self.strategies) - 1 == self.fail_at else object()


def _trt():
    from types import SimpleNamespace

    strategy = SimpleNamespace(STATIC=0, ON_PROFILE_CHANGE=1, USER_MANAGED=2)
    return SimpleNamespace(ExecutionContextAllocationStrategy=strategy)


def test_contexts_reserve_no_memory_of_their_own() -> None:
    from n2nkit.runtime.trt_backend import scratch_sizes, user_managed_contexts

    engine = _Engine()
    assert len(user_managed_contexts(engine, _trt(), "m.engine")) == 2
    assert engine.strategies == [2, 2]  # USER_MANAGED for every profile
    assert scratch_sizes(engine) == [1 << 20, 2 << 20]  # per profile, shared buffer = max


def test_a_context_tensorrt_cannot_make_is_a_backend_error_auto_passes_over() -> None:
    from n2nkit.errors import BackendError
    from n2nkit.runtime.trt_backend import user_managed_contexts

    with pytest.raises(BackendError, match=r"profile 1.*out of memory") as caught:
        user_managed_contexts(_Engine(fail_at=1), _trt(), "m.engine")
    assert isinstance(caught.value, MissingDependencyError)  # what open_backend's auto skips
    assert "\n" not in str(caught.value)


def test_cuda_handles_are_their_values_not_getptr() -> None:
    from n2nkit.runtime.trt_backend import _handle

    class Stream:  # cuda-python's cudaStream_t: int() is the handle, getPtr() its storage
        def __int__(self) -> int:
            return 0x7F00

        def getPtr(self) -> int:
            return 0x1234

    assert _handle(Stream()) == 0x7F00 and _handle(0xBEEF) == 0xBEEF


def test_compare_worker_closes_its_backend(identity_model, tmp_path, monkeypatch) -> None:
    from n2nkit.bench import compare_worker
    from n2nkit.runtime import Denoiser

    closed = []
    original = Denoiser.close
    monkeypatch.setattr(Denoiser, "close", lambda self: closed.append(original(self)))
    image = np.random.default_rng(0).random((16, 24, 3), dtype=np.float32)
    data = tmp_path / "data.npz"
    np.savez(data, clean_0=image, noisy_0_0=image)
    job = {"artifact": str(identity_model), "backend": "ort-cpu", "threads": 1,
           "sizes": [[16, 16, 1]], "data": str(data), "noises": ["gaussian:25"],
           "budget_s": 0.01, "min_runs": 1, "warmup": 0}  # fmt: skip
    assert compare_worker.run_job(job)["status"] == "measured"
    assert len(closed) == 1


# ------------------------------------------------------------------ onnxruntime CUDA
# The simulation lists a CUDA provider this onnxruntime lacks; its warning about that is the
# simulation's, not something a user with onnxruntime-gpu sees.
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_cuda_request_on_cpu_onnxruntime_is_one_line_not_a_silent_cpu_session(
    identity_model, monkeypatch
) -> None:
    """onnxruntime-gpu whose CUDA provider cannot start (simulated: this onnxruntime lists CUDA
    but has none) gives a CPU session; the backend refuses it naming the missing library."""
    import onnxruntime as ort

    from n2nkit.errors import BackendError
    from n2nkit.runtime import ort_backend
    from n2nkit.runtime.ort_backend import CUDA_PROVIDER, OrtBackend

    if CUDA_PROVIDER in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    listed = [CUDA_PROVIDER, *ort.get_available_providers()]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    preloads: list[bool] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: preloads.append(True), raising=False)
    monkeypatch.setattr(ort_backend, "_preloaded", False)
    seen: list = []
    real = ort.InferenceSession

    def spy(path, options=None, providers=None, **kw):  # the real session, its arguments kept
        seen.append(providers)
        return real(path, options, providers=providers, **kw)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setattr(ort_backend, "missing_cuda_library", lambda: "cuDNN 9 (libcudnn.so.9)")
    with pytest.raises(BackendError) as caught:
        OrtBackend(identity_model, device="cuda", device_id=1)
    message = str(caught.value)
    assert "\n" not in message and "cuDNN 9 (libcudnn.so.9)" in message
    assert "CUDA 12" in message and "pip install" in message
    assert preloads == [True]  # preload_dlls() ran before the CUDA session was made
    assert seen == [[(CUDA_PROVIDER, {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"}),
                     "CPUExecutionProvider"]]  # fmt: skip


def test_missing_cuda_library_names_the_first_that_fails() -> None:
    from n2nkit.runtime.ort_backend import missing_cuda_library

    def load(name: str) -> None:
        if "cudnn" in name:
            raise OSError(name)

    assert missing_cuda_library(load).startswith("cuDNN 9 (")
    assert missing_cuda_library(lambda name: None) is None


# ------------------------------------------------------------------ CUDA training
@pytest.fixture
def two_gpus(monkeypatch):
    """A simulated machine: cuda:0 a Turing GPU (7.5), cuda:1 an Ampere one (8.0)."""
    capability = {0: (7, 5), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: capability[i or 0])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation
    return capability


def test_auto_precision_follows_the_chosen_gpus_compute_capability(two_gpus) -> None:
    from n2nkit.training.trainer import autocast_dtype, resolve_device

    turing, ampere = resolve_device("cuda:0"), resolve_device("cuda:1")
    assert autocast_dtype("auto", turing) is torch.float16
    assert autocast_dtype("auto", resolve_device("cuda")) is torch.float16  # current: cuda:0
    assert autocast_dtype("auto", ampere) is torch.bfloat16
    assert autocast_dtype("bf16", ampere) is torch.bfloat16
    assert autocast_dtype("fp16", ampere) is torch.float16
    with pytest.raises(UserInputError, match=r"cuda:0 \(compute capability 7.5\)"):
        autocast_dtype("bf16", turing)

    # fp16 trains with a gradient scaler, made as train() makes it
    dtype = autocast_dtype("auto", turing)
    scaler = torch.amp.GradScaler(turing.type, enabled=dtype is torch.float16)
    assert scaler.is_enabled()
    bf16 = autocast_dtype("auto", ampere)
    assert not torch.amp.GradScaler(ampere.type, enabled=bf16 is torch.float16).is_enabled()


def test_a_gpu_beyond_the_device_count_is_refused_in_one_line(two_gpus) -> None:
    from n2nkit.training.trainer import resolve_device

    with pytest.raises(UserInputError, match=r"--device cuda:2: this machine has 2 CUDA GPU"):
        resolve_device("cuda:2")
    with pytest.raises(UserInputError, match="cuda:N"):
        resolve_device("cuda:x")


def test_a_dataset_too_big_for_the_gpu_is_refused_before_copying(monkeypatch) -> None:
    from n2nkit.training.gpu_batches import TRAINING_HEADROOM, CropBank, check_device_room

    cuda, gib = torch.device("cuda:0"), 2**30
    check_device_room(gib, cuda, free=2 * gib)  # fits
    check_device_room(100 * gib, torch.device("cpu"))  # host memory: not checked here
    with pytest.raises(DataError, match=r"need 3.00 GiB on cuda:0 but it has 2.00 GiB free"):
        check_device_room(3 * gib, cuda, free=2 * gib)
    with pytest.raises(DataError, match="MiB kept for training"):
        check_device_room(2 * gib - TRAINING_HEADROOM + 1, cuda, free=2 * gib)

    # CropBank asks the device first: two sets of two 64×64 RGB images = 49,152 bytes
    asked = []

    def mem_get_info(device=None):
        asked.append(device)
        return (40_000 + TRAINING_HEADROOM, 80 * gib)

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    images = [np.zeros((64, 64, 3), np.uint8)] * 2
    with pytest.raises(DataError, match=r"need 0.0 MiB on cuda but it has 256.0 MiB"):
        CropBank([images, images], 32, torch.device("cuda"))
    assert asked == [torch.device("cuda")]
