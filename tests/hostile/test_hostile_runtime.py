"""Hostile models and misuse of the runtime: real ONNX files built with ``onnx.helper`` (a model
that outputs NaN, one with a fixed input size, garbage and truncated files), a closed
Denoiser, and the memory a large image takes. Through ``Denoiser`` and ``n2nkit denoise``."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import make_onnx_model
from PIL import Image
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.errors import ModelFormatError, UserInputError
from n2nkit.runtime import Denoiser
from n2nkit.runtime.pixels import describe, from_planes, to_planes
from n2nkit.runtime.streaming import reflect_index

runner = CliRunner()
METADATA = {"n2nkit.variant": "hostile", "n2nkit.size_multiple": "8", "n2nkit.min_side": "8"}


def _model(
    path: Path, *, shape=("batch", 3, "height", "width"), factor: float = 1.0, declared=None
) -> Path:
    """``denoised = noisy * factor`` with n2nkit metadata: factor NaN makes a NaN model;
    ``declared`` is the output shape the graph claims (onnxruntime warns when it is wrong)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["noisy", "factor"], ["denoised"])],
        "hostile",
        [helper.make_tensor_value_info("noisy", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("denoised", TensorProto.FLOAT, list(declared or shape))],
        initializer=[helper.make_tensor("factor", TensorProto.FLOAT, [1], [factor])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in METADATA.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)).save(path)
    return path


