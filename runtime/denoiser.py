"""``Denoiser``: what an app embeds. Load a model once, call it on images of any size.

    from n2nkit.runtime import Denoiser

    denoiser = Denoiser.load()              # the shipped n2n model, best backend available
    clean = denoiser(noisy)                 # H×W×C uint8/uint16/float -> same shape and dtype
    print(denoiser.backend)                 # "ort-cpu", "ort-cuda" or "trt"

``backend="auto"`` prefers a TensorRT engine, then onnxruntime on CUDA, then on the CPU, and
keeps in :attr:`Denoiser.notes` why it passed over the ones it did not take. Images are padded
by reflection to the model's size multiple and cropped back; an image whose side exceeds
``tile`` is processed in overlapping tiles blended together (see :mod:`.tiling`), read from
and written into the caller's array one band of tiles at a time (see :mod:`.streaming`), so
memory beyond the input and output stays bounded by the tile size. A ``Denoiser`` keeps no
per-call state: calling it from several threads is safe; :meth:`Denoiser.close` waits for
the calls in progress, and a call after it is a clear error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import MissingDependencyError, ModelFormatError, UnknownNameError, UserInputError
from n2nkit.runtime.artifacts import ENGINE_PREFERENCE, MODEL_SUFFIXES, ONNX_PREFERENCE, scan
from n2nkit.runtime.backend import BACKENDS, Backend
from n2nkit.runtime.ensemble import EnsembleBackend
from n2nkit.runtime.pixels import (
    check_planes,
    describe,
    fit_channels,
    from_planes,
    native,
    to_planes,
    unfit_channels,
)
from n2nkit.runtime.streaming import denoise_streamed, padded_size
from n2nkit.runtime.tiling import pad_to, round_up, run_tiled
from n2nkit.sysinfo import check_threads

DEFAULT_TILE = 1024  # sides above this are tiled: about 1 MP per call
DEFAULT_OVERLAP = 64  # pixels shared by neighbouring tiles, blended


def _pixels(value: Any, name: str) -> int:
    """``tile``/``overlap`` as a whole number of pixels, or one clear error."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise UserInputError(f"{name} must be a whole number of pixels, got {value!r}") from None


def resolve_model_path(model: str | Path | None) -> Path:
    """A model file, an export folder, or a shipped model's name (None: the default one)."""
    from n2nkit.runtime.shipped import DEFAULT_MODEL, shipped_model_names, shipped_model_path

    if model is None:
        return shipped_model_path(DEFAULT_MODEL)
    if not str(model).strip():  # Path("") is the current folder
        raise UserInputError("the model is empty: give a model file, an export folder or a name")
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists() and not path.is_file():  # /dev/null, a FIFO: there, but not a file
        raise ModelFormatError(f"{path} is not a model file (.onnx, .ort or .engine)")
    if path.is_file():
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise ModelFormatError(f"{path} is not a model file (.onnx, .ort or .engine)")
        return path
    if str(model) in shipped_model_names():
        return shipped_model_path(str(model))
    shipped = ", ".join(shipped_model_names()) or "none installed"
    raise UserInputError(
        f"model not found: {model} (give a .onnx, .ort or .engine file, an export folder, or a "
        f"shipped model: {shipped})"
    )


def _candidates(path: Path, backend: str) -> list[tuple[str, Path]]:
    """(backend, file) pairs to try in order for ``backend`` (``auto`` lists several)."""
    from n2nkit.runtime.ort_backend import cuda_provider_available

    if path.is_dir():
        found = scan(path)
        engines = [found[k] for k in ENGINE_PREFERENCE if k in found]
        onnx = next((found[k] for k in ONNX_PREFERENCE if k in found), None)
        if backend == "trt" and not engines:
            raise ModelFormatError(
                f"{path} holds no TensorRT engine: build one with `n2nkit export --trt`"
            )
        if backend.startswith("ort") and onnx is None:
            raise ModelFormatError(f"{path} holds no model.onnx: run `n2nkit export` into it")
        if not engines and onnx is None:
            raise ModelFormatError(f"{path} holds no n2nkit model (model.onnx or model.*.engine)")
    elif path.suffix.lower() == ".engine":
        if backend.startswith("ort"):
            raise UserInputError(
                f"{path.name} is a TensorRT engine: use --backend trt (or auto), or give the "
                ".onnx model to onnxruntime"
            )
        engines, onnx = [path], None
    else:
        if backend == "trt":
            raise UserInputError(
                f"--backend trt runs TensorRT engines (.engine); {path.name} is ONNX: build an "
                "engine with `n2nkit export --trt`, or use ort-cuda / ort-cpu"
            )
        engines, onnx = [], path
    if backend == "trt":
        return [("trt", e) for e in engines]
    if backend != "auto":
        return [(backend, onnx)] if onnx is not None else []
    tries = [("trt", e) for e in engines]
    if onnx is not None:
        tries += [("ort-cuda", onnx)] if cuda_provider_available() else []
        tries += [("ort-cpu", onnx)]
    return tries


