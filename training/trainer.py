"""``train()``: the report's recipe, reading top to bottom.

``train()`` reads as three parts: setup (:func:`_setup`: config fresh or resumed, device, model,
data on the device, fixed validation set, optimizer, schedule, mixed precision, resume state),
the epoch loop (:func:`_train_epoch`: batched steps within the budget), and end-of-epoch
bookkeeping (:func:`_end_of_epoch`: validation, a metrics line, checkpoints, whose payload is
built in :mod:`.checkpoint`, where its format is validated).

Design choices worth knowing:

* Noise2Noise input and target are two independent draws of the noise on one clean crop. The
  input is clipped and quantized to 8 bits (what users feed at inference); the target of a
  zero-mean kind (gaussian, poisson) stays unclipped, because clipping shifts its mean near
  black and white and the network would learn that bias. Other kinds are clipped like the input.
* Noisy pairs from files are used as they come, input and target swapped at random per sample.
* Budget: ``budget_s`` bounds this invocation's training steps; when it runs out mid-epoch the
  partial epoch still ends with validation and checkpoints (a few seconds more).
* Without ``epochs`` and ``budget_s`` a run stops after 25 epochs or 10 minutes, whichever comes
  first: the report's n2n epoch count and time constraint.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from n2nkit.errors import CheckpointError, TrainingDivergedError, UserInputError, first_line
from n2nkit.training import distributed
from n2nkit.training.checkpoint import (
    BEST_NAME,
    LAST_NAME,
    build_payload,
    load_checkpoint,
    save_checkpoint,
    saved_config,
)
from n2nkit.training.config import TrainConfig
from n2nkit.training.data import (
    NATURAL_TRAIN,
    ImageSet,
    load_builtin_photos,
    resolve_train_data,
    resolve_val_data,
)
from n2nkit.training.gpu_batches import CropBank, to_float
from n2nkit.training.memory import check_fits
from n2nkit.training.metrics import psnr
from n2nkit.training.models import create_model
from n2nkit.training.neighbor import (
    NEIGHBOR,
    check_crop,
    clip_sigma,
    default_permute_colours,
    neighbor_loss,
    resolve_pairs,
    trained_noise_range,
)
from n2nkit.training.noise import NoiseSpec, parse_noise, quantize
from n2nkit.training.replaced_run import (
    METRICS_NAME,
    drop_set_aside,
    restore_set_aside,
    set_aside,
)
from n2nkit.training.synthetic import MixedBank, SyntheticBank, palette_from_images

__all__ = ["TrainConfig", "TrainResult", "train"]

DEFAULT_EPOCHS = 25  # the report's n2n run ...
DEFAULT_BUDGET_S = 600.0  # ... inside its 10-minute constraint
VAL_SEED = 20220601  # the validation crops and their noise never change between runs
VAL_BATCH = 500
CHECK_EVERY = 10  # steps between loss reads (each read syncs the GPU)
MIN_LR_FACTOR = 0.01  # the cosine schedule ends at 1 % of the initial learning rate


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_val_psnr: float
    val_psnr_noisy: float
    epochs_completed: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "epochs"  # "epochs" | "budget"
    rank: int = 0  # under torchrun: this process's rank (only rank 0 validates and saves)
    variant: str = ""  # what was trained (a resume trains the checkpoint's, whatever was asked)


# --------------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` -> a device that exists here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"--device {name}: this torch build sees no CUDA GPU; use cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserInputError("--device mps: MPS is not available here; use cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"--device {name}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise UserInputError(
                f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain float32).

    ``auto`` takes bf16 where the hardware runs it natively, which about doubles training
    speed on such CPUs as well as GPUs; fp16 needs a GPU (and a gradient scaler). On CUDA,
    native bf16 means compute capability 8.0 (Ampere) or newer *of the chosen device*:
    ``torch.cuda.is_bf16_supported()`` also counts emulation since torch 2.4, which runs
    slower than fp32 on older GPUs.
    """
    if precision == "fp32":
        return None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        bf16_ok = major >= 8
        if precision == "auto":
            return torch.bfloat16 if bf16_ok else torch.float16
        if precision == "bf16" and not bf16_ok:
            raise UserInputError(
                f"--precision bf16: cuda:{index} (compute capability {major}.{minor}) has no "
                "native bfloat16; use fp16 or fp32"
            )
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type != "cpu":
        if precision == "auto":
            return None
        raise UserInputError(f"--precision {precision} is supported on cpu and cuda only")
    if precision == "fp16":
        raise UserInputError("--precision fp16 needs a CUDA GPU; on the CPU use bf16 or fp32")
    if precision == "auto":
        from n2nkit.sysinfo import cpu_flags

        native = {"avx512_bf16", "amx_bf16"} & cpu_flags()
        return torch.bfloat16 if native else None
    return torch.bfloat16


