"""PSNR as the report's grader computed it, on torch batches (per image, then averaged).

The numpy version, with the same 100 dB cap, is :func:`n2nkit.psnr.psnr`.
"""

from __future__ import annotations

import torch

from n2nkit.psnr import MIN_MSE


def psnr(a: torch.Tensor, b: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image in a batch (N×... tensors) -> shape N (float32).

    Computed in float32 whatever the input dtype. The MSE is floored at 1e-10 (100 dB): with
    blind noise ranges that start at 0, a validation crop can come out noise-free after 8-bit
    rounding, and one infinite score would make the mean infinite.
    """
    if a.shape != b.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 2:
        a, b = a[None], b[None]
    diff = a.float() - b.float()
    mse = diff.pow(2).flatten(1).mean(1).clamp_min(MIN_MSE * max_val**2)
    return 10.0 * torch.log10(max_val**2 / mse)
