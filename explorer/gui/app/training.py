"""Training commands: Start (a new, untitled model, after asking about unsaved work),
Continue, Pause/Resume, Stop, and the offer to go on at a lower learning rate after a run
diverged.

How long a run trains is said before Start (the training form's plan line) and, once it
starts, in the status line: never in a dialog over the running window. The engine's notices
(epochs raised to reach "At least (steps)", a compile that failed) go to the status line too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.errors import UserError
from explorer.gui.app.dialogs import Button, Icon
from explorer.gui.state.session import PAUSED, TRAINING
from explorer.training.events import RunResult, RunStarted
from explorer.training.run_length import RunPlan, describe_plan

if TYPE_CHECKING:
    from explorer.gui.app.main_window import MainWindow


class TrainingCommands:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.session = window.session
        panel = window.panel
        panel.lr.sigValueChanged.connect(lambda sb: self.session.set_lr(float(sb.value())))
        panel.beta.valueChanged.connect(lambda v: self.session.set_beta(float(v)))
        panel.device.currentIndexChanged.connect(lambda: window.progress.show_device(panel.device.currentData()))
        self.session.run_finished.connect(self._on_run_finished)
        self.session.error.connect(lambda msg: window.dialogs.message(Icon.Critical, "Training failed", msg))
        self.session.warning.connect(lambda msg: window.dialogs.message(Icon.Warning, "Latent Explorer", msg))
        self.session.notice.connect(window.progress.message)
        self.session.run_started.connect(self._say_plan)

    def start(self) -> None:
        """A run from scratch replaces the current model: ask first if it is unsaved."""
        if not self.session.is_running:
            self.window.files.then_if_saved_or_discarded("starting a new run", lambda: self._start(False))

    def continue_training(self) -> None:
        if not self.session.has_model:
            self.start()
            return
        configs = self._panel_configs("Cannot continue")
        if configs is None:
            return
        model = configs[0]
        current = self.session.model_config
        if current is not None and (model.preset, model.latent_dim) != (current.preset, current.latent_dim):
            self.window.dialogs.message(Icon.Information, "Cannot continue",
                                        "The model settings changed since this model was trained; press Start "
                                        "to train a new model with them.")
            return
        self._start(True)

    def _start(self, continuing: bool) -> None:
        if self.session.is_running:
            return
        configs = self._panel_configs("Cannot start")
        if configs is None:
            return
        model, data, train = configs
        self.window.progress.show_loading(data.dataset)
        self.session.start(model, data, train, continue_training=continuing)

    def _panel_configs(self, refusal: str) -> tuple[ModelConfig, DataConfig, TrainConfig] | None:
        """The panel's settings, or None after saying in one message what is wrong with them."""
        try:
            return self.window.panel.configs()
        except UserError as exc:
            self.window.dialogs.message(Icon.Warning, refusal, str(exc))
            return None

    def toggle_pause(self) -> None:
        if self.session.state == PAUSED:
            self.session.resume()
        elif self.session.state == TRAINING:
            self.session.pause()

    def _say_plan(self, event: RunStarted) -> None:
        """The run's length as the engine planned it, in the words of the form's plan line."""
        train = self.session.train_config
        if train is None:
            return
        plan = RunPlan(train_size=event.train_size, batch_size=min(train.batch_size, event.train_size),
                       steps_per_epoch=event.steps_per_epoch, asked_epochs=train.epochs, epochs=event.epochs,
                       min_steps=train.min_steps)
        self.window.progress.message(f"Training {describe_plan(plan)}")

    def _on_run_finished(self, result: RunResult) -> None:
        if result.status == "diverged":
            self._offer_lower_lr(result)

    def _offer_lower_lr(self, result: RunResult) -> None:
        """Say why training paused and offer the usual cure: the same weights (the last good
        ones, already in the views) with a learning rate ten times lower."""
        panel = self.window.panel
        lower = max(panel.lr.value() / 10, panel.lr.opts["bounds"][0])

        def retry() -> None:
            panel.lr.setValue(lower)
            self.continue_training()

        self.window.dialogs.offer(Icon.Warning, "Training paused", f"Training paused: {result.message}",
                                  f"Continue with learning rate {lower:.2g}", "retryLowerLr", retry, Button.Close)