@dataclass
class ValSet:
    noisy: torch.Tensor  # float N×C×S×S on the device, clipped + quantized
    clean: torch.Tensor
    psnr_noisy: float
    photo: torch.Tensor | None = None  # which validation photo each crop came from


def build_val_set(
    val: ImageSet, spec: NoiseSpec, crop: int, size: int, multiple: int, device: torch.device
) -> ValSet:
    """A fixed validation set: ``size`` crops (noise drawn once, fixed seed) or a file's pairs."""
    if val.noisy_given:
        noisy, clean = val.first[:size], val.second[:size]
        h, w = noisy.shape[-2:]
        if h % multiple or w % multiple:
            h, w = h - h % multiple, w - w % multiple  # largest size the model accepts
            if h == 0 or w == 0:
                raise UserInputError(
                    f"validation images are {tuple(noisy.shape[-2:])}, smaller than the model's "
                    f"size multiple {multiple}"
                )
            noisy, clean = noisy[..., :h, :w], clean[..., :h, :w]
        noisy, clean = to_float(noisy, False), to_float(clean, False)
    else:  # equal crops from every photo, so one large photo cannot outweigh the rest
        g = torch.Generator().manual_seed(VAL_SEED)
        usable = [im for im in val.first if min(im.shape[:2]) >= crop]
        if not usable:
            raise UserInputError(f"no validation image is at least {crop}×{crop}")
        per = [size // len(usable) + (i < size % len(usable)) for i in range(len(usable))]
        crops = [
            CropBank([[im]], crop, torch.device("cpu")).draw(k, g)[0]
            for im, k in zip(usable, per, strict=True)
            if k
        ]
        photo = torch.repeat_interleave(
            torch.arange(len(crops)), torch.tensor([len(c) for c in crops])
        )
        clean = to_float(torch.cat(crops), False)
        noisy = quantize(spec.apply(clean, g))
    cl = torch.channels_last
    noisy = noisy.to(device).contiguous(memory_format=cl)
    clean = clean.to(device).contiguous(memory_format=cl)
    return ValSet(
        noisy, clean, float(psnr(noisy, clean).mean()), None if val.noisy_given else photo
    )


@torch.no_grad()
def validate(model: torch.nn.Module, val: ValSet) -> float:
    """Mean over images of each denoised image's PSNR (output clipped to [0, 1])."""
    return float(validation_scores(model, val).mean())


@torch.no_grad()
def validation_scores(model: torch.nn.Module, val: ValSet) -> torch.Tensor:
    """Each validation crop's PSNR after denoising (CPU float tensor)."""
    model.eval()
    scores = []
    for i in range(0, len(val.noisy), VAL_BATCH):
        out = model(val.noisy[i : i + VAL_BATCH])
        scores.append(psnr(out.float().clamp(0.0, 1.0), val.clean[i : i + VAL_BATCH]))
    model.train()
    return torch.cat(scores).cpu()


def per_photo(scores: torch.Tensor, val: ValSet) -> list[float]:
    """Mean PSNR of each validation photo's crops (its spread says how far one mean goes)."""
    if val.photo is None:
        return [float(scores.mean())]
    return [float(scores[val.photo == k].mean()) for k in range(int(val.photo.max()) + 1)]


def build_train_bank(
    data: ImageSet, config: TrainConfig, device: torch.device, seed: int | None = None
):
    """What batches are drawn from: the photos, synthetic images, or a mix of both
    (``seed``: the synthetic pool's and the mix's, ``config.seed`` unless given; each
    distributed rank passes its own)."""
    seed = config.seed if seed is None else seed
    share = config.synthetic_share()
    if share > 0 and not data.clean:
        raise UserInputError(
            f"synthetic images need clean photos to pair with; {data.source} holds noisy pairs "
            "(use --synthetic-fraction 0)"
        )
    sets = [data.first] if data.clean else [data.first, data.second]
    photos = (
        CropBank(sets, config.crop, device, permute_colours=bool(config.permute_colours))
        if len(data) and share < 1
        else None
    )
    if share == 0:
        return photos
    colours = data.first if data.source != "builtin:train" else load_builtin_photos(NATURAL_TRAIN)
    synthetic = SyntheticBank(
        config.crop,
        device,
        palette_from_images(colours, seed=config.seed),
        seed=seed,
        permute_colours=bool(config.permute_colours),
    )
    return MixedBank(photos, synthetic, share, seed=seed)


def cosine_factor(progress: float) -> float:
    """The cosine schedule's learning-rate factor at ``progress`` (0 = start, 1 = end)."""
    p = min(1.0, max(0.0, progress))
    return MIN_LR_FACTOR + (1.0 - MIN_LR_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * p))