def _cli_refuses(tmp_path: Path, model: Path, *fragments: str) -> None:
    """`n2nkit denoise --model MODEL`: one error line, exit != 0, input untouched, no output."""
    source, target = _photo(tmp_path), tmp_path / "out.png"
    before = source.read_bytes()
    result = runner.invoke(
        app, ["denoise", str(source), str(target), "--model", str(model), "--backend", "ort-cpu"]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert source.read_bytes() == before
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.png.")]


# ------------------------------------------------------------------ models that lie
@pytest.mark.parametrize("factor", [float("nan"), float("inf")])
def test_a_model_that_outputs_nan_or_inf_is_an_error_not_a_black_image(
    tmp_path: Path, factor: float
) -> None:
    path = _model(tmp_path / "nan.onnx", factor=factor)
    with Denoiser.load(path, backend="ort-cpu") as denoiser:
        with pytest.raises(ModelFormatError, match="NaN or infinite"):
            denoiser(np.full((16, 16, 3), 128, np.uint8))
        with pytest.raises(ModelFormatError, match="NaN or infinite"):  # the tiled path too
            denoiser(np.full((1500, 40, 3), 128, np.uint8))
    _cli_refuses(tmp_path, path, "NaN or infinite")


def test_a_model_that_fails_at_run_time_is_one_line(tmp_path: Path) -> None:
    """Its inputs are dynamic, so it loads, but it multiplies by a fixed 64×64 tensor: any
    other size fails inside onnxruntime (before: a traceback and a logged [E:onnxruntime] line)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(_model(tmp_path / "fixed.onnx")))
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.ones((1, 3, 64, 64), np.float32), "factor")
    )
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    _cli_refuses(tmp_path, tmp_path / "fixed.onnx", "fixed.onnx failed on a 1×3×40×56 input")


def test_a_finite_model_still_works(tmp_path: Path) -> None:
    with Denoiser.load(_model(tmp_path / "half.onnx", factor=0.5), backend="ort-cpu") as d:
        assert np.array_equal(d(np.full((16, 16), 200, np.uint8)), np.full((16, 16), 100))


def test_a_model_with_a_fixed_input_size_is_refused_on_load(tmp_path: Path) -> None:
    path = _model(tmp_path / "fixed.onnx", shape=(1, 3, 32, 32))
    with pytest.raises(ModelFormatError, match="fixed size 1×3×32×32"):
        Denoiser.load(path, backend="ort-cpu")
    _cli_refuses(tmp_path, path, "fixed size")


def test_a_fixed_batch_of_one_is_respected(tmp_path: Path) -> None:
    path = _model(tmp_path / "batch1.onnx", shape=(1, 3, "height", "width"))
    with Denoiser.load(path, backend="ort-cpu") as d:
        images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), np.uint8)
        assert np.array_equal(d.batch(images), images)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-ish"])
def test_garbage_or_truncated_onnx_is_one_line_on_load(tmp_path: Path, damage: str) -> None:
    good = make_onnx_model(tmp_path / "good.onnx").read_bytes()
    path = tmp_path / f"{damage}.onnx"
    data = {
        "garbage": os.urandom(4096),
        "truncated": good[: len(good) // 2],
        "empty-ish": b"\x00",
    }[damage]
    path.write_bytes(data)
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        Denoiser.load(path, backend="ort-cpu")
    _cli_refuses(tmp_path, path, "not a loadable ONNX model")
    assert path.read_bytes() == data


# ------------------------------------------------------------------ misuse
def test_a_closed_denoiser_says_so(identity_model: Path) -> None:
    denoiser = Denoiser.load(identity_model, backend="ort-cpu")
    denoiser.close()
    denoiser.close()  # twice is harmless
    image = np.zeros((16, 16, 3), np.uint8)
    for call in (denoiser, denoiser.batch):
        with pytest.raises(UserInputError, match="closed"):
            call(image if call is denoiser else image[None])
    with pytest.raises(UserInputError, match="closed"):
        denoiser(np.zeros((3000, 16, 3), np.uint8))  # the tiled path
    assert "identity" in repr(denoiser)  # what it was stays readable


# ------------------------------------------------------------------ bounded memory
def _whole_array_path(denoiser: Denoiser, image: np.ndarray) -> np.ndarray:
    """The float-planes path (what __call__ used for every size before streaming)."""
    layout = describe(image)
    planes, alpha = to_planes(image[None], layout)
    return from_planes(denoiser.denoise_planes(planes), alpha, layout)


def test_a_large_image_streams_in_a_few_times_its_size(identity_model: Path) -> None:
    """4000×3000 RGB in tiles of 512: numpy's peak stays about twice the uint8 input (the
    output included), where five float32 copies would be twenty times."""
    image = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), np.uint8)
    with Denoiser.load(identity_model, backend="ort-cpu", tile=512, threads=1) as denoiser:
        tracemalloc.start()
        try:
            out = denoiser(image)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert np.array_equal(out, image)  # the identity model comes back exactly, seams and all
    assert peak < 3 * image.nbytes, f"peak {peak / image.nbytes:.1f}× the input"


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((131, 203, 3), np.uint8), ((230, 197), np.uint8), ((101, 149, 4), np.uint16),
     ((75, 150, 2), np.uint8), ((1, 300, 3), np.uint8), ((130, 85, 3), np.float32)],
    ids=["rgb", "grey-polyphase", "rgba16", "grey-alpha", "one-row", "float"],
)  # fmt: skip
def test_streamed_tiles_match_the_whole_array_path(shape, dtype) -> None:
    """The shipped model, tiled at 64: streaming changes memory, not a single value."""
    rng = np.random.default_rng(1)
    if dtype == np.float32:
        image = rng.random(shape, dtype=np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    with Denoiser.load(backend="ort-cpu", threads=2, tile=64, overlap=16) as denoiser:
        assert denoiser._needs_tiles(describe(image))
        assert np.array_equal(denoiser(image), _whole_array_path(denoiser, image))


def test_reflect_index_matches_numpy_padding() -> None:
    for size in (1, 2, 3, 7):
        for padded in (size, size + 1, 3 * size + 2, 40):
            mode = "reflect" if size > 1 else "edge"
            expected = np.pad(np.arange(size), (0, padded - size), mode=mode)
            assert np.array_equal(reflect_index(padded, size, edge=False), expected)


# ------------------------------------------------------------------ no raw library output
def test_denoise_prints_only_its_own_lines(tmp_path: Path) -> None:
    """A real process: stderr holds n2nkit's notes and nothing from onnxruntime or Pillow."""
    source = tmp_path / "in.png"
    broken_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01"
    Image.fromarray(np.full((40, 56, 3), 99, np.uint8)).save(source, exif=broken_exif)
    # The graph claims a 5×5 output: onnxruntime's default logger warns at every call.
    model = _model(tmp_path / "claims.onnx", declared=("batch", 3, 5, 5))
    done = subprocess.run(
        [sys.executable, "-m", "n2nkit", "denoise", str(source), str(tmp_path / "o.png"),
         "--model", str(model), "--backend", "ort-cpu"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for line in done.stderr.splitlines():
        assert line.startswith(("note:", "error:")), done.stderr
    assert "[W:onnxruntime" not in done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr


def test_the_api_refuses_bad_input_with_one_clear_error(tmp_path: Path) -> None:
    """estimate_noise takes what __call__ takes; a batch of mixed shapes, a NaN plane and a
    NaN tile are the caller's errors, said so (not numpy's or the model's)."""
    rng = np.random.default_rng(0)
    with Denoiser.load(_model(tmp_path / "half.onnx", factor=0.5), backend="ort-cpu") as d:
        grey = (128 + rng.normal(0, 25, (64, 64))).clip(0, 255)
        assert abs(d.estimate_noise(grey.astype(np.uint8)) - 25) < 3
        for image, fragment in ((grey.astype(np.int32), "dtype int32"),
                                (np.full((8, 8), np.nan), "NaN"),
                                (np.zeros((0, 8), np.uint8), "empty")):  # fmt: skip
            with pytest.raises(UserInputError, match=fragment):
                d.estimate_noise(image)
        mixed = [np.zeros((8, 8, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
        with pytest.raises(UserInputError, match="a batch holds images of one shape"):
            d.batch(mixed)
        with pytest.raises(UserInputError, match="NaN"):
            d.denoise_planes(np.full((1, 3, 8, 8), np.nan, np.float32))
    with pytest.raises(UserInputError, match="tile must be a whole number"):
        Denoiser.load(_model(tmp_path / "h2.onnx", factor=0.5), tile=float("nan"))


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"threads": "2"}, "threads must be a whole number"),
        ({"threads": float("nan")}, "threads must be a whole number"),
        ({"threads": 0}, "threads must be from 1 to"),
        ({"threads": 2**31}, "threads must be from 1 to"),  # a pybind TypeError, or a hang
        ({"ensemble": "no"}, "ensemble must be True or False"),  # truthy: 8× the time
    ],
)
def test_load_options_of_the_wrong_kind_are_refused(options: dict, fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        Denoiser.load(backend="ort-cpu", **options)


def test_denoise_refuses_more_threads_than_the_machine_can_take(tmp_path: Path) -> None:
    import os

    source, target = _photo(tmp_path), tmp_path / "out.png"
    too_many = str(4 * (os.cpu_count() or 1) + 1)
    result = runner.invoke(app, ["denoise", str(source), str(target), "--threads", too_many])
    assert result.exit_code == 2 and "threads must be from 1 to" in result.output
    assert not target.exists()


def test_close_waits_for_a_call_running_in_another_thread() -> None:
    """close() from another thread mid-call gave the running call an AttributeError on its next
    tile (and, with TensorRT, would free device memory in use). Now the call ends normally,
    close() returns after it, and later calls are a clear error."""
    import threading
    import time

    denoiser = Denoiser.load(backend="ort-cpu", tile=128, overlap=16, threads=1)
    image = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    results: list = []
    worker = threading.Thread(target=lambda: results.append(denoiser(image)))
    worker.start()
    deadline = time.monotonic() + 60
    while denoiser._running == 0:  # until the call is in its tiles (25 take seconds)
        assert worker.is_alive() and time.monotonic() < deadline, results
        time.sleep(0.01)
    denoiser.close()
    assert not worker.is_alive()  # close returned only once the call had ended
    worker.join()
    assert len(results) == 1 and results[0].shape == image.shape
    with pytest.raises(UserInputError, match="was closed"):
        denoiser(image[:64, :64])


@pytest.mark.parametrize(
    ("planes", "fragment"),
    [
        (np.full((1, 3, 16, 16), 128, np.uint8), "divide 8-bit values by 255"),
        (np.full((1, 3, 16, 16), 128.0, np.float32), "float pixels are on a 0-1 scale"),
        (np.zeros((3, 16, 16), np.float32), "expected N×C×H×W"),
        (np.zeros((0, 3, 16, 16), np.float32), "none empty"),
        (np.zeros((1, 16, 16, 3), np.float32), "expected N×C×H×W"),
        (np.full((1, 3, 16, 16), np.nan, np.float32), "NaN or infinite"),
    ],
)
def test_denoise_planes_refuses_what_it_would_get_wrong(planes, fragment: str) -> None:
    """Integer or 0-255 planes came back as values from 79 to 472, without a word."""
    with Denoiser.load(backend="ort-cpu") as denoiser, pytest.raises(UserInputError) as err:
        denoiser.denoise_planes(planes)
    assert fragment in str(err.value)


def test_float_images_on_a_0_255_scale_are_refused_not_clipped_white() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (32, 32, 3)).astype(np.float32)
    with Denoiser.load(backend="ort-cpu") as denoiser:
        for call in (denoiser, denoiser.estimate_noise, lambda x: denoiser.batch(x[None])):
            with pytest.raises(UserInputError, match="float pixels are on a 0-1 scale"):
                call(photo)
        noisy = photo / 255 + rng.normal(0, 1.0, photo.shape).astype(np.float32)  # σ = 255
        assert noisy.min() < -2 and noisy.max() > 3  # strong noise leaves [0, 1]: accepted
        assert denoiser(noisy).shape == photo.shape


def test_batch_refuses_one_colour_image() -> None:
    """An H×W×3 array passed to batch() was read as H grey images 3 pixels wide."""
    image = np.zeros((32, 48, 3), np.uint8)
    with Denoiser.load(backend="ort-cpu") as denoiser:
        with pytest.raises(UserInputError, match="one H×W×C image, or 32 grey images"):
            denoiser.batch(image)
        assert denoiser.batch(image[None]).shape == (1, 32, 48, 3)


def test_float_grey_images_are_never_written_to(tmp_path: Path) -> None:
    """A float32 grey image reached the model as a view of the caller's array and was clipped
    in place (a read-only one raised numpy's 'output array is read-only')."""
    grey = np.random.default_rng(0).normal(0.5, 0.3, (24, 40)).astype(np.float32)
    before = grey.copy()
    grey.setflags(write=False)
    with Denoiser.load(_model(tmp_path / "identity.onnx"), backend="ort-cpu") as denoiser:
        one, batch = denoiser(grey), denoiser.batch(grey[None])
    assert np.array_equal(grey, before)
    np.testing.assert_allclose(one, np.clip(before, 0, 1), atol=1e-6)
    np.testing.assert_allclose(batch[0], one, atol=1e-6)


def test_denoise_planes_clips_both_sides_unless_raw(tmp_path: Path) -> None:
    """Its output reached -0.03 to 1.02 on noisy edges (and anything on out-of-range input),
    against its documented [0, 1]; ``raw`` keeps the network's own output for verification."""
    planes = np.random.default_rng(0).uniform(-0.5, 1.5, (2, 3, 16, 16)).astype(np.float32)
    before = planes.copy()
    with Denoiser.load(_model(tmp_path / "double.onnx", factor=2.0), backend="ort-cpu") as d:
        clipped, raw = d.denoise_planes(planes), d.denoise_planes(planes, raw=True)
    assert np.array_equal(planes, before)
    np.testing.assert_allclose(clipped, np.clip(np.clip(before, 0, 1) * 2, 0, 1), atol=1e-6)
    np.testing.assert_allclose(raw, before * 2, atol=1e-6)


def test_big_endian_arrays_denoise_like_native_ones(tmp_path: Path) -> None:
    """'>u2' and '>f4' (a FITS file's, a raw file's) were refused as unsupported dtypes."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 65536, (24, 40, 3)).astype(np.uint16)
    with Denoiser.load(_model(tmp_path / "half.onnx", factor=0.5), backend="ort-cpu") as d:
        for image in (photo, (photo / 65535).astype(np.float32)):
            swapped = image.astype(image.dtype.newbyteorder(">"))
            np.testing.assert_array_equal(d(swapped), d(image))
            np.testing.assert_array_equal(d.batch(swapped[None])[0], d(image))
            assert d.estimate_noise(swapped) == d.estimate_noise(image)
        planes = (photo / 65535).astype(">f4").transpose(2, 0, 1)[None]
        np.testing.assert_array_equal(
            d.denoise_planes(planes), d.denoise_planes(planes.astype("<f4"))
        )
