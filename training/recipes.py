"""Named training recipes: ``fast`` (the default, chosen by measurement) and ``report``.

A recipe fills every recipe setting the caller left unset (None); what the caller sets wins.
``report`` is the reference report's recipe exactly: direct prediction, 32×32 crops, batch
400, Adam 1e-3 ×0.1 every 10 epochs, 50,000-pair epochs, photos only. ``fast`` is what learned
most per unit of compute in docs/models.md ("Recipe by measurement"): residual prediction,
64×64 crops (context for the bottleneck), small batches on a CPU (many steps per minute), a
cosine schedule that ends with the run's budget, and synthetic dead-leaves images mixed into
the built-in photos; crops drawn in permuted colours where the pairing allows it (the
TrainConfig default, which ``report`` turns off).
"""

from __future__ import annotations

from typing import Any

from n2nkit.errors import UnknownNameError

RECIPES: dict[str, dict[str, Any]] = {
    "fast": {
        "residual": True,
        "crop": 64,
        "batch_size": {"cpu": 25, "cuda": 128},
        "epoch_size": 20_000,
        "schedule": "cosine",
        "lr_step": 10,
    },
    "report": {
        "residual": False,
        "crop": 32,
        "batch_size": 400,
        "epoch_size": 50_000,
        "schedule": "step",
        "lr_step": 10,
        "synthetic_fraction": 0.0,
        "permute_colours": False,
    },
}
DEFAULT_RECIPE = "fast"


def recipe_names() -> list[str]:
    return list(RECIPES)


def recipe_settings(name: str, device_type: str = "cpu", **given: Any) -> dict[str, Any]:
    """The recipe's settings for ``device_type`` ("cpu" or "cuda"), overridden by ``given``
    values that are not None. ``residual`` is returned as ``variant_kwargs``-ready bool."""
    if name not in RECIPES:
        raise UnknownNameError("recipe", name, recipe_names())
    settings: dict[str, Any] = {}
    for key, value in RECIPES[name].items():
        if isinstance(value, dict):  # per-device value
            value = value.get(device_type, value["cpu"])
        settings[key] = value
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def training_device_type(device: str) -> str:
    """``cuda`` when ``device`` names or (auto) finds a CUDA GPU, else ``cpu``."""
    if device.startswith("cuda"):
        return "cuda"
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"
