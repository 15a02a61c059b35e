"""Noisy crops of photos as numpy arrays: what INT8 calibration, activation equalization and
export verification feed a network.

These live with training because the noise is the training noise model
(:func:`n2nkit.training.noise.add_noise`) and because both the trainer (``--qat`` equalizes
before it simulates INT8) and the export read them; the export may import training, never the
reverse (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def to_nchw(images: Sequence[Any]) -> Any:
    """H×W×3 uint8 images of one size -> float32 N×3×H×W in [0, 1]."""
    import numpy as np

    return np.stack([np.asarray(i, dtype=np.float32).transpose(2, 0, 1) / 255.0 for i in images])


def add_noise_np(clean: Any, noise: str, seed: int) -> Any:
    """Noisy copy of a float32 N×C×H×W array, through the training noise model."""
    import torch

    from n2nkit.training.noise import add_noise

    generator = torch.Generator().manual_seed(seed)
    noisy = add_noise(torch.from_numpy(clean), noise, generator, clip=True)
    return noisy.numpy().astype("float32")


def noisy_crop_batches(
    noise: str,
    side: int,
    crops: int,
    batch: int,
    seed: int = 0,
    images: Sequence[Any] | None = None,
) -> list[Any]:
    """``crops`` random side×side crops of ``images`` (default: the built-in training photos;
    a photo smaller than ``side`` is tiled), noisy, as float32 N×3×S×S batches of ``batch``."""
    import numpy as np

    from n2nkit.training.data import load_builtin_images

    photos = list(images) if images is not None else list(load_builtin_images("train"))
    rng = np.random.default_rng(seed)
    picked = []
    for _ in range(crops):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        if h < side or w < side:
            reps = (-(-side // h), -(-side // w), 1)
            photo, h, w = np.tile(photo, reps), h * reps[0], w * reps[1]
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        picked.append(photo[top : top + side, left : left + side])
    noisy = add_noise_np(to_nchw(picked), noise, seed)
    return [noisy[i : i + batch] for i in range(0, len(noisy), batch)]
