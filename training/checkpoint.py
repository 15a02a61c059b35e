"""Training checkpoints: written atomically, read without unpickling code, validated.

A checkpoint is a plain ``dict`` saved with ``torch.save`` and read with
``torch.load(weights_only=True)``, so a crafted pickle cannot run code. It carries everything
needed to rebuild the network from the file alone (see :data:`REQUIRED_KEYS`)::

    format          "n2nkit.checkpoint"
    format_version  1
    model           {"variant": "n2n", "kwargs": {...}, "size_multiple": 32}
    state_dict      the model's weights (float tensors)
    epoch           epochs completed
    metrics         {"val_psnr": ..., "val_psnr_noisy": ..., "train_loss": ...}  (last epoch)
    best_val_psnr   best validation PSNR so far
    config          the TrainConfig as a dict (noise spec, data, loss, target, seed, ...)
    versions        {"n2nkit": ..., "torch": ..., "python": ...}
    optimizer, scheduler, scaler, rng   state needed to resume (optional in "best" files)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from n2nkit.errors import CheckpointError, first_line
from n2nkit.fileio import atomic_write
from n2nkit.training.torchfile import load_weights_only

FORMAT = "n2nkit.checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model", "state_dict", "epoch", "config")
BEST_NAME = "best.pt"
LAST_NAME = "last.pt"


def versions() -> dict[str, str]:
    """The package versions a checkpoint records (plain strings: safe for weights_only)."""
    import platform

    import numpy as np
    import torch

    from n2nkit import __version__

    return {
        "n2nkit": __version__,
        "torch": str(torch.__version__),  # a TorchVersion would not load with weights_only
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def build_payload(
    model: Any,
    config: Any,
    *,
    epoch: int,
    metrics: dict[str, Any],
    best_val_psnr: float,
    noise: str,
    resume_state: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What :func:`save_checkpoint` writes and :func:`validate_checkpoint` checks: the model's
    constructor arguments (export rebuilds the network from the file alone), its weights on the
    CPU, the run's config and metrics; ``resume_state`` (optimizer, schedule, scaler, random
    streams, history) only in ``last.pt``, so ``best.pt`` stays small."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {
            "variant": config.variant,
            "kwargs": dict(config.variant_kwargs),
            "size_multiple": model.size_multiple,
        },
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "epoch": epoch,
        "metrics": metrics,
        "best_val_psnr": best_val_psnr,
        "config": config.to_dict(),
        "noise": noise,
        "data": config.data,
        "seed": config.seed,
        "versions": versions(),
        **extra,
    }
    payload.update(resume_state or {})
    return payload


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (must hold :data:`REQUIRED_KEYS`) atomically."""
    import torch

    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    return atomic_write(Path(path), lambda f: torch.save(payload, f))


def resolve_checkpoint(path: Path, prefer: str = BEST_NAME) -> Path:
    """Accept a run folder (picks ``best.pt``, else ``last.pt``) or a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        for name in (prefer, BEST_NAME, LAST_NAME):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path} is a folder without {BEST_NAME} or {LAST_NAME}")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; any problem becomes one :class:`CheckpointError` line."""
    import zipfile

    path = resolve_checkpoint(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a checkpoint: not a complete PyTorch archive "
            "(truncated, or another kind of file)"
        )
    check_archive(path)
    ckpt = load_weights_only(
        path, CheckpointError, "is not a readable checkpoint (truncated?)", map_location
    )
    validate_checkpoint(ckpt, path)
    return ckpt


def check_archive(path: Path) -> None:
    """Verify every member of the checkpoint's zip archive against its CRC: damaged bytes
    must not load as plausible weights (or as NaN ones)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"{path} is corrupt: {first_line(exc)}") from None
    if damaged is not None:
        raise CheckpointError(
            f"{path} is corrupt: {damaged} fails its CRC check (damaged bytes); use another "
            "checkpoint or retrain"
        )


def validate_checkpoint(ckpt: Any, path: Path | str = "checkpoint") -> None:
    """Check the structure written by :func:`save_checkpoint`; raise :class:`CheckpointError`."""
    import torch

    from n2nkit.training.models import variant_names

    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an n2nkit checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    version = ckpt["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has format version {version!r}: not an n2nkit checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {ckpt['format_version']}; this n2nkit reads up to "
            f"{FORMAT_VERSION}: upgrade n2nkit"
        )
    model = ckpt["model"]
    if not isinstance(model, dict) or not isinstance(model.get("variant"), str):
        raise CheckpointError(f"{path} does not name its model variant")
    if model["variant"] not in variant_names():
        raise CheckpointError(
            f"{path} holds unknown variant {model['variant']!r}; "
            f"this n2nkit knows: {', '.join(variant_names())}"
        )
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) and v.is_floating_point() for v in state.values()
    ):
        raise CheckpointError(f"{path} has a malformed state_dict")
    _check_model_and_weights(model, state, path)
    _check_finite(ckpt, path)
    if not isinstance(ckpt["config"], dict) or not _whole(ckpt["epoch"]) or ckpt["epoch"] < 0:
        raise CheckpointError(f"{path} has a malformed config or epoch")
    _check_config(ckpt["config"], model["variant"], path)
    _check_record(ckpt, path)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_config(config: dict[str, Any], variant: str, path) -> None:
    """The saved training config must have the types ``train --resume`` reads (a hand edit can
    break them) and name the weights' variant. Types only: value rules (limits on noise, budget)
    may tighten in later versions, and an old checkpoint must still export; a resume checks
    the values itself (:meth:`TrainConfig.validate`)."""
    if config.get("variant", variant) != variant:  # absent: the weights' (a minimal config)
        raise CheckpointError(
            f"{path}: its config says variant {config.get('variant')!r} but its weights are "
            f"{variant!r}"
        )
    try:
        saved = saved_config({"config": config, "model": {"variant": variant}})
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        reason = first_line(exc)
        raise CheckpointError(f"{path} has an unusable training config: {reason}") from None
    wrong = [name for name, ok in _config_types(saved).items() if not ok]
    if wrong:
        raise CheckpointError(
            f"{path} has an unusable training config: {', '.join(wrong)} of the wrong type"
        )


def saved_config(ckpt: dict[str, Any]):
    """The run's :class:`~n2nkit.training.config.TrainConfig` as the checkpoint saved it; a
    minimal config without ``variant`` takes the weights' (as ``from_dict`` fills the rest)."""
    from n2nkit.training.config import TrainConfig

    return TrainConfig.from_dict({"variant": ckpt["model"]["variant"], **ckpt["config"]})


