"""The one place that says what the app is doing: the toolbar's progress bar and line
for the training run, and the status bar for messages, the device and background work.

It follows the session's signals only. Each state sets the whole readout, so nothing of
an earlier state (``Loading mnist...`` after a failed load, ``Paused`` after Resume) can
linger.
"""

from __future__ import annotations

import time

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar

from explorer.display import one_line
from explorer.gui.state.session import IDLE, LOADING, PAUSED, STOPPING, TRAINING, RunState, TrainingSession
from explorer.training.events import EpochEnd, RunResult, RunStarted, SettingChanged, StepLoss

# A run shorter than this rarely learns anything worth looking at.
TOO_FEW_STEPS = 500


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RunProgress:
    def __init__(self, window: QMainWindow, session: TrainingSession) -> None:
        self.window = window
        self.session = session
        self._run_info: RunStarted | None = None
        self._error: str | None = None  # the run's error, shown once the session is idle
        self._started_at = 0.0
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
        self.label.setText(f"{one_line(name)}: {preset}, {epochs} epoch(s) trained")

    def show_state(self, state: RunState) -> None:
        if state == PAUSED:
            self.bar.setFormat("Paused  %p%")
            self.message("Paused. Press Resume (F6) to go on.")
        elif state == STOPPING:
            self.bar.setFormat("Stopping...")
        elif state == TRAINING:
            self.bar.setFormat("%p%")
            self.message("Training...")
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
        self.label.setText("The run could not start or stopped with an error. Press Start (F5) to try again.")
        first = one_line(error.split("\n\n")[0]) if error else "the run failed"
        self.message(f"Stopped: {first}")

    def _on_run_started(self, event: RunStarted) -> None:
        self._run_info = event
        self._started_at = time.perf_counter()
        self.bar.setRange(0, max(1, event.epochs * event.steps_per_epoch))
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.show_device(f"{event.device} ({event.precision})")

    def _on_step(self, event: StepLoss) -> None:
        info = self._run_info
        if info is None:
            return
        done = (event.epoch - info.start_epoch - 1) * info.steps_per_epoch + event.step
        total = info.epochs * info.steps_per_epoch
        self.bar.setValue(done)
        elapsed = time.perf_counter() - self._started_at
        eta = elapsed / max(done, 1) * (total - done)
        self.label.setText(
            f"Epoch {event.epoch}/{info.start_epoch + info.epochs}  ·  step {event.step}/{info.steps_per_epoch}  ·  "
            f"ETA {format_eta(eta)}  ·  {event.samples_per_s:,.0f} samples/s  ·  loss {event.loss:.2f}")

    def _on_epoch(self, event: EpochEnd) -> None:
        terms = ", ".join(f"{k} {v:.2f}" for k, v in event.test.items() if k != "loss")
        self.message(f"Epoch {event.epoch}: test loss {event.test['loss']:.2f}"
                     + (f" ({terms})" if terms else "") + f" in {event.seconds:.1f} s")

    def _on_run_finished(self, result: RunResult) -> None:
        history = self.session.history
        last = history.epochs[-1]["test"]["loss"] if history.epochs else None
        summary = f"test loss {last:.2f}" if last is not None else "no epoch finished"
        if result.status == "diverged":
            self.bar.setFormat("Diverged")
        elif result.status == "stopped":
            self.bar.setFormat("Stopped")
            self.message(f"Stopped after {result.epochs_completed} epoch(s); {summary}.")
        else:
            self.bar.setFormat("Done")
            self.bar.setValue(self.bar.maximum())
            short = ""
            info = self._run_info
            if info is not None and info.epochs * info.steps_per_epoch < TOO_FEW_STEPS:
                short = (f" Only {info.epochs * info.steps_per_epoch} training steps: too few to learn much; "
                         "train for more epochs (Training > Continue training).")
            self.message(f"Finished {result.epochs_completed} epoch(s); {summary}. Save it with Ctrl+S.{short}")

    def _on_setting_changed(self, event: SettingChanged) -> None:
        self.message(f"{'Learning rate' if event.name == 'lr' else 'Beta'} is now {event.value:g}")

    def _on_busy(self, labels: list[str]) -> None:
        self.busy_label.setText(("Working: " + ", ".join(labels) + "...") if labels else "")
