"""Training and validation data: built-in photos, the report's tensor files, image folders.

Built-in data are the RGB photographs shipped *inside* scikit-image and scikit-learn (read from
the installed packages, never downloaded), split by image so no scene leaks across splits:

    train  astronaut, china, hubble_deep_field, ihc, motorcycle_left, motorcycle_right, retina
    val    chelsea, rocket, camera, brick, grass, gravel   (the last four are grey photos)
    test   coffee, flower        (the images issue 4's non-local-means baseline is quoted on)

Only four training photos are ordinary scenes (:data:`NATURAL_TRAIN`); space, a retina and
histology hold most of the split's pixels. ``--data builtin`` therefore mixes in synthetic
dead-leaves images (:mod:`n2nkit.training.synthetic`) by default, and ``--data synthetic`` trains
on those alone. Validation holds six photos, crops drawn equally from each, so the choice of
data and recipe rests on more than two scenes and its spread can be reported.

The report's format is one file that ``torch.load(weights_only=True)`` opens into a tuple/list of
two uint8 tensors N×3×H×W: two noisy realisations for training, (noisy, clean) for validation.

Everything here returns uint8 images; cropping, augmentation and noise happen batched on the
training device (see :mod:`n2nkit.training.gpu_batches`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from n2nkit.errors import DataError, UnknownNameError, UserInputError
from n2nkit.runtime.images import IMAGE_SUFFIXES, image_files
from n2nkit.training.torchfile import load_weights_only

BUILTIN_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "china",
        "hubble_deep_field",
        "ihc",
        "motorcycle_left",
        "motorcycle_right",
        "retina",
    ),
    "val": ("chelsea", "rocket", "camera", "brick", "grass", "gravel"),
    "test": ("coffee", "flower"),
}
SKLEARN_IMAGES = ("china", "flower")
# The ordinary photographs of the training split: their pixels colour the synthetic images.
NATURAL_TRAIN = ("astronaut", "china", "motorcycle_left", "motorcycle_right")
SYNTHETIC = "synthetic"


# --------------------------------------------------------------------------- built-in photos
def builtin_image_path(name: str) -> Path:
    """Where the installed scikit-image / scikit-learn keeps photo ``name``."""
    from n2nkit.errors import require

    if name in SKLEARN_IMAGES:
        sklearn = require("sklearn", "training", "scikit-learn (built-in photos)")
        return Path(sklearn.__file__).parent / "datasets" / "images" / f"{name}.jpg"
    skimage = require("skimage", "training", "scikit-image (built-in photos)")
    folder = Path(skimage.__file__).parent / "data"
    for suffix in (".png", ".jpg"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    raise DataError(f"built-in photo {name!r} is missing from {folder}; reinstall scikit-image")


@functools.lru_cache(maxsize=8)
def _builtin(split: str) -> tuple[np.ndarray, ...]:
    images = tuple(read_image(builtin_image_path(n)) for n in BUILTIN_SPLITS[split])
    for im in images:
        im.setflags(write=False)  # shared by every caller through the cache
    return images


def load_builtin_photos(names: tuple[str, ...]) -> list[np.ndarray]:
    """Named built-in photos (any split) as H×W×3 uint8 RGB arrays."""
    return [read_image(builtin_image_path(n)) for n in names]


def load_builtin_images(split: str) -> list[np.ndarray]:
    """The built-in photos of ``split`` ("train", "val", "test") as H×W×3 uint8 RGB arrays."""
    if split not in BUILTIN_SPLITS:
        raise UnknownNameError("built-in split", split, list(BUILTIN_SPLITS))
    return [im.copy() for im in _builtin(split)]  # callers may write; the cache stays intact


# --------------------------------------------------------------------------- image files
def read_image(path: Path) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB, read by the runtime's reader (EXIF orientation
    applied, 16 bits scaled to 8, grey repeated to RGB, alpha dropped)."""
    from n2nkit.runtime.images import read_image as read_image_file

    if not Path(path).exists():
        raise DataError(f"image not found: {path}")
    try:
        pixels = read_image_file(path).pixels
    except UserInputError as exc:
        raise DataError(str(exc)) from None
    if pixels.dtype == np.uint16:
        pixels = np.rint(pixels.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    colour = pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., :1]  # alpha dropped
    return np.ascontiguousarray(np.broadcast_to(colour, (*pixels.shape[:2], 3)))


def load_image_folder(folder: Path) -> list[np.ndarray]:
    """Every image in ``folder`` (clean photos: training pairs are synthesised from them)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files = image_files(folder)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [read_image(p) for p in files]


def load_pair_folders(first: Path, second: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two folders of matching noisy realisations, paired by file name; sizes must agree."""
    a_files, b_files = image_files(first), image_files(second)
    a_names, b_names = {p.stem: p for p in a_files}, {p.stem: p for p in b_files}
    if not a_files:
        raise DataError(f"{first} holds no images")
    if set(a_names) != set(b_names):
        only = sorted(set(a_names) ^ set(b_names))[:3]
        raise DataError(
            f"{first} and {second} must hold the same file names "
            f"({len(a_names)} vs {len(b_names)} images; unmatched e.g. {', '.join(only)})"
        )
    a, b = [], []
    for stem in sorted(a_names):
        x, y = read_image(a_names[stem]), read_image(b_names[stem])
        if x.shape != y.shape:
            raise DataError(f"{stem}: {first} has {x.shape[:2]}, {second} has {y.shape[:2]}")
        a.append(x)
        b.append(y)
    return a, b