def _config_types(c: Any) -> dict[str, bool]:
    """Field -> whether its saved value has a type the trainer can use."""
    from n2nkit.training.config import POSITIVE_FIELDS

    counts = [name for name in (*POSITIVE_FIELDS, "seed") if name != "epochs"]  # epochs: None ok
    optional_number = (c.budget_s, c.synthetic_fraction)
    return {
        "data, noise": isinstance(c.data, str) and isinstance(c.noise, str),
        "variant_kwargs": isinstance(c.variant_kwargs, dict),
        "lr, lr_gamma, betas": all(_number(v) for v in (c.lr, c.lr_gamma, *c.betas)),
        "sizes and counts": all(_whole(getattr(c, name)) for name in counts),
        "epochs": c.epochs is None or _whole(c.epochs),
        "budget_s, synthetic_fraction": all(v is None or _number(v) for v in optional_number),
    }


def _check_record(ckpt: dict[str, Any], path) -> None:
    """The run's bookkeeping a resume or an export reads: numbers where numbers belong."""
    elapsed = ckpt.get("elapsed_s", 0.0)
    best = ckpt.get("best_val_psnr", 0.0)
    history = ckpt.get("history", [])
    noise_range = ckpt.get("noise_range")
    problems = []
    if not _number(elapsed) or not 0 <= elapsed < math.inf:
        problems.append(f"elapsed_s {elapsed!r}")
    if not _number(best) or math.isnan(best):
        problems.append(f"best_val_psnr {best!r}")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        problems.append("history")
    if noise_range is not None and not (
        isinstance(noise_range, list | tuple)
        and len(noise_range) == 2
        and all(_number(v) and math.isfinite(v) for v in noise_range)
        and 0 <= noise_range[0] <= noise_range[1]
    ):
        problems.append(f"noise_range {noise_range!r}")
    if problems:
        raise CheckpointError(f"{path} has malformed {', '.join(problems)}")


def _check_model_and_weights(model: dict[str, Any], state: dict[str, Any], path) -> None:
    """The model kwargs must build the variant, and the weights must fit it key for key."""
    import torch

    from n2nkit.training.models import create_model

    kwargs = model.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CheckpointError(f"{path} has malformed model kwargs: {kwargs!r}")
    try:
        with torch.device("meta"):  # shapes only: no memory, no compute
            expected = create_model(model["variant"], **kwargs).state_dict()
    except Exception as exc:  # unknown keys, wrong types: whatever the constructor raises
        raise CheckpointError(
            f"{path}: model kwargs {kwargs!r} do not build variant {model['variant']!r} "
            f"({first_line(exc)})"
        ) from None
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or extra or wrong:
        first = (missing or extra or wrong)[0]
        what = "lacks" if missing else "has unexpected" if extra else "has a wrongly shaped"
        raise CheckpointError(
            f"{path}: weights do not fit variant {model['variant']!r} ({what} tensor {first})"
        )


def _check_finite(value: Any, path, where: str = "") -> None:
    """Every floating-point tensor (weights, optimizer state) must be finite."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{path} is corrupt: {where or 'a tensor'} holds NaN or infinite values"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, path, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, path, f"{where}[{i}]")


def build_model(ckpt: dict[str, Any]):
    """Rebuild the network from a validated checkpoint and load its weights (eval mode)."""
    from n2nkit.training.models import create_model

    model = create_model(ckpt["model"]["variant"], **ckpt["model"].get("kwargs", {}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = first_line(exc)
        raise CheckpointError(
            f"weights do not fit variant {ckpt['model']['variant']!r}: {first}"
        ) from None
    return model.eval()


def load_model(path: Path, map_location: str = "cpu"):
    """Checkpoint file or run folder → (model in eval mode, checkpoint dict)."""
    ckpt = load_checkpoint(path, map_location)
    return build_model(ckpt), ckpt
