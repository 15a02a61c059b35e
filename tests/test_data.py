"""Built-in photos split by image, the report's file format and its refusals, image folders,
and crops drawn in one gather."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from n2nkit.errors import DataError, UnknownNameError
from n2nkit.training.data import (
    BUILTIN_SPLITS,
    load_builtin_images,
    load_image_folder,
    load_pair_folders,
    load_report_file,
    resolve_train_data,
    resolve_val_data,
)
from n2nkit.training.gpu_batches import CropBank


def test_builtin_split_is_by_image_and_fixed() -> None:
    assert BUILTIN_SPLITS["test"] == ("coffee", "flower")
    assert BUILTIN_SPLITS["val"] == ("chelsea", "rocket", "camera", "brick", "grass", "gravel")
    names = [n for split in BUILTIN_SPLITS.values() for n in split]
    assert len(names) == len(set(names)) == 15
    for split, expected in BUILTIN_SPLITS.items():
        images = load_builtin_images(split)
        assert len(images) == len(expected)
        for im in images:
            assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
            assert min(im.shape[:2]) >= 256


def test_unknown_split() -> None:
    with pytest.raises(UnknownNameError, match="train"):
        load_builtin_images("holdout")


def _pairs(n: int = 6, side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(
        torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g) for _ in "ab"
    )


def test_report_file_loads(tmp_path: Path) -> None:
    a, b = _pairs()
    torch.save((a, b), tmp_path / "train.pt")
    x, y = load_report_file(tmp_path / "train.pt")
    assert torch.equal(x, a) and torch.equal(y, b)
    data = resolve_train_data(str(tmp_path / "train.pt"))
    assert not data.clean and len(data) == 6
    torch.save([a, b], tmp_path / "val.pt")
    val = resolve_val_data(str(tmp_path / "val.pt"))
    assert val.noisy_given and torch.equal(val.second, b)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda a, b: (a.float(), b), "torch.uint8"),
        (lambda a, b: (a[:, :2], b[:, :2]), "N×3×H×W"),
        (lambda a, b: (a, b[:4]), "6 noisy input images but 4"),
        (lambda a, b: (a, b[..., :16]), "shapes differ"),
        (lambda a, b: (a,), "tuple of two tensors"),
        (lambda a, b: {"x": a}, "tuple of two tensors"),
        (lambda a, b: (a, [1, 2]), "not a tensor"),
    ],
)
def test_report_file_is_validated(tmp_path: Path, make, message: str) -> None:
    torch.save(make(*_pairs()), tmp_path / "bad.pt")
    with pytest.raises(DataError, match=message):
        load_report_file(tmp_path / "bad.pt")


def test_not_a_tensor_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("just some text\n")
    with pytest.raises(DataError, match="not a torch tensor file"):
        load_report_file(path)
    from PIL import Image  # a PNG was said to hold "a pickled Python object"

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    with pytest.raises(DataError, match="not a torch tensor file") as err:
        load_report_file(tmp_path / "photo.png")
    assert "Python object" not in str(err.value)
    with pytest.raises(DataError, match="not found"):
        load_report_file(tmp_path / "missing.pt")


class _Exploit:
    """Unpickling this would create a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save((_Exploit(marker), torch.zeros(1)), path)
    with pytest.raises(DataError, match="refused") as err:
        load_report_file(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    with path.open("wb") as f:  # a bare pickle, not even a torch zip file
        pickle.dump(_Exploit(marker), f)
    with pytest.raises(DataError):
        load_report_file(path)
    assert not marker.exists()


def _write_pngs(folder: Path, names: list[str], size=(40, 48), seed: int = 0) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in names:
        arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{name}.png")


def test_image_folders(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "clean", ["a", "b", "c"])
    images = load_image_folder(tmp_path / "clean")
    assert len(images) == 3 and images[0].shape == (40, 48, 3)
    assert resolve_train_data(str(tmp_path / "clean")).clean

    _write_pngs(tmp_path / "pairs" / "one", ["x", "y"], seed=1)
    _write_pngs(tmp_path / "pairs" / "two", ["x", "y"], seed=2)
    data = resolve_train_data(str(tmp_path / "pairs"))
    assert not data.clean and len(data.first) == len(data.second) == 2
    joined = resolve_train_data(f"{tmp_path / 'pairs' / 'one'},{tmp_path / 'pairs' / 'two'}")
    assert np.array_equal(joined.second[1], data.second[1])


def test_pair_folders_must_match(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "a", ["x", "y"])
    _write_pngs(tmp_path / "b", ["x", "z"])
    with pytest.raises(DataError, match="same file names"):
        load_pair_folders(tmp_path / "a", tmp_path / "b")
    _write_pngs(tmp_path / "c", ["x", "y"], size=(40, 40))
    with pytest.raises(DataError, match="x:"):
        load_pair_folders(tmp_path / "a", tmp_path / "c")
    with pytest.raises(DataError, match="not found"):
        resolve_train_data(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        resolve_train_data(str(tmp_path / "empty"))


def _symmetries(window: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in range(4):
        r = np.rot90(window, k, axes=(1, 2))
        out += [r, r[:, :, ::-1]]
    return out


def test_crops_are_flipped_rotated_windows_aligned_across_pairs() -> None:
    h, w, s = 20, 24, 8
    base = (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)
    other = 255 - base
    bank = CropBank([[base], [other]], s, torch.device("cpu"))
    a, b = bank.draw(64, torch.Generator().manual_seed(0))
    assert a.shape == (64, 3, s, s) and a.dtype == torch.uint8
    assert torch.equal(b, 255 - a)  # both crops of a sample: same place, same transform
    chw = base.transpose(2, 0, 1)
    seen = set()
    for crop in a.numpy():
        # locate the window from the smallest value, then check it is one of the 8 symmetries
        matches = [
            (top, left, k)
            for top in range(h - s + 1)
            for left in range(w - s + 1)
            for k, t in enumerate(_symmetries(chw[:, top : top + s, left : left + s]))
            if np.array_equal(t, crop)
        ]
        assert matches, "crop is not a flip/rotation of any window"
        seen.add(matches[0][2])
    assert len(seen) >= 6  # the transforms vary


def test_permuted_colours_are_the_same_crops_in_every_channel_order() -> None:
    h, w, s = 20, 24, 8
    base = (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)
    other = 255 - base
    plain = CropBank([[base]], s, torch.device("cpu")).draw(96, torch.Generator().manual_seed(3))
    bank = CropBank([[base], [other]], s, torch.device("cpu"), permute_colours=True)
    a, b = bank.draw(96, torch.Generator().manual_seed(3))
    assert torch.equal(b, 255 - a)  # a noisy pair keeps one channel order for both crops
    orders = set()
    for permuted, crop in zip(a, plain[0], strict=True):
        # same place and transform as without the option (its draw comes last), channels reordered
        order = next(
            o for o in itertools.permutations(range(3)) if torch.equal(permuted, crop[list(o)])
        )
        orders.add(order)
    assert len(orders) == 6


def test_permuting_colours_leaves_grey_images_alone() -> None:
    grey = (np.arange(20 * 24) % 251).astype(np.uint8).reshape(20, 24, 1)
    bank = CropBank([[grey]], 8, torch.device("cpu"), permute_colours=True)
    assert bank.draw(4)[0].shape == (4, 1, 8, 8)


def test_images_smaller_than_the_crop() -> None:
    with pytest.raises(DataError, match="smaller --crop"):
        CropBank([[np.zeros((16, 16, 3), np.uint8)]], 32, torch.device("cpu"))
