"""The synthetic dead-leaves images: what they look like statistically, and how they mix in."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from n2nkit.training.data import NATURAL_TRAIN, load_builtin_photos
from n2nkit.training.gpu_batches import CropBank
from n2nkit.training.synthetic import (
    MixedBank,
    SyntheticBank,
    dead_leaves,
    palette_from_images,
)


@pytest.fixture(scope="module")
def palette() -> np.ndarray:
    return palette_from_images(load_builtin_photos(NATURAL_TRAIN[:1]))


def test_palette_comes_from_the_photos_pixels() -> None:
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[..., 0] = 255  # pure red
    colours = palette_from_images([photo], count=64)
    assert colours.shape == (64, 3) and colours.dtype == np.float32
    assert np.all(colours == [1.0, 0.0, 0.0])
    assert palette_from_images([], count=5).shape == (5, 3)  # no photos: uniform colours


def test_dead_leaves_has_edges_at_many_scales(palette: np.ndarray) -> None:
    image = dead_leaves(128, palette, np.random.default_rng(3))
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    x = image.astype(np.float32)
    # Many distinct regions (not a flat background) and both smooth and sharp neighbours.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500
    step = np.abs(x[:, 1:] - x[:, :-1]).mean(-1)
    assert (step < 2).mean() > 0.2  # flat or gently shaded interiors (photos: ~0.35)
    assert (step > 30).mean() > 0.005  # occlusion edges (photos: 0.01-0.05)


def test_dead_leaves_is_reproducible_from_its_seed(palette: np.ndarray) -> None:
    a = dead_leaves(64, palette, np.random.default_rng(5))
    b = dead_leaves(64, palette, np.random.default_rng(5))
    c = dead_leaves(64, palette, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_pool_is_repainted_as_batches_are_drawn(palette: np.ndarray) -> None:
    bank = SyntheticBank(32, torch.device("cpu"), palette, size=64, pool=2, refresh_every=1)
    before = bank.bank.buffers[0].clone()
    (crops,) = bank.draw(5, torch.Generator().manual_seed(0))
    assert crops.shape == (5, 3, 32, 32) and crops.dtype == torch.uint8
    assert not torch.equal(before, bank.bank.buffers[0])


def test_synthetic_crops_can_be_drawn_in_permuted_colours(palette: np.ndarray) -> None:
    def first_draw(permute: bool) -> torch.Tensor:
        bank = SyntheticBank(32, torch.device("cpu"), palette, size=64, pool=2, seed=4,
                             permute_colours=permute)  # fmt: skip
        return bank.draw(48, torch.Generator().manual_seed(1))[0]

    plain, permuted = first_draw(False), first_draw(True)
    orders = {  # each crop: the same pixels, its channels in one of the 6 orders
        next(o for o in itertools.permutations(range(3)) if torch.equal(b, a[list(o)]))
        for a, b in zip(plain, permuted, strict=True)
    }
    assert len(orders) > 1


def test_mixed_bank_keeps_the_synthetic_share(palette: np.ndarray) -> None:
    photo = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)  # all-black photo: easy to tell apart
    photos = CropBank([photo], 16, torch.device("cpu"))
    synthetic = SyntheticBank(16, torch.device("cpu"), palette, size=64, pool=2)
    mixed = MixedBank(photos, synthetic, 0.3)
    g = torch.Generator().manual_seed(0)
    synthetic_crops = 0
    for _ in range(200):
        (crops,) = mixed.draw(5, g)
        assert crops.shape == (5, 3, 16, 16)
        synthetic_crops += int((crops.flatten(1).amax(1) > 0).sum())
    assert 0.25 < synthetic_crops / 1000 < 0.35
