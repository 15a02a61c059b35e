"""One PSNR rule: numpy (n2nkit.psnr) and torch (training.metrics) agree, capped at 100 dB."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n2nkit.psnr import psnr
from n2nkit.training.metrics import psnr as torch_psnr


def test_identical_images_are_capped_at_100_db() -> None:
    image = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    assert psnr(image, image) == pytest.approx(100.0)
    assert psnr((image * 255).astype(np.uint8), (image * 255).astype(np.uint8)) == 100.0


def test_numpy_and_torch_agree() -> None:
    rng = np.random.default_rng(1)
    a, b = (
        rng.random((2, 3, 16, 16), dtype=np.float32),
        rng.random((2, 3, 16, 16), dtype=np.float32),
    )
    expected = torch_psnr(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert [psnr(x, y) for x, y in zip(a, b, strict=True)] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(a, b[:1])
