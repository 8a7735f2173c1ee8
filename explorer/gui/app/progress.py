"""The one place that says what the app is doing: the toolbar's progress bar and line
for the training run, and the status bar for messages, the device and background work.

It follows the session's signals only. Each state sets the whole readout, so nothing of
an earlier state (``Loading mnist...`` after a failed load, ``Paused`` after Resume, the
ETA and speed of a run that has stopped, finished or failed) can linger.
"""

from __future__ import annotations

import time

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar

from explorer.display import one_line, plural
from explorer.gui.state.session import IDLE, LOADING, PAUSED, STOPPING, TRAINING, RunState, TrainingSession
from explorer.training.events import EpochEnd, RunResult, RunStarted, SettingChanged, StepLoss
from explorer.training.history import History

# A run shorter than this rarely learns anything worth looking at.
TOO_FEW_STEPS = 500


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def where_it_ended(result: RunResult, history: History, steps_per_epoch: int | None) -> str:
    """Where a run ended, in words: "after 3 epochs", or inside an epoch "in epoch 2 (after
    260 of its 469 steps)". The steps into the unfinished epoch are the steps since the
    last finished epoch's end (the history keeps each epoch's global step)."""
    done = result.epochs_completed
    since = result.global_step - (int(history.epochs[-1].get("global_step", 0)) if history.epochs else 0)
    if since <= 0 or (steps_per_epoch is not None and since >= steps_per_epoch):
        return f"after {plural(done, 'epoch')}"
    of = f" of its {steps_per_epoch:,}" if steps_per_epoch else ""
    steps = f"{since:,}{of} {'step' if since == 1 and not of else 'steps'}"
    return f"in epoch {done + 1} (after {steps})"


