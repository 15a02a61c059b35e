"""Several training processes, one run: torch's DistributedDataParallel, launched by torchrun.

``torchrun --nproc-per-node N -m n2nkit train ...`` starts N copies of the ordinary command;
torchrun tells each who it is through the environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), which :func:`from_env` reads. Nothing here is
used (and no process group exists) when ``WORLD_SIZE`` is absent or 1, so a plain
``n2nkit train`` is untouched.

What the trainer does with it (see :mod:`n2nkit.training.trainer`):

* each rank trains on its own device: ``cuda:LOCAL_RANK`` with NCCL on GPUs, the CPU with gloo;
* each rank draws its own crops and noise (its generator and synthetic pool are seeded
  ``seed + rank``), so N ranks see N different batches per step and an epoch's pairs are split
  between them (each rank takes ``ceil(epoch_size / N)``; ``--batch-size`` is per rank, so the
  effective batch is N × batch);
* the gradients are averaged by DDP, so every rank takes the same optimizer step and the
  replicas stay identical (checked every epoch: ``replica_spread`` in the metrics line);
* rank 0 alone validates, prints and writes checkpoints and metrics while the others wait at a
  barrier; checkpoints hold the unwrapped network's weights (no ``module.`` prefix), so export
  and a single-process resume read them as any other;
* decisions that depend on a clock (the ``--budget`` stop, the cosine schedule's time-based
  progress) are taken from the slowest rank's clock at sync points every few steps, so no rank
  stops (or sets another learning rate) alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from n2nkit.errors import UserInputError

ENV_KEYS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class Dist:
    """Who this process is among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env(env: dict[str, str] | None = None) -> Dist:
    """The process's place in a torchrun launch, read from ``WORLD_SIZE``/``RANK``/
    ``LOCAL_RANK``; :data:`SINGLE` when ``WORLD_SIZE`` is absent or 1."""
    env = os.environ if env is None else env
    if int(env.get("WORLD_SIZE", "1") or 1) <= 1:
        return SINGLE
    try:
        values = {k: int(env[k]) for k in ENV_KEYS}
    except (KeyError, ValueError):
        shown = {k: env.get(k) for k in ENV_KEYS}
        raise UserInputError(
            f"WORLD_SIZE > 1 but the torchrun environment is incomplete ({shown}); launch "
            "with `torchrun --nproc-per-node N -m n2nkit train ...`"
        ) from None
    world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if not 0 <= rank < world or local < 0:
        raise UserInputError(f"RANK {rank} / LOCAL_RANK {local} do not fit WORLD_SIZE {world}")
    return Dist(rank=rank, local_rank=local, world_size=world)


def rank_device(dist: Dist, requested: str) -> str:
    """The device one rank trains on: ``cuda:LOCAL_RANK`` when the run is on CUDA (``auto``
    with a GPU, or ``cuda``), else the CPU. An explicit ``cuda:N`` is refused: torchrun gives
    each rank its GPU (restrict them with ``CUDA_VISIBLE_DEVICES``)."""
    if not dist.enabled:
        return requested
    import torch

    if requested.startswith("cuda:"):
        raise UserInputError(
            f"--device {requested} under torchrun: each rank takes cuda:LOCAL_RANK; use "
            "--device cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    on_cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if not on_cuda:
        return "cpu" if requested == "auto" else requested
    if not torch.cuda.is_available():
        raise UserInputError("--device cuda under torchrun: this torch build sees no CUDA GPU")
    count = torch.cuda.device_count()
    if dist.local_rank >= count:
        raise UserInputError(
            f"LOCAL_RANK {dist.local_rank} has no GPU: this machine has {count}; use "
            f"--nproc-per-node {count} or fewer"
        )
    return f"cuda:{dist.local_rank}"


def init(dist: Dist, device: Any) -> None:
    """Join the process group (once per process): NCCL on CUDA, gloo on the CPU."""
    if not dist.enabled:
        return
    import torch
    import torch.distributed as td

    if td.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # device_id binds the communicator to this rank's GPU at once (no guessing, no hang
        # on the first collective).
        td.init_process_group("nccl", device_id=device)
    else:
        td.init_process_group("gloo")
    import atexit

    atexit.register(shutdown)


def finish() -> None:
    """Leave the process group together: wait for every rank, then destroy it.

    Called when ``n2nkit train`` has trained everything it was asked to, as torch's DDP
    tutorial ends its workers. Ranks that left one by one from the exit handler alone once
    aborted a gloo run at exit (``terminate called without an active exception``); the handler
    stays for runs that end in an error. Safe without a process group, and to call twice.
    """
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.barrier()
        td.destroy_process_group()


def shutdown() -> None:
    """Leave the process group (at exit; safe to call twice)."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def wrap(model: Any, device: Any, dist: Dist) -> Any:
    """The module the training steps call: ``model`` itself, or a DDP wrapper around it
    (which broadcasts rank 0's initial weights and averages the gradients)."""
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def unwrap(model: Any) -> Any:
    """The network inside a DDP wrapper (what checkpoints and validation use)."""
    return getattr(model, "module", model)


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def max_over_ranks(dist: Dist, values: list[float], device: Any) -> list[float]:
    """Element-wise maximum of ``values`` over the ranks (the values themselves with one)."""
    if not dist.enabled:
        return values
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return t.tolist()


def mean_over_ranks(dist: Dist, value: float, device: Any) -> float:
    if not dist.enabled:
        return value
    import torch
    import torch.distributed as td

    t = torch.tensor([value], dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.SUM)
    return float(t) / dist.world_size


def replica_spread(dist: Dist, model: Any, device: Any) -> float:
    """Largest difference between the ranks' weight checksums: 0.0 while DDP keeps the
    replicas identical (a non-zero value means the ranks diverged)."""
    if not dist.enabled:
        return 0.0
    import torch

    with torch.no_grad():
        checksum = sum(
            float(p.detach().double().mul(1 + (i % 7)).sum()) for i, p in enumerate(
                unwrap(model).parameters()
            )
        )  # fmt: skip
    high = max_over_ranks(dist, [checksum, -checksum], device)
    return high[0] + high[1]  # max - min
