"""Training batches drawn on the training device: crops, flips, 90° rotations, all in one gather.

The source images stay uint8 on the device, packed into one flat buffer (each image C×H×W at its
own offset, no padding). A batch is one index computation plus one ``gather``: for every sample
an image (chosen in proportion to its area, so every pixel is equally likely), a crop position
and one of the 8 flips/rotations of the square, folded into the gather indices. No DataLoader,
no per-sample Python, nothing crosses the PCIe bus during training; the CPU path runs the very
same code.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from n2nkit.errors import DataError, N2NNote

# Device memory left for what trains besides the images: the network, optimizer state, batches.
TRAINING_HEADROOM = 256 << 20


def check_device_room(needed: int, device: torch.device, free: int | None = None) -> None:
    """Raise :class:`DataError` unless ``needed`` bytes of images (plus
    :data:`TRAINING_HEADROOM`) fit in ``device``'s free memory (``torch.cuda.mem_get_info``
    when ``free`` is None). Only CUDA devices are checked: a CPU bank lives in host memory."""
    if device.type != "cuda":
        return
    if free is None:
        free = int(torch.cuda.mem_get_info(device)[0])
    if needed + TRAINING_HEADROOM > free:
        raise DataError(
            f"the training images need {_size(needed)} on {device} but it has {_size(free)} "
            f"free ({TRAINING_HEADROOM >> 20} MiB kept for training): train on fewer or "
            "smaller images, free GPU memory, or use --device cpu"
        )


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _as_chw_list(images: Sequence[Any] | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):  # N×3×H×W uint8 (the report's format)
        return list(images)
    # H×W×3 arrays; read-only ones (the cached built-ins) are copied, torch wants writable memory
    return [torch.from_numpy(np.require(im, np.uint8, "W")).permute(2, 0, 1) for im in images]


class CropBank:
    """One or two aligned sets of uint8 images on ``device``; draws matching square crops.

    With two sets (noisy pairs) both crops of a sample come from the same place with the same
    flip/rotation. ``permute_colours`` also reorders each RGB crop's channels (one of the 6
    orders at random): more colours from the same photos, for noise that is alike and
    independent in every channel (see :class:`~n2nkit.training.config.TrainConfig`).
    """

    def __init__(
        self,
        sets: Sequence[Sequence[Any] | torch.Tensor],
        crop: int,
        device: torch.device,
        permute_colours: bool = False,
    ) -> None:
        chw = [_as_chw_list(s) for s in sets]
        first = chw[0]
        keep = [i for i, im in enumerate(first) if im.shape[1] >= crop and im.shape[2] >= crop]
        if not keep:
            biggest = max((tuple(im.shape[1:]) for im in first), default=(0, 0))
            raise DataError(
                f"no image is at least {crop}×{crop} (largest {biggest[0]}×{biggest[1]}): "
                "use a smaller --crop"
            )
        if len(keep) < len(first):
            warnings.warn(
                f"{len(first) - len(keep)} of {len(first)} images are smaller than the "
                f"{crop}×{crop} crop and are not trained on (a smaller --crop takes them)",
                N2NNote,
                stacklevel=2,
            )
        sizes = [first[i].shape for i in keep]
        # uint8 pixels of every kept image in every set: what the bank copies to the device
        check_device_room(len(chw) * sum(int(np.prod(shape)) for shape in sizes), device)
        self.crop = crop
        self.device = device
        self.channels = int(first[0].shape[0])
        self.orders = (
            torch.tensor(list(itertools.permutations(range(3))), device=device)
            if permute_colours and self.channels == 3
            else None
        )
        self.heights = torch.tensor([s[1] for s in sizes], device=device)
        self.widths = torch.tensor([s[2] for s in sizes], device=device)
        numel = torch.tensor([s[0] * s[1] * s[2] for s in sizes])
        self.offsets = (torch.cumsum(numel, 0) - numel).to(device)
        area = ((self.heights - crop + 1) * (self.widths - crop + 1)).float()
        self.weights = area / area.sum()
        self.buffers = [
            torch.cat([s[i].reshape(-1) for i in keep]).to(device=device, dtype=torch.uint8)
            for s in chw
        ]
        self.count = len(keep)
        s = torch.arange(crop, device=device)
        self._yy, self._xx = torch.meshgrid(s, s, indexing="ij")  # crop×crop

    def indices(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Flat gather indices n×C×S×S: random image, position, dihedral transform (and
        channel order with ``permute_colours``)."""
        dev, s = self.device, self.crop
        img = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        h, w = self.heights[img], self.widths[img]
        top = (torch.rand(n, device=dev, generator=generator) * (h - s + 1)).long()
        left = (torch.rand(n, device=dev, generator=generator) * (w - s + 1)).long()
        top = torch.minimum(top, h - s)
        left = torch.minimum(left, w - s)
        t = torch.randint(0, 8, (n,), device=dev, generator=generator)
        # the 8 symmetries of the square: optional transpose, then optional flips of each axis
        yy, xx = self._yy[None], self._xx[None]
        swap = (t & 4).bool()[:, None, None]
        y = torch.where(swap, xx, yy)
        x = torch.where(swap, yy, xx)
        y = torch.where((t & 1).bool()[:, None, None], s - 1 - y, y)
        x = torch.where((t & 2).bool()[:, None, None], s - 1 - x, x)
        pix = (top[:, None, None] + y) * w[:, None, None] + (left[:, None, None] + x)  # n×S×S
        plane = (h * w)[:, None, None, None]
        ch = torch.arange(self.channels, device=dev)[None, :, None, None]
        if self.orders is not None:  # drawn last: without it the stream is as before
            order = torch.randint(0, len(self.orders), (n,), device=dev, generator=generator)
            ch = self.orders[order][:, :, None, None]
        return self.offsets[img][:, None, None, None] + ch * plane + pix[:, None]

    def draw(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``n`` crops from each set: uint8 tensors n×C×S×S (same places in every set)."""
        idx = self.indices(n, generator)
        return [buf[idx] for buf in self.buffers]


def to_float(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """uint8 N×C×H×W -> float32 in [0, 1], channels-last (the fast layout for convolutions)."""
    y = x.to(torch.float32).div_(255.0)
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y
