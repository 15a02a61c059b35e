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

from pathlib import Path
from typing import Any

from n2nkit.errors import CheckpointError, first_line
from n2nkit.fileio import atomic_write

FORMAT = "n2nkit.checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model", "state_dict", "epoch", "config")
BEST_NAME = "best.pt"
LAST_NAME = "last.pt"


def atomic_write_bytes(path: Path, write: Any) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it in place.

    A crash or Ctrl-C leaves either the old file or the new one, never half of one.
    """
    return atomic_write(path, write)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (must hold :data:`REQUIRED_KEYS`) atomically."""
    import torch

    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    return atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


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
    import pickle
    import zipfile

    import torch

    path = resolve_checkpoint(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a checkpoint: not a complete PyTorch archive "
            "(truncated, or another kind of file)"
        )
    check_archive(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} was refused: it holds {_refused_object(exc)} besides tensors and plain "
            "data (nothing in it was executed)"
        ) from None
    except (
        RuntimeError,
        EOFError,
        KeyError,
        IndexError,
        TypeError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
    ) as exc:  # torch's legacy unpickler raises KeyError/IndexError on arbitrary bytes
        first = first_line(exc)
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated?): {first}"
        ) from None
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


def _refused_object(exc: BaseException) -> str:
    """What torch's safe unpickler refused, without its advice to load the file unsafely."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"a Python object ({found.group(1)})" if found else "a pickled Python object"


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
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["epoch"], int):
        raise CheckpointError(f"{path} has a malformed config or epoch")


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
