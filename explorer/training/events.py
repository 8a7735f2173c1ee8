"""What the engine yields. Each crosses threads, so each is frozen and holds only floats,
strings and CPU tensors that nobody mutates afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class RunStarted:
    device: str
    precision: str
    epochs: int
    steps_per_epoch: int
    train_size: int
    test_size: int
    start_epoch: int = 0
    compiled: bool = False


@dataclass(frozen=True)
class StepLoss:
    """Mean loss over the last ``log_every`` steps (one device sync per report, not per step)."""

    epoch: int  # 1-based
    step: int  # within the epoch, 1-based
    global_step: int
    loss: float
    parts: dict[str, float]
    samples_per_s: float
    lr: float
    beta: float


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    train: dict[str, float]  # {"loss": ..., "recon": ..., "kl": ...}
    test: dict[str, float]
    seconds: float
    samples_per_s: float


@dataclass(frozen=True)
class Snapshot:
    """A copy of the weights for views to decode from; the trainer never touches it again."""

    epoch: int
    global_step: int
    state_dict: dict[str, torch.Tensor] = field(repr=False)


@dataclass(frozen=True)
class Paused:
    global_step: int


@dataclass(frozen=True)
class Resumed:
    global_step: int


@dataclass(frozen=True)
class SettingChanged:
    name: str  # "lr" | "beta"
    value: float


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the run (for example: compiling
    the model failed, so training goes on uncompiled)."""

    message: str


Event = RunStarted | StepLoss | EpochEnd | Snapshot | Paused | Resumed | SettingChanged | Notice


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``status`` is "completed", "stopped" or "diverged"; after
    divergence the model holds the last good weights and ``message`` says why."""

    status: str
    epochs_completed: int
    global_step: int
    message: str = ""
    beta: float = 1.0
