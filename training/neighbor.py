"""Neighbor2Neighbor: Noise2Noise pairs drawn from single noisy images (Huang et al., CVPR 2021).

Every 2×2 cell of a noisy crop ``y`` gives two *different* neighbouring pixels, picked at random:
one goes to the sub-image ``g1(y)``, the other to ``g2(y)`` (both half size). With noise that is
independent from pixel to pixel, the two sub-images are two noisy views of almost the same
scene, so ``g2(y)`` is a Noise2Noise target for ``f(g1(y))``. The pixels differ by one step, so
that target is slightly blurred; the paper's regulariser corrects it by asking the network to
commute with the sub-sampling:

    loss = ||f(g1 y) − g2 y||² + γ ||f(g1 y) − g2 y − (g1 f(y) − g2 f(y))||²

with ``f(y)`` computed on the full crop without gradient, and γ ramping linearly from 0 to
``GAMMA_MAX`` = 2 over the run (the paper's setting). The network never sees a clean pixel.

Saved photos are clipped to [0, 255], so a noisy target's mean is not the clean value near the
ends of the range: E[clip(x + n)] > x in the shadows (about +5/255 at σ = 25 on black) and
< x in the highlights, and a network fitted to noisy targets learns that bias (measured: +5.4
on coffee's dark pixels, −5.1 on its bright ones). With Gaussian noise of a known σ that mean
has a closed form (:func:`clipped_mean`), so the loss compares the *clipped mean of the
network's output* with the target: the network is then fitted to the clean value. σ is the
run's noise estimate from the photos (:func:`trained_noise_range`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch.nn import functional as F

from n2nkit.errors import UserInputError

NEIGHBOR = "neighbor"
GAMMA_MAX = 2.0  # the paper's γ at the end of training
RANGE_SAMPLE = 32  # noisy photos measured for the trained noise range

# The pairs (first, second) of the 4 pixels of a 2×2 cell (0 1 / 2 3) that are neighbours:
# horizontal, vertical, each in both orders (8 ordered pairs, as in the paper's sampler).
_NEIGHBOURS = torch.tensor(
    [[0, 1], [1, 0], [2, 3], [3, 2], [0, 2], [2, 0], [1, 3], [3, 1]], dtype=torch.long
)


def default_pairs(clean_images: bool) -> str:
    """Today's behaviour: synthetic pairs from clean photos, else the given noisy pairs."""
    return "synthetic" if clean_images else "files"


def default_permute_colours(pairs: str) -> bool:
    """Whether crops are drawn in permuted colours unless asked otherwise: yes where the noise
    is known to be alike in every channel (added to clean crops) or the photos' one noise draw
    is all the data (measured in docs/training.md and docs/models.md); not for real noisy pairs."""
    return pairs in ("synthetic", NEIGHBOR)


def check_crop(crop: int, multiple: int, variant: str) -> None:
    """The half-size sub-images must still fit the model: crop a multiple of 2×multiple."""
    need = 2 * max(1, multiple)
    if crop % need:
        near = max(need, crop - crop % need)
        raise UserInputError(
            f"--pairs neighbor halves each crop: --crop {crop} must be a multiple of {need} "
            f"(2 × {variant}'s size multiple {multiple}), e.g. --crop {near}"
        )


