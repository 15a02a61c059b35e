"""Will a run fit in memory? An estimate made before allocating, so ``--val-size 100000000``
or ``--batch-size 200000`` is one line with the figure, not an out-of-memory crash minutes in.

The estimate counts what dominates: the fixed validation set (noisy and clean float32 crops,
plus the uint8 crops and noise drawn while building it) and one training step (the batch's
input and target, and every layer's output kept for the backward pass, twice for their
gradients). It is deliberately rough; it refuses only what is far beyond the memory there is.
"""

from __future__ import annotations

import os
from typing import Any

from n2nkit.errors import UserInputError

FLOAT = 4  # bytes per float32 value


def activation_values(model: Any, crop: int, channels: int = 3) -> int:
    """Values every leaf module outputs for one ``crop``×``crop`` sample (shapes only: run on
    the meta device, no memory, no compute)."""
    import copy

    import torch

    total = 0

    def count(_module, _inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    probe = copy.deepcopy(model).to("meta")
    leaves = [m for m in probe.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            probe(torch.empty(1, channels, crop, crop, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def available_bytes(device: Any) -> int | None:
    """Free memory of ``device`` (a torch.device): CUDA's free memory, else the host's
    MemAvailable (or physical memory); None when unknown."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def check_fits(config: Any, model: Any, device: Any, channels: int = 3) -> None:
    """:class:`UserInputError` with the figures when the validation set or one training step
    would need more memory than ``device`` has free."""
    free = available_bytes(device)
    if free is None:
        return
    crop_values = channels * config.crop * config.crop
    # noisy + clean float32, plus uint8 crops and a float noise draw while building them
    val_bytes = config.val_size * crop_values * (3 * FLOAT + 1)
    if val_bytes > free:
        raise UserInputError(
            f"--val-size {config.val_size}: the validation set needs about {human(val_bytes)} "
            f"({config.val_size} crops of {channels}×{config.crop}×{config.crop}, noisy and clean "
            f"float32), more than the {human(free)} free on {device}; give a smaller --val-size"
        )
    per_sample = (activation_values(model, config.crop, channels) * 3 + 2 * crop_values) * FLOAT
    step_bytes = config.batch_size * per_sample
    if step_bytes + val_bytes > free:
        raise UserInputError(
            f"--batch-size {config.batch_size}: one training step needs about {human(step_bytes)}"
            f" ({human(per_sample)} per {config.crop}×{config.crop} crop: the network's "
            f"activations and their gradients), more than the {human(free - val_bytes)} free on "
            f"{device}; give a smaller --batch-size"
        )
