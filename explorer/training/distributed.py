"""Training on several processes with PyTorch's own engine (DDP), started by ``torchrun``.

``torchrun --nproc-per-node N -m explorer train ...`` starts N copies of the CLI; each
finds its place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) through :func:`init_from_env`. Outside torchrun it returns None and nothing
here runs: the single-process path is untouched.

The process group uses NCCL on CUDA and gloo on CPUs, with a short timeout
(``LATENT_EXPLORER_DIST_TIMEOUT_S``, 60 s by default) so that a lost process ends the run
with an error instead of leaving the others waiting in a collective for half an hour.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from explorer.errors import ConfigError
from explorer.training.device import resolve_device

TIMEOUT_ENV = "LATENT_EXPLORER_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a distributed run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def under_torchrun() -> bool:
    """Whether torchrun (or an equivalent launcher) set the variables a process group needs."""
    return all(os.environ.get(k) for k in _ENV) and int(os.environ.get("WORLD_SIZE", "1")) >= 1


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not (0 < value <= 86_400):
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} must be between 0 and 86400 seconds")
    return value


def env_rank() -> int | None:
    """The rank torchrun gave this process, without starting anything (None outside torchrun)."""
    if not under_torchrun():
        return None
    try:
        return int(os.environ["RANK"])
    except ValueError:
        return None


def init_from_env(device_name: str = "auto") -> DistributedContext | None:
    """Join the process group torchrun describes, or return None when not under torchrun.
    ``device_name`` is the --device choice: CUDA (``cuda``, or ``auto`` where a GPU is
    present) gives NCCL and this process's local GPU; the CPU gives gloo."""
    if not under_torchrun():
        return None
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise ConfigError("torchrun's RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
    device = resolve_device(device_name)
    if device.type == "mps":
        raise ConfigError("distributed training runs on CUDA GPUs (NCCL) or CPUs (gloo), not on Apple's MPS; "
                          "use --device cpu")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local} has no GPU (this machine has {torch.cuda.device_count()}); "
                              f"start at most that many processes per node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        if not tdist.is_gloo_available():
            raise ConfigError("this PyTorch has no gloo backend, so it cannot train on several CPU processes")
        backend = "gloo"
    wait = datetime.timedelta(seconds=timeout_s())
    if tdist.is_initialized():
        return DistributedContext(rank, world, local, device, tdist.get_backend())
    if backend == "nccl":
        tdist.init_process_group(backend=backend, timeout=wait, device_id=device)
    else:
        tdist.init_process_group(backend=backend, timeout=wait)
    return DistributedContext(rank=rank, world_size=world, local_rank=local, device=device, backend=backend)


def shutdown(together: bool = True) -> None:
    """Leave the process group (quietly: after a lost peer there may be nothing to leave).
    ``together``: first wait for every process to get here (rank 0 may still be saving), so
    no process tears its connections down under another's feet, which can abort it."""
    if tdist.is_available() and tdist.is_initialized():
        try:
            if together:
                tdist.barrier()
            tdist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a broken group cannot be left cleanly; the process ends anyway
            pass


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over every process, in place, and return it."""
    tdist.all_reduce(values, op=tdist.ReduceOp.SUM)
    return values