def cell_choices(
    n: int, cells_h: int, cells_w: int, device: torch.device, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every cell of ``n`` images, the indices (0-3) of its two chosen neighbours."""
    pick = torch.randint(0, 8, (n, cells_h, cells_w), device=device, generator=generator)
    table = _NEIGHBOURS.to(device)
    return table[pick, 0], table[pick, 1]


def subsample(
    x: torch.Tensor, first: torch.Tensor, second: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """N×C×H×W (H, W even) -> the two half-size sub-images given each cell's chosen pixels."""
    n, c, h, w = x.shape
    # N×C×(H/2)×(W/2)×4: the four pixels of every 2×2 cell, row-major (0 1 / 2 3)
    cells = (
        x.reshape(n, c, h // 2, 2, w // 2, 2)
        .permute(0, 1, 2, 4, 3, 5)
        .reshape(n, c, h // 2, w // 2, 4)
    )

    def take(index: torch.Tensor) -> torch.Tensor:
        idx = index[:, None, :, :, None].expand(n, c, h // 2, w // 2, 1)
        return torch.gather(cells, 4, idx).squeeze(4)

    return take(first), take(second)


def neighbor_subimages(
    x: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Random sub-images g1(x), g2(x) and the choices that made them (to apply to f(x))."""
    n, _, h, w = x.shape
    if h % 2 or w % 2:
        raise UserInputError(f"neighbour sub-sampling needs even sides, got {h}×{w}")
    choice = cell_choices(n, h // 2, w // 2, x.device, generator)
    g1, g2 = subsample(x, *choice)
    return g1, g2, choice


def _normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def clipped_mean(mu: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[clip(mu + n, 0, 1)] for n ~ N(0, sigma²): what a clipped noisy pixel averages to.

    With a = -mu/σ, b = (1-mu)/σ: P(above 1) + E[mu + n; 0 < mu + n < 1]
    = 1 - Φ(b) + mu (Φ(b) - Φ(a)) + σ (φ(a) - φ(b)). Differentiable in ``mu``; ``mu`` itself
    where ``sigma`` is 0.
    """
    if sigma <= 0:
        return mu
    a, b = -mu / sigma, (1.0 - mu) / sigma
    phi_a, phi_b = torch.special.ndtr(a), torch.special.ndtr(b)
    return 1.0 - phi_b + mu * (phi_b - phi_a) + sigma * (_normal_pdf(a) - _normal_pdf(b))


def clip_sigma(noise_range: list[float] | None) -> float:
    """The σ (0-1 scale) the loss assumes for clipping: the middle of the photos' estimated
    range (0-255 scale), 0 (no correction) when there is none."""
    if not noise_range:
        return 0.0
    return float(sum(noise_range)) / len(noise_range) / 255.0


def gamma_at(progress: float) -> float:
    """γ of the regulariser at ``progress`` (0-1) of the run: linear ramp to GAMMA_MAX."""
    return GAMMA_MAX * min(1.0, max(0.0, progress))


def regularised_loss(
    out: torch.Tensor,
    target: torch.Tensor,
    g1_full: torch.Tensor,
    g2_full: torch.Tensor,
    gamma: float,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.mse_loss,
) -> torch.Tensor:
    """The paper's loss: reconstruction + γ · consistency with the full-size output."""
    rec = criterion(out, target)
    reg = criterion(out - target, g1_full - g2_full)
    return rec + gamma * reg


def neighbor_loss(
    model: torch.nn.Module,
    noisy: torch.Tensor,
    generator: torch.Generator | None,
    progress: float,
    autocast: Callable[[], AbstractContextManager],
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.mse_loss,
    sigma: float = 0.0,
) -> torch.Tensor:
    """One step's loss on a batch of uint8 (or float in [0, 1]) noisy crops N×C×S×S; with
    ``sigma`` > 0 (0-1 scale) outputs are compared through :func:`clipped_mean`."""
    y = noisy.float().div_(255.0) if not noisy.is_floating_point() else noisy
    y = y.contiguous(memory_format=torch.channels_last)
    g1, g2, choice = neighbor_subimages(y, generator)
    with torch.no_grad(), autocast():
        full = clipped_mean(model(y).float(), sigma)
    f1, f2 = subsample(full, *choice)
    with autocast():
        out = model(g1.contiguous(memory_format=torch.channels_last))
    out = clipped_mean(out.float(), sigma)
    return regularised_loss(out, g2, f1, f2, gamma_at(progress), criterion)


def resolve_pairs(config, data) -> str:
    """The pairing ``config`` (a TrainConfig) uses on ``data`` (an ImageSet): ``--pairs`` or
    the data's default; refuse combinations that cannot work."""
    pairs, source = config.pairs, data.source
    if pairs is None:
        return default_pairs(data.clean)
    if pairs == "synthetic" and not data.clean:
        raise UserInputError(
            f"--pairs synthetic adds noise to clean photos; {source} holds noisy pairs "
            "(use --pairs files)"
        )
    if pairs == "files" and data.clean:
        raise UserInputError(
            f"--pairs files needs two noisy realisations (two folders or a .pt file); {source} "
            "holds single images (use --pairs neighbor for noisy photos, synthetic for clean ones)"
        )
    if pairs == NEIGHBOR:
        if source.startswith("builtin") or source == "synthetic" or not data.clean:
            raise UserInputError(
                f"--pairs neighbor trains on a folder of noisy photos; {source} is not one"
            )
        if config.supervision == "clean":
            raise UserInputError("--pairs neighbor has no clean images: use --supervision noisy")
        if config.synthetic_share() > 0:
            raise UserInputError(
                "--pairs neighbor trains on your noisy photos only: drop --synthetic-fraction"
            )
    return pairs


def trained_noise_range(config, data) -> list[float] | None:
    """σ range (0-255) a run trains for: its Gaussian spec's, or estimated from its photos.

    Synthetic pairs of another kind (poisson, text, ...) have no σ range: None. Noisy photos
    (pairs or single) are measured with the runtime's estimate, at most ``RANGE_SAMPLE`` of them.
    """
    from n2nkit.runtime.noise_level import estimate_sigma
    from n2nkit.training.noise import parse_noise

    if config.pairs == "synthetic":
        spec = parse_noise(config.noise)
        return [float(spec.low), float(spec.high)] if spec.kind == "gaussian" else None
    images = list(data.first[:RANGE_SAMPLE])
    sigmas = [estimate_sigma(_as_hwc(im)) for im in images]
    return [round(min(sigmas), 1), round(max(sigmas), 1)] if sigmas else None


def _as_hwc(image):
    """An H×W×3 numpy image from a data-set entry (numpy H×W×3 or torch 3×H×W)."""
    if isinstance(image, torch.Tensor):
        return image.permute(1, 2, 0).cpu().numpy()
    return image
