"""Runs the training engine in a QThread and re-emits its events as Qt signals.

Only frozen payloads cross to the GUI thread (the engine's events, a RunResult, a message
string). The worker also loads the dataset, so a slow folder or a download never blocks
the window. Steering goes the other way through the thread-safe TrainingControl, not
through queued slots, so a pause or stop lands within one step even while the worker's
event loop is busy running the generator.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal, Slot

from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.data import ImageData
from explorer.errors import UserError
from explorer.training.control import TrainingControl
from explorer.training.events import EpochEnd, Paused, Resumed, RunStarted, SettingChanged, Snapshot, StepLoss


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs, decided on the GUI thread before the worker starts."""

    model_config: ModelConfig
    data_config: DataConfig
    train_config: TrainConfig
    initial_state: dict[str, torch.Tensor] | None = None  # continue from these weights
    start_epoch: int = 0
    start_step: int = 0
    autosave_path: Path | None = None  # save a checkpoint here after every epoch
    history: dict[str, Any] | None = None  # the history so far, when continuing
    threads: int | None = None  # torch threads for training; None = all cores


@dataclass(frozen=True)
class DataReady:
    """The loaded dataset and the model config fitted to it (sent once, before training)."""

    data: ImageData
    model_config: ModelConfig
    initial_state: dict[str, torch.Tensor]
    skipped: tuple[tuple[str, str], ...]


class TrainingWorker(QObject):
    data_ready = Signal(object)  # DataReady
    started = Signal(object)  # RunStarted
    step = Signal(object)  # StepLoss
    epoch = Signal(object)  # EpochEnd
    snapshot = Signal(object)  # Snapshot
    paused = Signal()
    resumed = Signal()
    setting_changed = Signal(object)  # SettingChanged
    finished = Signal(object)  # RunResult
    failed = Signal(str)
    autosave_failed = Signal(str)

    def __init__(self, request: RunRequest, control: TrainingControl) -> None:
        super().__init__()
        self.request = request
        self.control = control

    @Slot()
    def run(self) -> None:
        from explorer.training.engine import cpu_state_dict, train
        from explorer.training.history import History
        from explorer.training.runs import prepare_run

        req = self.request
        torch.set_num_threads(req.threads or os.cpu_count() or 1)  # per thread: the GUI keeps its own
        try:
            run = prepare_run(req.model_config, req.data_config, req.train_config)
            if req.initial_state is not None:
                run.model.load_state_dict(req.initial_state)
            self.data_ready.emit(DataReady(run.data, run.model.config, cpu_state_dict(run.model),
                                           tuple(run.folder_report.skipped)))
            history = History.from_dict(req.history) if req.history else History(part_names=run.model.part_names)
            if self.control.stop_requested:
                return
            events = train(run.model, run.data, req.train_config, self.control,
                           start_epoch=req.start_epoch, start_step=req.start_step)
            while True:
                try:
                    event = next(events)
                except StopIteration as stop:
                    self.finished.emit(stop.value)
                    return
                history.record(event)
                self._emit(event)
                if isinstance(event, EpochEnd) and req.autosave_path is not None:
                    self._autosave(run, history)
        except UserError as exc:
            self.failed.emit(str(exc))
        except (torch.cuda.OutOfMemoryError, MemoryError):
            self.failed.emit("Out of memory while training. Try a smaller batch size or fewer training images.")
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                self.failed.emit("The device ran out of memory. Try a smaller batch size.")
            else:
                self.failed.emit(f"Training failed: {exc}\n\n{traceback.format_exc(limit=3)}")
        except Exception as exc:  # noqa: BLE001 - any crash must reach the user, not kill the thread silently
            self.failed.emit(f"Training failed: {type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=3)}")

    def _autosave(self, run: Any, history: Any) -> None:
        from explorer.training.checkpoint import save_checkpoint

        path = self.request.autosave_path
        assert path is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, run.model, run.data_config, run.train_config, history, run.data.class_names)
        except (UserError, OSError) as exc:
            self.autosave_failed.emit(str(exc))

    def _emit(self, event: object) -> None:
        if isinstance(event, StepLoss):
            self.step.emit(event)
        elif isinstance(event, EpochEnd):
            self.epoch.emit(event)
        elif isinstance(event, Snapshot):
            self.snapshot.emit(event)
        elif isinstance(event, RunStarted):
            self.started.emit(event)
        elif isinstance(event, Paused):
            self.paused.emit()
        elif isinstance(event, Resumed):
            self.resumed.emit()
        elif isinstance(event, SettingChanged):
            self.setting_changed.emit(event)
