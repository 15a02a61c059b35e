"""The training configuration: the report's recipe as defaults, validated before any work."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from n2nkit.errors import UnknownNameError, UserInputError
from n2nkit.sysinfo import check_threads

SUPERVISIONS = ("noisy", "clean")  # Noise2Noise | Noise2Clean
LOSSES = ("mse", "l1")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("step", "cosine")
# How training pairs are made (see training/neighbor.py); None: from the data, as before.
PAIRINGS = ("synthetic", "files", "neighbor")
# Share of synthetic dead-leaves crops mixed into --data builtin (see docs/models.md, "Data").
DEFAULT_SYNTHETIC_FRACTION = 0.6


# Fields that hold whole numbers: counts of at least 1 (``epochs`` None: no limit), the seed,
# and the thread count (None: every core).
POSITIVE_FIELDS = ("epochs", "epoch_size", "batch_size", "lr_step", "crop", "val_size")
WHOLE_FIELDS = (*POSITIVE_FIELDS, "seed", "num_threads")


@dataclass
class TrainConfig:
    """Everything a run needs; saved as a plain dict in every checkpoint.

    Defaults follow the report: Adam β=(0.9, 0.99), lr 1e-3 ×0.1 every 10 epochs, MSE, batch
    400, 32×32 crops, epochs of 50,000 pairs. ``precision`` is the autocast dtype of the
    forward pass (weights and optimizer stay float32): ``auto`` picks bf16 where the hardware
    runs it natively (recent NVIDIA GPUs; CPUs with AVX512-BF16 or AMX), fp16 on older GPUs,
    else fp32. ``init`` names a checkpoint whose weights a fresh run starts from (fine-tuning).
    ``schedule`` is the report's ``step`` (×``lr_gamma`` every ``lr_step`` epochs) or ``cosine``
    (per step, over the run's epochs or its wall-clock budget, whichever ends first).
    ``synthetic_fraction`` is the share of dead-leaves crops in each batch (default: 0.6 for
    ``builtin``, 0 for folders; ``data="synthetic"`` is synthetic only).
    ``pairs``: ``synthetic`` (noise added to clean photos), ``files`` (given noisy pairs) or
    ``neighbor`` (pairs sub-sampled from single noisy photos); None picks from the data.
    ``permute_colours`` draws crops with their RGB channels in one of the 6 orders at
    random: more colours from few photos, valid for noise alike and independent in every
    channel (not for a camera's blue channel that is noisier than its green). None: the
    pairing decides when the run starts (:func:`~n2nkit.training.neighbor.default_permute_colours`):
    on for ``synthetic`` and ``neighbor`` pairs, off for ``files`` (real noise may differ
    between channels); ``--recipe report`` sets it off.
    ``qat`` fine-tunes through simulated INT8 (training/qat.py); it needs ``init`` or ``resume``.
    ``epochs`` counts the run's total epochs;
    ``budget_s`` is the wall-clock limit of one invocation (training stops mid-epoch when it runs
    out, then validates and saves). ``out`` is accepted as an alias of ``out_dir``.
    ``supervision`` is what the network learns to output: ``noisy`` (Noise2Noise, another noisy
    draw) or ``clean`` (Noise2Clean); ``target`` is accepted as its old name, in saved configs too.
    """

    variant: str = "n2n"
    data: str = "builtin"
    val_data: str | None = None
    noise: str = "gaussian:25"
    supervision: str = "noisy"
    loss: str = "mse"
    epochs: int | None = None
    budget_s: float | None = None
    epoch_size: int = 50_000
    batch_size: int = 400
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    lr_step: int = 10
    lr_gamma: float = 0.1
    crop: int = 32
    seed: int = 0
    device: str = "auto"
    out_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    val_size: int = 1000
    num_threads: int | None = None
    precision: str = "auto"
    init: str | None = None
    schedule: str = "step"
    synthetic_fraction: float | None = None
    pairs: str | None = None
    qat: bool = False
    permute_colours: bool | None = None
    variant_kwargs: dict[str, Any] = field(default_factory=dict)
    out: InitVar[Path | None] = None
    target: InitVar[str | None] = None  # the old name of ``supervision``

    def __post_init__(self, out: Path | None, target: str | None) -> None:
        if target is not None:
            self.supervision = target
        if out is not None:
            self.out_dir = Path(out)
        if self.out_dir is None:
            self.out_dir = Path("runs") / self.variant
        self.out_dir = Path(self.out_dir)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in WHOLE_FIELDS:  # numpy integers too; checkpoints store plain ints
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                setattr(self, name, int(value))

    # ------------------------------------------------------------------ checks
    def validate(self) -> TrainConfig:
        """Raise :class:`UserInputError` on any value the trainer cannot use; return self."""
        from n2nkit.training.models import variant_names
        from n2nkit.training.noise import parse_noise

        if self.variant not in variant_names():
            raise UnknownNameError("model variant", self.variant, variant_names())
        parse_noise(self.noise)
        if self.supervision not in SUPERVISIONS:
            raise UnknownNameError("supervision", self.supervision, SUPERVISIONS)
        if self.loss not in LOSSES:
            raise UnknownNameError("loss", self.loss, LOSSES)
        if self.schedule not in SCHEDULES:
            raise UnknownNameError("learning-rate schedule", self.schedule, SCHEDULES)
        if self.synthetic_fraction is not None and not 0.0 <= self.synthetic_fraction <= 1.0:
            raise UserInputError(
                f"synthetic fraction must lie in [0, 1], got {self.synthetic_fraction}"
            )
        if self.pairs is not None and self.pairs not in PAIRINGS:
            raise UnknownNameError("pairing", self.pairs, PAIRINGS)
        if self.resume and self.overwrite:
            raise UserInputError(
                "--resume continues the run in --out and --overwrite replaces it: give one"
            )
        if self.qat and not (self.init or self.resume):
            raise UserInputError(
                "--qat fine-tunes a trained model through simulated INT8: give --init CHECKPOINT"
            )
        if self.precision not in PRECISIONS:
            raise UnknownNameError("precision", self.precision, PRECISIONS)
        for name in POSITIVE_FIELDS:
            value = getattr(self, name)
            if name == "epochs" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{name} must be a positive whole number, got {value!r}")
        if self.budget_s is not None and not 0 < self.budget_s < math.inf:
            raise UserInputError(f"budget must be a positive, finite time, got {self.budget_s}s")
        check_seed(self.seed)
        if not 0 < self.lr <= MAX_LR or not 0 < self.lr_gamma <= 1:  # NaN fails both
            raise UserInputError(
                f"lr must lie in (0, {MAX_LR:g}] and lr_gamma in (0, 1], got {self.lr}, "
                f"{self.lr_gamma}"
            )
        for name in ("data", "val_data"):
            if getattr(self, name) == "":  # Path("") is the current folder: not what was meant
                raise UserInputError(f"{name} is empty: name a folder, a file, or builtin")
        if not all(0 <= b < 1 for b in self.betas):
            raise UserInputError(f"Adam betas must lie in [0, 1), got {self.betas}")
        check_threads(self.num_threads)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise UserInputError(f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N")
        return self

    def synthetic_share(self) -> float:
        """The share of synthetic crops this run's data gets (explicit, or by data kind)."""
        if self.data == "synthetic":
            return 1.0
        if self.synthetic_fraction is not None:
            return float(self.synthetic_fraction)
        return DEFAULT_SYNTHETIC_FRACTION if self.data == "builtin" else 0.0

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain data only (Paths as str), safe for ``torch.load(weights_only=True)``."""
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys (newer n2nkit) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "target" in d and "supervision" not in d:  # checkpoints written before the rename
            kw["supervision"] = d["target"]
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        kw.setdefault("permute_colours", False)  # checkpoints from before the option
        return cls(**kw)


# Adam's step is about lr: far beyond this it overflows float32 (1e38 raised deep in Adam).
MAX_LR = 10.0
MAX_SEED = 2**32 - 1  # numpy's and torch's generators take it, and seed + offsets stays in range


def check_seed(seed: object, option: str = "--seed") -> None:
    """Refuse a seed the random generators would reject with a traceback (negative, huge)."""
    whole = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)  # numpy's too
    if not whole or not 0 <= seed <= MAX_SEED:
        raise UserInputError(f"{option} must be a whole number from 0 to {MAX_SEED}, got {seed}")


def parse_duration(text: str) -> float:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"1h30m"`` or plain seconds -> seconds (finite: a run
    with an infinite budget would never stop)."""
    s = text.strip().lower()
    try:
        seconds = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise UserInputError(f"cannot read duration {text!r}: give a finite time, e.g. 10m")
        return seconds
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", s)
    if not s or parts is None or not any(parts.groups()):
        raise UserInputError(f"cannot read duration {text!r}: write e.g. 90s, 10m, 1h or 1h30m")
    h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + sec