def _null():
    import contextlib

    return contextlib.nullcontext()


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[psnr]} dB"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


# What a resume takes from this call; everything else (data, noise, model, recipe) is the run's
# identity and comes from last.pt. ``epochs``/``budget_s`` only when given.
RESUME_TAKES = ("epochs", "budget_s", "device", "num_threads", "precision")


def settle_config(config: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Validate; on resume take the saved config (keeping this call's run-control settings)."""
    config.validate()
    out = Path(config.out_dir)
    has_run = (out / LAST_NAME).exists() or (out / BEST_NAME).exists()
    if not config.resume:
        if has_run and not config.overwrite:
            raise UserInputError(
                f"{out} already holds a run; pass --resume to continue it or --overwrite to "
                "start over"
            )
        return config, None
    if not (out / LAST_NAME).is_file():
        raise CheckpointError(f"nothing to resume: {out / LAST_NAME} does not exist")
    ckpt = load_checkpoint(out / LAST_NAME)
    saved = saved_config(ckpt)
    # The run's identity (data, noise, model, recipe) comes from the checkpoint; how long and
    # where to run comes from this call.
    saved.out_dir = out
    saved.device = config.device
    saved.num_threads = config.num_threads
    saved.precision = config.precision
    saved.resume = True
    saved.overwrite = False  # how the run was started (maybe --overwrite), not how it resumes
    if config.epochs is not None:  # a new length: this call's budget (None: no cap) with it
        saved.epochs, saved.budget_s = config.epochs, config.budget_s
    elif config.budget_s is not None:  # more time for the same plan: the saved total stays
        saved.budget_s = config.budget_s
    return saved.validate(), ckpt


# --------------------------------------------------------------------------- setup
@dataclass
class _Run:
    """What setup builds and the epochs use: one run's objects and its counters."""

    config: TrainConfig
    spec: NoiseSpec
    epochs: int | None
    budget: float | None
    run_dir: Path
    device: torch.device
    gen: torch.Generator
    model: torch.nn.Module
    bank: Any
    val: ValSet
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    noise_range: Any = None  # the σ range the model is trained for (export writes it)
    dist: distributed.Dist = distributed.SINGLE  # torchrun: this rank; else rank 0 of 1
    net: torch.nn.Module | None = None  # what the steps call: the model, or its DDP wrapper
    synced_elapsed: float = 0.0  # distributed: the slowest rank's clock at the last sync
    start_epoch: int = 0
    best_psnr: float = -math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_before: float = 0.0  # training time of earlier invocations (resume)
    start: float = 0.0  # time.monotonic() when this invocation's first step began

    @property
    def best_path(self) -> Path:
        return self.run_dir / BEST_NAME

    @property
    def last_path(self) -> Path:
        return self.run_dir / LAST_NAME

    def autocast(self):
        if self.amp_dtype is None:
            return _null()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def elapsed_total(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start

    def elapsed(self) -> float:
        """This invocation's training time so far. Distributed, the slowest rank's at the last
        :meth:`sync_clock`, so every rank takes the same time-based decisions (budget stop,
        cosine learning rate) and the replicas stay identical."""
        if not self.dist.enabled:
            return time.monotonic() - self.start
        return self.synced_elapsed

    def sync_clock(self) -> None:
        if self.dist.enabled:
            local = [time.monotonic() - self.start]
            self.synced_elapsed = distributed.max_over_ranks(self.dist, local, self.device)[0]

    def save(self, path: Path, epoch: int, metrics: dict[str, Any], full: bool, **extra) -> None:
        """best.pt (``full=False``) or last.pt with what resume needs (``full=True``)."""
        resume_state = None
        if full:
            resume_state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "data": self.gen.get_state(),
                    "data_device": self.device.type,
                },
                "history": self.history,
            }
        payload = build_payload(
            self.model, self.config, epoch=epoch, metrics=metrics, best_val_psnr=self.best_psnr,
            noise=str(self.spec), resume_state=resume_state, noise_range=self.noise_range,
            **extra,
        )  # fmt: skip
        save_checkpoint(path, payload)


def _setup_device(
    config: TrainConfig, dist: distributed.Dist = distributed.SINGLE
) -> tuple[torch.device, torch.Generator]:
    device = resolve_device(distributed.rank_device(dist, config.device))
    distributed.init(dist, device)  # torchrun: join the process group (NCCL or gloo)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 32×32 shapes: pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    # each rank its own crops and noise
    return device, torch.Generator(device=device).manual_seed(config.seed + dist.rank)


def _setup_model(config: TrainConfig, device: torch.device, fresh: bool) -> torch.nn.Module:
    model = create_model(config.variant, **config.variant_kwargs)
    multiple = max(1, model.size_multiple)
    if config.crop % multiple:
        raise UserInputError(
            f"--crop {config.crop} is not a multiple of {config.variant}'s size multiple {multiple}"
        )
    if config.pairs == NEIGHBOR:
        check_crop(config.crop, multiple, config.variant)
    least = getattr(model, "min_side", 1) * (2 if config.pairs == NEIGHBOR else 1)
    if config.crop < least:
        halved = " (--pairs neighbor trains on half-size crops)" if config.pairs == NEIGHBOR else ""
        raise UserInputError(
            f"--crop {config.crop} is smaller than {config.variant} takes: at least {least}{halved}"
        )
    if config.init and fresh:
        _initialise(model, config)
        if config.qat:
            model = _equalized_for_qat(model, config)
    return model.to(device, memory_format=torch.channels_last).train()


def _equalized_for_qat(model: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
    """--qat from --init: the same function with per-channel equalized activations.

    The INT8 export equalizes before it quantizes (:mod:`n2nkit.training.equalize`), so QAT that
    simulated the network as loaded would tune the weights for ranges the export then changes.
    Equalized here from the crops the export uses (its default seed 0, the run's noise), the
    simulation sees the network the export would quantize; the export then quantizes a --qat
    checkpoint as it is (:func:`n2nkit.export.pipeline.qat_tuned`), which is what was
    simulated. A network equalization does not apply to (Inception, FFT, HLS) is simulated as
    it is.
    """
    from n2nkit.training.equalize import colour_diverse_batches, equalize_activations

    batches = colour_diverse_batches(config.noise, max(1, model.size_multiple), seed=0)
    equalized = equalize_activations(model, batches)
    return model if equalized is None else equalized


def _setup(config: TrainConfig) -> _Run:
    """Config (fresh or resumed), device, model, data, optimizer and schedule, resume state."""
    config, resumed = settle_config(config)
    spec = parse_noise(config.noise)
    epochs, budget = config.epochs, config.budget_s
    if epochs is None and budget is None:
        epochs, budget = DEFAULT_EPOCHS, DEFAULT_BUDGET_S
    run_dir = Path(config.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dist = distributed.from_env()
    device, gen = _setup_device(config, dist)
    model = _setup_model(config, device, fresh=resumed is None)
    check_fits(config, model, device)  # refuse with the figure before allocating data

    # Data: uint8 images on the device; crops, augmentation and noise are drawn there.
    data = resolve_train_data(config.data)
    if not data.clean and config.supervision == "clean":
        raise UserInputError(
            "--supervision clean needs clean training images (builtin or a folder of photos); "
            f"{data.source} holds noisy pairs"
        )
    config.pairs = resolve_pairs(config, data)
    if config.permute_colours is None:  # recorded in the checkpoints as decided here
        config.permute_colours = default_permute_colours(config.pairs)
    noise_range = trained_noise_range(config, data)  # in checkpoints; export writes it to metadata
    bank = build_train_bank(data, config, device, seed=config.seed + dist.rank)
    multiple = max(1, model.size_multiple)
    val = build_val_set(
        resolve_val_data(config.val_data), spec, config.crop, config.val_size, multiple, device
    )

    # The report's recipe. The cosine schedule sets the rate every step; StepLR (gamma 1) then
    # only carries state.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    gamma = 1.0 if config.schedule == "cosine" else config.lr_gamma
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, gamma)
    amp_dtype = autocast_dtype(config.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    run = _Run(config, spec, epochs, budget, run_dir, device, gen, model, bank, val, optimizer,
               scheduler, scaler, amp_dtype, noise_range, dist)  # fmt: skip

    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
        _restore(resumed, optimizer, scheduler, scaler, gen, device)
        run.start_epoch = int(resumed["epoch"])
        run.best_psnr = float(resumed.get("best_val_psnr", -math.inf))
        run.history = list(resumed.get("history", []))
        run.elapsed_before = float(resumed.get("elapsed_s", 0.0))
        if dist.is_main:  # one writer: rank 0 (see _end_of_epoch)
            reconcile_metrics(run_dir / METRICS_NAME, run.start_epoch, run.history)
        if dist.enabled:  # last.pt holds rank 0's stream only: every rank a fresh, seeded one
            gen.manual_seed(config.seed + dist.rank + 7919 * (run.start_epoch + 1))
    else:  # --overwrite: the old run is set aside until this one ends an epoch
        distributed.barrier(dist)  # once every rank has loaded --init (maybe OUT/best.pt)
        if dist.is_main:
            set_aside(run_dir)
    if config.qat:
        _simulate_int8(run)
    # DDP broadcasts rank 0's weights here, and the construction waits for every rank.
    run.net = distributed.wrap(model, device, dist)
    return run


def _simulate_int8(run: _Run) -> None:
    """--qat: attach INT8 fake quantization and fix its ranges on a few training batches.

    The batches come from a generator of their own, seeded alike on every rank, so under
    torchrun every replica gets the same ranges (and the run's own random stream is untouched).
    """
    from n2nkit.training.qat import CALIBRATION_BATCHES, simulate_int8

    config = run.config
    gen = torch.Generator(device=run.device).manual_seed(config.seed + 4_242)

    def batches():
        for _ in range(CALIBRATION_BATCHES):
            if config.pairs == NEIGHBOR:
                yield run.bank.draw(config.batch_size, gen)[0].float().div_(255.0)
            else:
                yield make_batch(run.bank, config.batch_size, run.spec, config.supervision, gen)[0]

    def forward(batch: torch.Tensor) -> None:
        with run.autocast():
            run.model(batch.contiguous(memory_format=torch.channels_last))

    simulate_int8(run.model).calibrate(batches(), forward)


# --------------------------------------------------------------------------- train
LEFTOVERS = (f".{BEST_NAME}.*.tmp", f".{LAST_NAME}.*.tmp")  # atomic writes a kill cut short


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train one variant as ``config`` says; checkpoints and metrics land in ``config.out_dir``.

    The run folder is locked for the whole run (a second run into it fails with one line); a
    run that fails before its first checkpoint removes the folder if it created it.
    """
    from n2nkit import runlock
    from n2nkit.fileio import make_out_dir, remove_leftovers

    out = Path(config.out_dir)
    if not distributed.from_env().is_main:  # torchrun's other ranks share rank 0's lock
        return _train_locked(config, progress)
    created = make_out_dir(out)
    try:
        with runlock.hold(out, "train"):  # set-aside runs move only while the lock is held
            remove_leftovers(out, LEFTOVERS)  # a killed run's temp files (we hold the lock)
            restore_set_aside(out)  # a killed --overwrite run that ended no epoch
            try:
                return _train_locked(config, progress)
            except BaseException:
                restore_set_aside(out)  # ended no epoch: the run it was to replace comes back
                raise
    except BaseException:
        if created and not (out / LAST_NAME).exists() and not (out / BEST_NAME).exists():
            shutil.rmtree(created, ignore_errors=True)  # nothing of value: leave no empty --out
        raise


def _train_locked(config: TrainConfig, progress: bool) -> TrainResult:
    run = _setup(config)
    epoch, stopped_by = run.start_epoch, "epochs"
    run.start = time.monotonic()
    main = run.dist.is_main  # under torchrun only rank 0 validates, prints and writes
    with _progress(progress and main) as bar:
        task = bar.add_task(
            run.config.variant, total=1000, loss="-", psnr=f"{run.val.psnr_noisy:.2f} (noisy)"
        )
        try:
            while run.epochs is None or epoch < run.epochs:
                stats = _train_epoch(run, epoch, bar, task)
                epoch += 1
                run.scheduler.step()
                stats["replica_spread"] = distributed.replica_spread(run.dist, run.model,
                                                                     run.device)  # fmt: skip
                val_psnr = _end_of_epoch(run, epoch, stats) if main else math.nan
                if main:
                    drop_set_aside(run.run_dir)  # this run has an epoch: the old one goes
                distributed.barrier(run.dist)  # the others wait for rank 0's checkpoints
                description = f"{run.config.variant} ep {epoch}"
                bar.update(task, psnr=f"{val_psnr:.2f}", description=description)
                if stats["partial"]:
                    stopped_by = "budget"
                    break
            bar.update(task, completed=1000)
        except KeyboardInterrupt:
            # Leave a resumable last.pt: weights as they are now, epoch = epochs completed.
            last = run.history[-1] if run.history else {}
            metrics = {k: last.get(k) for k in ("val_psnr", "val_psnr_noisy", "train_loss")}
            if main:
                run.save(run.last_path, epoch, metrics, True, interrupted=True,
                         elapsed_s=run.elapsed_total())  # fmt: skip
            raise

    if main and not run.best_path.exists():  # resumed a finished run without new epochs
        run.save(run.best_path, epoch, {"val_psnr": run.best_psnr}, False)
    return TrainResult(
        run_dir=run.run_dir,
        best_checkpoint=run.best_path,
        last_checkpoint=run.last_path,
        best_val_psnr=run.best_psnr,
        val_psnr_noisy=run.val.psnr_noisy,
        epochs_completed=epoch,
        history=run.history,
        stopped_by=stopped_by,
        rank=run.dist.rank,
        variant=run.config.variant,
    )


def _train_epoch(run: _Run, epoch: int, bar: Any, task: Any) -> dict[str, Any]:
    """One epoch of batched steps; stops early when the budget runs out (``partial``)."""
    config = run.config
    criterion = F.mse_loss if config.loss == "mse" else F.l1_loss
    # Distributed, the epoch's pairs are split between the ranks (--batch-size is per rank).
    share = math.ceil(config.epoch_size / run.dist.world_size)
    steps_per_epoch = math.ceil(share / config.batch_size)
    net = run.net or run.model
    epoch_start = time.monotonic()
    running = torch.zeros((), device=run.device)
    seen_steps, pairs, out_of_time = 0, 0, False
    sigma = clip_sigma(run.noise_range)  # neighbor pairs: the clipping the loss accounts for
    for step in range(steps_per_epoch):
        if step % CHECK_EVERY == 0:
            run.sync_clock()  # distributed only: one clock for every rank's decisions
        at = _progress_of_run(epoch + step / steps_per_epoch, run.epochs, run.elapsed_before,
                              run.elapsed(), run.budget)  # fmt: skip
        if config.schedule == "cosine":
            for group in run.optimizer.param_groups:
                group["lr"] = config.lr * cosine_factor(at)
        n = min(config.batch_size, share - step * config.batch_size)
        if config.pairs == NEIGHBOR:  # the pair comes from one noisy crop
            crops = run.bank.draw(n, run.gen)[0]
            loss = neighbor_loss(net, crops, run.gen, at, run.autocast, criterion, sigma)
        else:
            inp, tgt = make_batch(run.bank, n, run.spec, config.supervision, run.gen)
            with run.autocast():
                out = net(inp)
            loss = criterion(out.float(), tgt)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        running += loss.detach()
        seen_steps += 1
        pairs += n
        if seen_steps % CHECK_EVERY == 0 or step == steps_per_epoch - 1:
            bar.update(task, loss=f"{_check_loss(running, seen_steps, epoch, step, config):.5f}")
        elapsed = run.elapsed()
        span = max(1, (run.epochs or 10**9) - run.start_epoch)
        done = (epoch - run.start_epoch + (step + 1) / steps_per_epoch) / span
        if run.budget is not None:
            done = max(done, elapsed / run.budget)
            if elapsed >= run.budget:
                out_of_time = True
                break
        bar.update(task, completed=min(1000, int(1000 * done)))
    train_s = time.monotonic() - epoch_start
    train_loss = _check_loss(running, seen_steps, epoch, seen_steps - 1, config)
    if run.dist.enabled:  # every rank's pairs, and the loss averaged over all of them
        train_loss = distributed.mean_over_ranks(run.dist, train_loss, run.device)
        train_s = distributed.max_over_ranks(run.dist, [train_s], run.device)[0]
        pairs *= run.dist.world_size
    return {
        "train_loss": train_loss,
        "pairs": pairs,
        "train_s": train_s,
        "images_per_s": pairs / train_s if train_s > 0 else None,
        "epoch_start": epoch_start,
        "partial": out_of_time,
    }


def _end_of_epoch(run: _Run, epoch: int, stats: dict[str, Any]) -> float:
    """Validation, the metrics line, last.pt (and best.pt when it improved); the val PSNR."""
    scores = validation_scores(run.model, run.val)  # float32: what export will reproduce
    val_psnr = float(scores.mean())
    improved = val_psnr > run.best_psnr
    run.best_psnr = max(run.best_psnr, val_psnr)
    amp = run.amp_dtype
    record = {
        "epoch": epoch,
        "train_loss": stats["train_loss"],
        "val_psnr": val_psnr,
        "val_psnr_noisy": run.val.psnr_noisy,
        "val_psnr_by_photo": per_photo(scores, run.val),
        "best_val_psnr": run.best_psnr,
        "lr": run.optimizer.param_groups[0]["lr"],
        "pairs": stats["pairs"],
        "train_s": stats["train_s"],
        "images_per_s": stats["images_per_s"],
        "epoch_s": time.monotonic() - stats["epoch_start"],
        "elapsed_s": run.elapsed_total(),
        "device": str(run.device),
        "precision": str(amp).removeprefix("torch.") if amp else "float32",
        "partial": stats["partial"],
        "world_size": run.dist.world_size,
        "replica_spread": stats.get("replica_spread", 0.0),
    }
    run.history.append(record)
    metrics = {k: record[k] for k in ("val_psnr", "val_psnr_noisy", "train_loss")}
    if improved:
        run.save(run.best_path, epoch, metrics, False)
    run.save(run.last_path, epoch, metrics, True, elapsed_s=run.elapsed_total())
    # After the checkpoints it describes: a kill before this line loses the line, which resume
    # restores from last.pt's history; never a line for an epoch no checkpoint holds.
    with (run.run_dir / METRICS_NAME).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return val_psnr


def reconcile_metrics(path: Path, epoch: int, history: list[dict[str, Any]]) -> None:
    """On resume, make ``metrics.jsonl`` hold exactly one line per epoch up to ``epoch``
    (last.pt's): drop lines of epochs a kill cut off after the line (or repeated ones) and
    restore lines from ``history`` that a kill cut off before. Rewritten atomically."""
    from n2nkit.fileio import atomic_write_text

    by_epoch: dict[int, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                at = int(record["epoch"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill
            if 1 <= at <= epoch:
                by_epoch[at] = line
    for record in history:
        at = record.get("epoch")
        if isinstance(at, int) and 1 <= at <= epoch and at not in by_epoch:
            by_epoch[at] = json.dumps(record)
    lines = [by_epoch[k] + "\n" for k in sorted(by_epoch)]
    atomic_write_text(path, "".join(lines))


# --------------------------------------------------------------------------- one batch
def make_batch(
    bank: CropBank, n: int, spec: NoiseSpec, supervision: str, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) float batches, channels-last, on the bank's device; the target is
    another noisy draw (``supervision="noisy"``) or the clean crop (``"clean"``)."""
    crops = bank.draw(n, gen)
    if len(crops) == 2:  # noisy pairs: swap input and target at random per sample
        a, b = to_float(crops[0], False), to_float(crops[1], False)
        swap = (torch.rand(n, device=a.device, generator=gen) < 0.5)[:, None, None, None]
        inp, tgt = torch.where(swap, b, a), torch.where(swap, a, b)
    else:
        clean = to_float(crops[0], False)
        inp = quantize(spec.apply(clean, gen))
        if supervision == "clean":
            tgt = clean
        else:
            tgt = spec.apply(clean, gen)
            if not spec.zero_mean:
                tgt = quantize(tgt)
    cl = torch.channels_last
    return inp.contiguous(memory_format=cl), tgt.contiguous(memory_format=cl)


def _initialise(model: torch.nn.Module, config: TrainConfig) -> None:
    """Start from another run's weights (fine-tuning); the networks must be the same."""
    ckpt = load_checkpoint(Path(config.init))
    theirs = (ckpt["model"]["variant"], ckpt["model"].get("kwargs", {}))
    if theirs != (config.variant, dict(config.variant_kwargs)):
        raise UserInputError(
            f"--init {config.init} holds {theirs[0]} {theirs[1] or ''}; this run trains "
            f"{config.variant} {config.variant_kwargs or ''}: they must be the same network"
        )
    model.load_state_dict(ckpt["state_dict"])


def _progress_of_run(
    epochs_done: float,
    total_epochs: int | None,
    elapsed_before: float,
    elapsed: float,
    budget: float | None,
) -> float:
    """How far the run is (0-1): by epochs or by wall-clock budget, whichever is further.

    A resumed run's budget counts from the resume, so its total is the time spent before plus
    this invocation's budget.
    """
    by_epochs = epochs_done / total_epochs if total_epochs else 0.0
    by_time = (elapsed_before + elapsed) / (elapsed_before + budget) if budget else 0.0
    return max(by_epochs, by_time)


def _check_loss(running: torch.Tensor, steps: int, epoch: int, step: int, config) -> float:
    value = float(running) / max(1, steps)
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"training diverged: the loss became {value} in epoch {epoch + 1} by step {step + 1}; "
            f"lower the learning rate (now --lr {config.lr:g}) or check the data for NaN/inf"
        )
    return value


def _restore(ckpt, optimizer, scheduler, scaler, gen, device) -> None:
    """Optimizer, schedule, scaler and random streams from a last.pt (what resume needs)."""
    try:  # a hand-edited or damaged file whose archive still checks out: one line
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if rng.get("data_device") == device.type and "data" in rng:
            gen.set_state(rng["data"])
        else:  # another device's generator state does not fit: a fresh, still seeded stream
            gen.manual_seed(int(ckpt.get("seed", 0)) + int(ckpt["epoch"]))
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"last.pt cannot resume this run: {first_line(exc)}") from None