# --------------------------------------------------------------------------- the report's format
def load_report_file(path: Path, role: str = "train") -> tuple[Any, Any]:
    """Two uint8 N×3×H×W tensors from a report-format file (``role`` names them in errors).

    Loaded with ``weights_only=True``: a pickle that would run code is refused, not executed.
    """

    import torch

    path = Path(path)
    names = ("noisy input", "second noisy") if role == "train" else ("noisy", "clean")
    if not path.is_file():
        raise DataError(f"{role} data file not found: {path}")
    obj = load_weights_only(path, DataError, "is not a torch tensor file")
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(
            f"{path} must hold a tuple of two tensors ({names[0]}, {names[1]}), "
            f"found {type(obj).__name__}"
            + (f" of length {len(obj)}" if hasattr(obj, "__len__") else "")
        )
    for name, t in zip(names, obj, strict=True):
        if not isinstance(t, torch.Tensor):
            raise DataError(f"{path}: {name} is a {type(t).__name__}, not a tensor")
        if t.dtype != torch.uint8:
            raise DataError(f"{path}: {name} tensor is {t.dtype}, expected torch.uint8 (0-255)")
        if t.dim() != 4 or t.shape[1] != 3:
            raise DataError(f"{path}: {name} tensor has shape {tuple(t.shape)}, expected N×3×H×W")
    a, b = obj
    if a.shape[0] != b.shape[0]:
        raise DataError(f"{path}: {a.shape[0]} {names[0]} images but {b.shape[0]} {names[1]}")
    if a.shape != b.shape:
        raise DataError(f"{path}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.shape[0] == 0:
        raise DataError(f"{path} holds no images")
    return a.contiguous(), b.contiguous()


# --------------------------------------------------------------------------- --data resolution
@dataclass
class ImageSet:
    """Images for training or validation: H×W×3 uint8 arrays, or uint8 N×3×H×W tensors (files).

    ``second`` is None for clean images (pairs are synthesised with the noise spec); for
    training pairs it holds the matching second noisy realisation; for validation from a file it
    holds the clean images while ``first`` holds the noisy ones (``noisy_given`` is True).
    """

    first: list[np.ndarray] | Any
    second: list[np.ndarray] | Any | None
    source: str
    noisy_given: bool = False

    @property
    def clean(self) -> bool:
        return self.second is None

    def __len__(self) -> int:
        return len(self.first)


def resolve_train_data(spec: str) -> ImageSet:
    """``builtin``, ``synthetic``, a report-format file, a folder of clean images, a folder
    holding two folders of matching noisy realisations, or ``DIR_A,DIR_B``.

    ``synthetic`` has no photos (``first`` is empty): the trainer paints its images."""
    if spec == "builtin":
        return ImageSet(load_builtin_images("train"), None, "builtin:train")
    if spec == SYNTHETIC and not Path(spec).exists():
        return ImageSet([], None, SYNTHETIC)
    if "," in spec and not Path(spec).exists():
        parts = [p.strip() for p in spec.split(",", 1)]
        if not all(parts):
            raise DataError(f"--data {spec!r}: DIR_A,DIR_B names two folders of noisy pairs")
        a, b = (Path(p) for p in parts)
        if a.resolve() == b.resolve():
            raise DataError(
                f"--data {spec!r} pairs every image with itself: a network trained on that "
                "learns to copy its input; give two folders of independent noisy shots"
            )
        for d in (a, b):
            if not d.is_dir():
                raise DataError(f"noisy-pair folder not found: {d}")
        x, y = load_pair_folders(a, b)
        return ImageSet(x, y, spec)
    path = Path(spec)
    if not path.exists():
        raise DataError(
            f"training data not found: {spec} (use builtin, synthetic, a .pt file in the "
            "report's format, a folder of images, or two folders of noisy pairs)"
        )
    if path.is_file():
        a, b = load_report_file(path, "train")
        return ImageSet(a, b, str(path))
    if image_files(path):
        return ImageSet(load_image_folder(path), None, str(path))
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and image_files(p))
    if len(subdirs) == 2:
        x, y = load_pair_folders(*subdirs)
        return ImageSet(x, y, str(path))
    raise DataError(
        f"{path} holds no images and not exactly two folders of noisy pairs "
        f"(found {len(subdirs)} image folders)"
    )


def resolve_val_data(spec: str | None) -> ImageSet:
    """Validation images: clean photos (noise drawn once, fixed seed) or a (noisy, clean) file."""
    if spec is None or spec == "builtin":
        return ImageSet(load_builtin_images("val"), None, "builtin:val")
    path = Path(spec)
    if path.is_file():
        noisy, clean = load_report_file(path, "validation")
        return ImageSet(noisy, clean, str(path), noisy_given=True)
    if path.is_dir():
        return ImageSet(load_image_folder(path), None, str(path))
    raise UserInputError(
        f"validation data not found: {spec} (use builtin, a (noisy, clean) .pt file, "
        "or a folder of clean images)"
    )