class RunProgress:
    def __init__(self, window: QMainWindow, session: TrainingSession) -> None:
        self.window = window
        self.session = session
        self._run_info: RunStarted | None = None
        self._error: str | None = None  # the run's error, shown once the session is idle
        self._started_at = 0.0
        self._paused_at: float | None = None  # while paused: when (paused time is not training time)
        self._last_step: StepLoss | None = None  # the run's latest step report, for its line
        self.bar = QProgressBar(objectName="progress")
        self.bar.setMinimumWidth(240)
        self.bar.setTextVisible(True)
        self.bar.setFormat("Ready")
        self.bar.setValue(0)
        self.label = QLabel("Press Start (F5) to train", objectName="progressLabel")
        self.label.setContentsMargins(8, 0, 8, 0)
        self.device_label = QLabel("", objectName="deviceLabel")
        self.busy_label = QLabel("", objectName="busyLabel")
        status = window.statusBar()
        status.addPermanentWidget(self.busy_label)
        status.addPermanentWidget(self.device_label)
        status.showMessage("Ready: pick a dataset and a model, then press Start (F5).")
        session.state_changed.connect(self.show_state)
        session.run_started.connect(self._on_run_started)
        session.step.connect(self._on_step)
        session.epoch.connect(self._on_epoch)
        session.run_finished.connect(self._on_run_finished)
        session.setting_changed.connect(self._on_setting_changed)
        session.error.connect(self._on_error)
        session.tasks.busy_changed.connect(self._on_busy)

    def message(self, text: str) -> None:
        self.window.statusBar().showMessage(text)

    def show_device(self, device: str) -> None:
        self.device_label.setText(f"Device: {device}")

    # -- the run ------------------------------------------------------------------------

    def show_loading(self, dataset: str) -> None:
        self._run_info = None
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.bar.setFormat("Loading data...")
        self.label.setText(f"Loading {one_line(dataset)}...")

    def show_opened(self, name: str, preset: str, epochs: int) -> None:
        self._run_info = None
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.bar.setFormat("Opened")
        self.label.setText(f"{one_line(name)}: {preset}, {plural(epochs, 'epoch')} trained")

    def show_state(self, state: RunState) -> None:
        if state != PAUSED and self._paused_at is not None:  # resumed (or stopped): the pause is not run time
            self._started_at += time.perf_counter() - self._paused_at
            self._paused_at = None
        if state == PAUSED:
            self._paused_at = time.perf_counter()
            self.bar.setFormat("Paused  %p%")
            self.message("Paused. Press Resume (F6) to go on.")
            self._show_run_line("paused")
        elif state == STOPPING:
            self.bar.setFormat("Stopping...")
            self._show_run_line("stopping")
        elif state == TRAINING:
            self.bar.setFormat("%p%")
            self.message("Training...")
            self._show_run_line(None)
        elif state == LOADING:
            self.bar.setFormat("Loading data...")
        elif state == IDLE and (self._error is not None or self.bar.format() == "Loading data..."):
            self._show_failure()

    def _on_error(self, message: str) -> None:
        self._error = message
        if self.session.state not in (LOADING, TRAINING, PAUSED, STOPPING):
            self._show_failure()

    def _show_failure(self) -> None:
        """A run that ended before or while training: say so, not 'Loading...' or 'Training...'."""
        error, self._error = self._error, None
        self.bar.setFormat("Failed")
        self._last_step = None
        self.label.setText("The run could not start or stopped with an error. Press Start (F5) to try again.")
        first = one_line(error.split("\n\n")[0]) if error else "the run failed"
        self.message(f"Stopped: {first}")

    def _on_run_started(self, event: RunStarted) -> None:
        self._run_info = event
        self._started_at = time.perf_counter()
        self._paused_at = None
        self._last_step = None
        self.bar.setRange(0, max(1, event.epochs * event.steps_per_epoch))
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        if event.compiled:
            # The first step compiles the step: seconds (tens the first time on a machine),
            # with nothing else moving; say so where the run's progress is read.
            self.label.setText("Compiling the training step (a few seconds; longer the first time on this "
                               "machine)...")
        self.show_device(f"{event.device} ({event.precision}{', compiled' if event.compiled else ''})")

    def _on_step(self, event: StepLoss) -> None:
        info = self._run_info
        if info is None:
            return
        self._last_step = event
        self.bar.setValue(self._steps_done(event, info))
        self._show_run_line(None)

    @staticmethod
    def _steps_done(event: StepLoss, info: RunStarted) -> int:
        return (event.epoch - info.start_epoch - 1) * info.steps_per_epoch + event.step

    def _show_run_line(self, halted: str | None) -> None:
        """The run's line: where it is, and while it trains the ETA and speed; ``halted``
        ("paused", "stopping") takes their place, since neither means anything then."""
        info, event = self._run_info, self._last_step
        if info is None or event is None:
            return
        where = f"Epoch {event.epoch}/{info.start_epoch + info.epochs}  ·  step {event.step}/{info.steps_per_epoch}"
        if halted is not None:
            self.label.setText(f"{where}  ·  {halted}  ·  loss {event.loss:.2f}")
            return
        done, total = self._steps_done(event, info), info.epochs * info.steps_per_epoch
        elapsed = time.perf_counter() - self._started_at
        eta = elapsed / max(done, 1) * (total - done)
        self.label.setText(f"{where}  ·  ETA {format_eta(eta)}  ·  {event.samples_per_s:,.0f} samples/s  ·  "
                           f"loss {event.loss:.2f}")

    def _on_epoch(self, event: EpochEnd) -> None:
        terms = ", ".join(f"{k} {v:.2f}" for k, v in event.test.items() if k != "loss")
        self.message(f"Epoch {event.epoch}: test loss {event.test['loss']:.2f}"
                     + (f" ({terms})" if terms else "") + f" in {event.seconds:.1f} s")

    def _on_run_finished(self, result: RunResult) -> None:
        """The run is over: the bar and the line say how it ended (no ETA, no speed), the
        status bar what it left."""
        history = self.session.history
        last = history.epochs[-1]["test"]["loss"] if history.epochs else None
        summary = f"test loss {last:.2f}" if last is not None else "no epoch finished"
        info, self._last_step, self._paused_at = self._run_info, None, None
        ended = where_it_ended(result, history, info.steps_per_epoch if info is not None else None)
        if result.status == "diverged":
            self.bar.setFormat("Diverged")
            self.label.setText(f"Diverged {ended}; {summary}")
        elif result.status == "stopped":
            self.bar.setFormat("Stopped")
            self.label.setText(f"Stopped {ended}; {summary}")
            self.message(f"Stopped {ended}; {summary}.")
        else:
            self.bar.setFormat("Done")
            self.bar.setValue(self.bar.maximum())
            self.label.setText(f"Finished {ended}; {summary}")
            short = ""
            if info is not None and info.epochs * info.steps_per_epoch < TOO_FEW_STEPS:
                short = (f" Only {plural(info.epochs * info.steps_per_epoch, 'training step')}: too few to learn "
                         "much; train for more epochs (Training > Continue training).")
            self.message(f"Finished {ended}; {summary}. Save it with Ctrl+S.{short}")

    def _on_setting_changed(self, event: SettingChanged) -> None:
        self.message(f"{'Learning rate' if event.name == 'lr' else 'Beta'} is now {event.value:g}")

    def _on_busy(self, labels: list[str]) -> None:
        self.busy_label.setText(("Working: " + ", ".join(labels) + "...") if labels else "")