def open_backend(path: Path, backend: str, threads: int | None = None) -> tuple[Backend, list[str]]:
    """Start ``backend`` on ``path`` (``auto``: the first that works); return it and notes on
    what ``auto`` passed over and why."""
    if backend != "auto" and backend not in BACKENDS:
        raise UnknownNameError("backend", backend, ("auto", *BACKENDS))
    notes: list[str] = []
    tries = _candidates(path, backend)
    for i, (name, file) in enumerate(tries):
        try:
            return _start(name, file, threads), notes
        except (MissingDependencyError, ModelFormatError) as exc:
            if backend != "auto" or i == len(tries) - 1:
                raise
            notes.append(f"{name} ({file.name}) skipped: {exc}")
    raise ModelFormatError(f"no backend can run {path}")  # only when tries is empty


def _start(name: str, file: Path, threads: int | None) -> Backend:
    if name == "trt":
        from n2nkit.runtime.trt_backend import TrtBackend

        return TrtBackend(file)
    from n2nkit.runtime.ort_backend import OrtBackend

    return OrtBackend(file, device=name.removeprefix("ort-"), threads=threads)


class Denoiser:
    """A loaded model plus the padding and tiling that let it take any image."""

    def __init__(
        self,
        backend: Backend,
        tile: int | None = None,
        overlap: int | None = None,
        notes: list[str] | None = None,
        ensemble: bool = False,
    ) -> None:
        if not isinstance(ensemble, bool | np.bool_):  # "no" is truthy: 8× the time, unasked
            raise UserInputError(f"ensemble must be True or False, got {ensemble!r}")
        self.ensemble = bool(ensemble)
        self._backend = EnsembleBackend(backend) if ensemble else backend
        self._closed = False
        self._running = 0  # calls in progress (any thread); close() waits for them
        self._lifetime = threading.Condition()
        self.notes = list(notes or [])
        meta = backend.metadata
        m = max(meta.size_multiple, 1)
        tile = DEFAULT_TILE if tile is None else _pixels(tile, "tile")
        overlap = DEFAULT_OVERLAP if overlap is None else _pixels(overlap, "overlap")
        if backend.max_side is not None:
            tile = min(tile, backend.max_side)
        tile -= tile % m
        if tile < max(m, meta.min_side, 16):
            raise UserInputError(
                f"tile must be at least {max(m, meta.min_side, 16)} pixels for "
                f"{meta.variant} (a multiple of {m})"
            )
        if not 0 <= overlap <= tile // 2:
            raise UserInputError(f"overlap must lie between 0 and half the tile ({tile // 2})")
        # Tiles start on multiples of m (tiling.plan_axis): the overlap rounds up to one, and
        # a tile must reach at least m pixels beyond it to make progress.
        reach = -(-overlap // m) * m + m
        if tile < reach:
            raise UserInputError(
                f"tile {tile} is too small for overlap {overlap}: {meta.variant}'s tiles step "
                f"by {m} pixels, so give a tile of at least {reach} or a smaller overlap"
            )
        self.tile, self.overlap = tile, overlap

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        backend: str = "auto",
        threads: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        ensemble: bool = False,
    ) -> Denoiser:
        """Load ``model`` (a .onnx/.ort/.engine file, an export folder, a shipped model's name,
        or None for the shipped ``n2n``) on ``backend``: auto, ort-cpu, ort-cuda or trt.

        ``threads`` sets onnxruntime's CPU threads (None: all cores). ``tile`` is the largest
        side run in one piece (default 1024); ``overlap`` the pixels tiles share (default 64).
        ``ensemble`` is the quality mode: the mean of the model over the 8 flips/rotations of
        every tile, for 8× the time (gain and cost measured in docs/runtime.md).
        Raises :class:`~n2nkit.errors.MissingDependencyError` (naming the extra to install)
        when the backend's package is missing, :class:`~n2nkit.errors.ModelFormatError` for a
        model that does not fit the runtime.
        """
        check_threads(threads)
        path = resolve_model_path(model)
        opened, notes = open_backend(path, backend, threads)
        try:
            return cls(opened, tile=tile, overlap=overlap, notes=notes, ensemble=ensemble)
        except Exception:
            opened.close()
            raise

    # -------------------------------------------------------------------- what was loaded
    @property
    def backend(self) -> str:
        """The backend in use: ``ort-cpu``, ``ort-cuda`` or ``trt``."""
        return self._backend.name

    @property
    def metadata(self):
        """The model's :class:`~n2nkit.runtime.metadata.ModelMetadata` (variant, precision...)."""
        return self._backend.metadata

    @property
    def path(self) -> Path:
        return self._backend.path

    # -------------------------------------------------------------------- denoising
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Denoise one H×W or H×W×C image (C = 1, 2, 3 or 4; alpha passes through)."""
        image = native(image)
        layout = describe(image)
        with self._in_use() as backend:
            if self._needs_tiles(layout):  # tile by tile, no float copy of the whole image
                return denoise_streamed(image, layout, backend, self.tile, self.overlap)
            planes, alpha = to_planes(image[None], layout)
            return from_planes(self._denoise_planes(planes), alpha, layout)

    def _needs_tiles(self, layout) -> bool:
        """Whether an image of ``layout`` goes through the model in tiles (see _denoise_planes)."""
        height, width = padded_size(layout, self._backend)
        return max(height, width) > self.tile or not self._backend.fits(1, height, width)

    def batch(self, images: np.ndarray) -> np.ndarray:
        """Denoise N images of one size (N×H×W or N×H×W×C); same shape and dtype back."""
        if isinstance(images, list | tuple):
            shapes = sorted({np.shape(i) for i in images})
            if len(shapes) > 1:
                raise UserInputError(
                    f"a batch holds images of one shape, got {shapes[0]} and {shapes[1]}: call "
                    "the Denoiser on each image instead"
                )
        images = native(images)
        if images.ndim == 3 and images.shape[-1] in (3, 4):
            raise UserInputError(
                f"batch got shape {images.shape}: one H×W×C image, or {images.shape[0]} grey "
                f"images {images.shape[2]} pixels wide? Call the Denoiser on one image, or "
                "give a batch as N×H×W×C"
            )
        layout = describe(images, batched=True)
        one = describe(images[0])
        with self._in_use() as backend:
            if self._needs_tiles(one):  # large images: one at a time, tile by tile
                out = np.empty_like(images)
                for i, image in enumerate(images):
                    out[i] = denoise_streamed(image, one, backend, self.tile, self.overlap)
                return out
            planes, alpha = to_planes(images, layout)
            return from_planes(self._denoise_planes(planes), alpha, layout)

    def denoise_planes(self, planes: np.ndarray, raw: bool = False) -> np.ndarray:
        """float32 N×C×H×W in [0, 1] (C = 1 or 3), any H and W -> the same, denoised, in
        [0, 1]. Values outside [0, 1] are clipped first, as the Denoiser clips float images (the
        range the model was trained on); ``planes`` is never written to. ``raw``: neither
        side clipped, the network's own output, to compare with the network run elsewhere (the
        export checks its TensorRT engines against PyTorch so)."""
        planes = check_planes(native(planes))
        if not raw:
            planes = np.clip(planes, 0.0, 1.0)  # a new array
        with self._in_use():
            out = self._denoise_planes(planes)
        return out if raw else np.clip(out, 0.0, 1.0, out=out)  # outputs overshoot a little

    def _denoise_planes(self, planes: np.ndarray) -> np.ndarray:
        """denoise_planes for planes already checked (``describe`` in __call__ and batch),
        inside :meth:`_in_use`."""
        meta = self._backend.metadata
        x, fit = fit_channels(np.asarray(planes, dtype=np.float32), meta.channels)
        n, _, h, w = x.shape
        m = max(meta.size_multiple, 1)
        height, width = round_up(max(h, meta.min_side), m), round_up(max(w, meta.min_side), m)
        x = pad_to(x, height, width)
        if max(height, width) <= self.tile and self._backend.fits(1, height, width):
            out = self._whole(x)
        else:
            out = np.stack(
                [run_tiled(img, self._backend.infer, self.tile, self.overlap, m) for img in x]
            )
        return unfit_channels(out[:, :, :h, :w], fit)

    def _whole(self, x: np.ndarray) -> np.ndarray:
        """Images that fit in one piece, several per call within the tile's pixel budget."""
        n, _, h, w = x.shape
        per_call = max(1, min(n, (self.tile * self.tile) // (h * w)))
        while per_call > 1 and not self._backend.fits(per_call, h, w):
            per_call //= 2
        infer = self._backend.infer
        return np.concatenate([infer(x[i : i + per_call]) for i in range(0, n, per_call)])

    def estimate_noise(self, image: np.ndarray) -> float:
        """Gaussian noise σ of ``image`` on the 0-255 scale of the model's noise spec (uint8,
        uint16 or float in [0, 1]); see :mod:`.noise_level`."""
        from n2nkit.runtime.noise_level import estimate_sigma_255

        image = native(image)
        describe(image)  # the dtypes, shapes and finite values __call__ takes
        return estimate_sigma_255(image)

    # -------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the backend once the calls running in other threads have ended (a TensorRT
        engine's device memory must not go while a call uses it); calling the Denoiser
        afterwards is a clear error."""
        with self._lifetime:
            if self._closed:
                return
            self._closed = True
            self._lifetime.wait_for(lambda: self._running == 0)
        self._backend.close()

    @contextmanager
    def _in_use(self) -> Iterator[Backend]:
        """The backend for one call, which :meth:`close` waits for."""
        with self._lifetime:
            if self._closed:
                raise UserInputError(
                    f"this Denoiser ({self.path.name}) was closed: load the model again with "
                    "Denoiser.load()"
                )
            self._running += 1
        try:
            yield self._backend
        finally:
            with self._lifetime:
                self._running -= 1
                self._lifetime.notify_all()

    def __enter__(self) -> Denoiser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        meta = self.metadata
        return (
            f"Denoiser({self.path.name}: {meta.variant} {meta.precision} on {self.backend}, "
            f"tile {self.tile}, overlap {self.overlap})"
        )
