"""Runs the training engine in a plain Python thread that never touches Qt.

Everything the run produces (the engine's frozen events, the loaded data, the result, an
error message) goes into a ``queue.SimpleQueue``; the session drains it on the GUI thread
from a timer. An earlier design emitted Qt signals from a QThread-hosted QObject; PySide
crashed about once in twenty runs (SIGSEGV/SIGBUS in Shiboken's wrapper handling on the
worker thread), so the worker now shares nothing with Qt but a thread-safe queue.
Steering goes the other way through the thread-safe TrainingControl.
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.data import ImageData
from explorer.errors import UserError
from explorer.oom import is_out_of_memory, out_of_memory_message
from explorer.runtime.threads import lower_this_thread_priority, warm_view_imports
from explorer.training.control import TrainingControl
from explorer.training.events import EpochEnd, RunResult, RunStarted


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs, decided on the GUI thread before the worker starts."""

    model_config: ModelConfig
    data_config: DataConfig
    train_config: TrainConfig
    initial_state: dict[str, torch.Tensor] | None = None  # continue from these weights
    start_epoch: int = 0
    start_step: int = 0
    autosave_path: Path | None = None  # save a checkpoint here every ``autosave_every`` epochs
    autosave_every: int = 1
    history: dict[str, Any] | None = None  # the history so far, when continuing
    threads: int | None = None  # torch threads for training; None = all cores
    # The training timeline so far (explorer.training.timeline.Timeline), when continuing:
    # autosaves hold it plus this run's frames. The worker adds to a copy, never to it.
    timeline: Any = None


@dataclass(frozen=True)
class DataReady:
    """The loaded dataset and the model config fitted to it (sent once, before training)."""

    data: ImageData
    model_config: ModelConfig
    initial_state: dict[str, torch.Tensor]
    skipped: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()  # things about the folder worth knowing (e.g. near-duplicate class names)


@dataclass(frozen=True)
class Failed:
    message: str


@dataclass(frozen=True)
class AutosaveFailed:
    message: str


@dataclass(frozen=True)
class WorkerDone:
    """Always the last item a worker puts in its outbox."""


class TrainingWorker:
    def __init__(self, request: RunRequest, control: TrainingControl) -> None:
        self.request = request
        self.control = control
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="latent-explorer-training")

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        from explorer.training.engine import cpu_state_dict, drive, train
        from explorer.training.history import History
        from explorer.training.runs import prepare_run
        from explorer.training.timeline import Timeline, TimelineFrame

        req = self.request
        put = self.outbox.put
        lower_this_thread_priority()  # before torch starts its thread team, which inherits it
        torch.set_num_threads(req.threads or os.cpu_count() or 1)  # per thread: the GUI keeps its own
        try:
            run = prepare_run(req.model_config, req.data_config, req.train_config, ui="window")
            if req.initial_state is not None:
                run.model.load_state_dict(req.initial_state)
            warm_view_imports()
            put(DataReady(run.data, run.model.config, cpu_state_dict(run.model), tuple(run.folder_report.skipped),
                          tuple(run.folder_report.notes)))
            history = History.from_dict(req.history) if req.history else History(part_names=run.model.part_names)
            timeline = Timeline.for_data(run.data, previous=req.timeline)
            if self.control.stop_requested:
                put(RunResult(status="stopped", epochs_completed=req.start_epoch, global_step=req.start_step,
                              beta=run.model.beta))
                return
            events = train(run.model, run.data, req.train_config, self.control,
                           start_epoch=req.start_epoch, start_step=req.start_step, timeline_from=timeline.last)
            last_epoch = req.start_epoch + req.train_config.epochs  # RunStarted may raise it (small data)

            epoch_done = TimelineFrame if req.train_config.timeline else EpochEnd

            def on_event(event: Any) -> None:
                nonlocal last_epoch
                history.record(event)
                timeline.record(event)  # TimelineFrame events go to the window like the rest
                put(event)
                if isinstance(event, RunStarted):
                    last_epoch = event.start_epoch + event.epochs
                # An epoch's TimelineFrame follows its EpochEnd: with timelines on, autosave
                # once the frame is in, so the file holds the whole epoch.
                if isinstance(event, epoch_done) and req.autosave_path is not None and (
                        event.epoch % max(req.autosave_every, 1) == 0
                        or event.epoch == last_epoch):
                    self._autosave(run, history, timeline)

            put(drive(events, on_event))
        except UserError as exc:
            put(Failed(str(exc)))
        except Exception as exc:  # noqa: BLE001 - any crash must reach the user, not vanish with the thread
            put(Failed(_failure_message(exc)))
        finally:
            put(WorkerDone())

    def _autosave(self, run: Any, history: Any, timeline: Any = None) -> None:
        from explorer.training.checkpoint import save_checkpoint

        path = self.request.autosave_path
        assert path is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, run.model, run.data_config, run.train_config, history, run.data.class_names,
                            timeline=timeline)
        except (UserError, OSError) as exc:
            self.outbox.put(AutosaveFailed(str(exc)))


def _failure_message(exc: Exception) -> str:
    """What the window says when a run dies of ``exc`` (called while handling it, so the
    traceback is at hand): advice for out of memory, else the error and where it came from."""
    if is_out_of_memory(exc):
        return out_of_memory_message(exc, sentences=True)
    what = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
    return f"Training failed: {what}\n\n{traceback.format_exc(limit=3)}"
