"""The main window: the latent plane in the middle, the training panel, the current code
with its sliders, live loss curves, reconstructions and the generating views in docks.

It only renders and forwards intent: every action goes to the TrainingSession, and the
window follows the session's signals. Dialogs are opened non-modally (``open()``), so a
message never blocks the event loop that keeps the views painting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QFont, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QToolBar,
    QWidget,
)

from explorer.errors import UserError
from explorer.gui.views.anomaly_view import AnomalyView
from explorer.gui.views.code_view import CodeView
from explorer.gui.views.compression_view import CompressionView
from explorer.gui.views.denoise_view import DenoiseView
from explorer.gui.views.interpolation_view import InterpolationView
from explorer.gui.views.latent_plane import LatentPlane
from explorer.gui.state.latent_state import LatentState
from explorer.gui.views.loss_plot import LossPlot
from explorer.gui.views.recon_view import ReconstructionView
from explorer.runtime.recovery import SessionLock
from explorer.gui.views.samples_view import SamplesView
from explorer.gui.state.session import IDLE, LOADING, PAUSED, STOPPING, TRAINING, TrainingSession
from explorer.gui.views.training_panel import TrainingPanel
from explorer.gui.views.traversal_view import TraversalView
from explorer.paths import data_dir

AUTOSAVE_CHOICES = ((0, "&Off"), (1, "Every &epoch"), (2, "Every &2 epochs"), (5, "Every &5 epochs"),
                    (10, "Every &10 epochs"))


def autosave_path() -> Path:
    return data_dir() / "autosave" / "last-run.safetensors"
from explorer.training.events import EpochEnd, RunResult, RunStarted, SettingChanged, StepLoss

MAX_RECENT = 8
CHECKPOINT_FILTER = "Latent Explorer checkpoints (*.safetensors)"
CODES_FILTER = "CSV (*.csv);;NumPy arrays (*.npy)"


def default_settings() -> QSettings:
    return QSettings("Latent Explorer", "Latent Explorer")


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, session: TrainingSession | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else default_settings()
        self.session = session if session is not None else TrainingSession(self)
        self.setWindowTitle("Latent Explorer")
        self.setDockNestingEnabled(True)
        self.message_box: QMessageBox | None = None
        self._run_started_at = 0.0
        self._run_info: RunStarted | None = None
        self._base_font_size = QApplication.font().pointSizeF()

        self.latent = LatentState(self.session, self)
        self.plane = LatentPlane(self.latent)
        self.setCentralWidget(self.plane)
        self.panel = TrainingPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(self.panel.sizeHint().width() + 24)
        self.panel_dock = self._dock("Training settings", "trainingDock", scroll, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.code_view = CodeView(self.latent)
        self.code_dock = self._dock("Latent code", "codeDock", self.code_view, Qt.DockWidgetArea.RightDockWidgetArea)
        self.loss_plot = LossPlot(self.session)
        self.loss_dock = self._dock("Loss curves", "lossDock", self.loss_plot, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.recon_view = ReconstructionView(self.session)
        self.recon_dock = self._dock("Reconstructions", "reconDock", self.recon_view,
                                     Qt.DockWidgetArea.BottomDockWidgetArea)
        self.samples_view = SamplesView(self.latent)
        self.samples_dock = self._dock("Samples", "samplesDock", self.samples_view,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.interpolation_view = InterpolationView(self.latent)
        self.interpolation_dock = self._dock("Interpolation", "interpolationDock", self.interpolation_view,
                                             Qt.DockWidgetArea.BottomDockWidgetArea)
        self.traversal_view = TraversalView(self.latent)
        self.traversal_dock = self._dock("Traversal", "traversalDock", self.traversal_view,
                                         Qt.DockWidgetArea.BottomDockWidgetArea)
        self.denoise_view = DenoiseView(self.session)
        self.denoise_dock = self._dock("Denoising", "denoiseDock", self.denoise_view,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.anomaly_view = AnomalyView(self.session)
        self.anomaly_dock = self._dock("Anomalies", "anomalyDock", self.anomaly_view,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.compression_view = CompressionView(self.session)
        self.compression_dock = self._dock("Compression", "compressionDock", self.compression_view,
                                           Qt.DockWidgetArea.BottomDockWidgetArea)
        # Two tab groups side by side, so each tab's title fits at the default size: training
        # and the uses on the left, images generated from the code on the right.
        self.splitDockWidget(self.loss_dock, self.recon_dock, Qt.Orientation.Horizontal)
        for dock in (self.denoise_dock, self.anomaly_dock, self.compression_dock):
            self.tabifyDockWidget(self.loss_dock, dock)
        for dock in (self.samples_dock, self.interpolation_dock, self.traversal_dock):
            self.tabifyDockWidget(self.recon_dock, dock)
        self.loss_dock.raise_()
        self.recon_dock.raise_()
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)

        self._make_actions()
        self._make_menus_and_toolbar()
        self._make_status_bar()
        self._connect_session()
        self.panel.restore_settings(self.settings)
        self.plane.restore_settings(self.settings)
        self._apply_font_delta(int(self.settings.value("view/font_delta", 0)))
        self.resizeDocks([self.panel_dock, self.code_dock], [340, 360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.loss_dock], [270], Qt.Orientation.Vertical)
        self.resizeDocks([self.loss_dock, self.recon_dock], [1, 1], Qt.Orientation.Horizontal)
        self.resize(1280, 800)
        self._default_size_pending = self.settings.value("window/geometry") is None
        self._restore_layout()
        self._update_for_state(self.session.state)
        # Taken when first shown: tells the next start whether this session crashed.
        self._lock = SessionLock(data_dir() / "autosave" / "running.json")
        self._lock_checked = False

    # -- construction ------------------------------------------------------------------

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut is not None else tip)
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        return action

    def _make_actions(self) -> None:
        self.start_action = self._action("&Start", self.start_training, "F5", "Start training from scratch")
        self.continue_action = self._action("&Continue training", self.continue_training, "Ctrl+F5",
                                            "Train the current model for more epochs")
        self.pause_action = self._action("&Pause", self.toggle_pause, "F6", "Pause or resume training")
        self.stop_action = self._action("S&top", self.session.stop, "Shift+F5", "Stop training")
        # Autosave every N epochs (0 = off); the last epoch of a run is always kept.
        self.autosave_group = QActionGroup(self)
        self.autosave_actions: dict[int, QAction] = {}
        for every, text in AUTOSAVE_CHOICES:
            action = self._action(text, lambda _=False, n=every: self.set_autosave_every(n),
                                  tip="How often a checkpoint of the running model is kept, to restore "
                                      "after a crash", checkable=True)
            self.autosave_group.addAction(action)
            self.autosave_actions[every] = action
        self.set_autosave_every(self._saved_autosave_every())
        self.restore_autosave_action = self._action("Restore last &autosave", self.restore_autosave,
                                                    tip="Open the run the app last autosaved")
        self.open_action = self._action("&Open checkpoint...", self.ask_open, QKeySequence.StandardKey.Open,
                                        "Open a trained model")
        self.save_action = self._action("&Save", self.save, QKeySequence.StandardKey.Save, "Save the model")
        self.save_as_action = self._action("Save &as...", self.ask_save_as, QKeySequence.StandardKey.SaveAs,
                                           "Save the model to a new file")
        self.export_curves_action = self._action("Export loss curves as PNG...", self.ask_export_curves)
        self.export_recon_action = self._action("Export reconstructions as PNG...", self.ask_export_recon)
        self.export_plane_action = self._action("Export latent plane as PNG...",
                                                lambda: self._ask_export("latent plane", "latent-plane.png",
                                                                         self.plane.export_png))
        self.export_manifold_action = self._action("Export manifold grid as PNG...",
                                                   lambda: self._ask_export("manifold grid", "manifold.png",
                                                                            self.plane.export_manifold_png))
        self.export_samples_action = self._action("Export samples as PNG...",
                                                  lambda: self._ask_export("samples", "samples.png",
                                                                           self.samples_view.export_png))
        self.export_interp_action = self._action("Export interpolation as PNG...",
                                                 lambda: self._ask_export("interpolation", "interpolation.png",
                                                                          self.interpolation_view.export_png))
        self.export_traversal_action = self._action("Export traversal as PNG...",
                                                    lambda: self._ask_export("traversal", "traversal.png",
                                                                             self.traversal_view.export_png))
        self.export_denoise_action = self._action("Export denoising as PNG...",
                                                  lambda: self._ask_export("denoising", "denoising.png",
                                                                           self.denoise_view.export_png))
        self.export_anomalies_action = self._action("Export most anomalous images as PNG...",
                                                    lambda: self._ask_export("anomalies", "anomalies.png",
                                                                             self.anomaly_view.export_png))
        self.generate_folder_action = self._action(
            "Generate a dataset folder...", self.ask_generate_folder,
            tip="Write generated images (the Samples view's count, per class for conditional models) as an "
                "image folder the app can train on, plus images.npy")
        self.export_codes_action = self._action("Export test codes (CSV/NPY)...",
                                                lambda: self._ask_export("test codes", "codes.csv",
                                                                         self._export_test_codes, CODES_FILTER))
        self.export_interp_codes_action = self._action(
            "Export interpolation codes (CSV/NPY)...",
            lambda: self._ask_export("interpolation codes", "interpolation-codes.csv",
                                     self.interpolation_view.export_codes, CODES_FILTER))
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.zoom_in_action = self._action("&Larger text", lambda: self._change_font(+1),
                                           QKeySequence.StandardKey.ZoomIn, "Larger text for demos")
        self.zoom_out_action = self._action("&Smaller text", lambda: self._change_font(-1),
                                            QKeySequence.StandardKey.ZoomOut)
        self.zoom_reset_action = self._action("&Normal text size", lambda: self._apply_font_delta(0), "Ctrl+0")

    def _make_menus_and_toolbar(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        export_menu = file_menu.addMenu("&Export")
        for action in (self.export_plane_action, self.export_manifold_action, self.export_curves_action,
                       self.export_recon_action, self.export_samples_action, self.export_interp_action,
                       self.export_traversal_action, self.export_denoise_action, self.export_anomalies_action):
            export_menu.addAction(action)
        export_menu.addSeparator()
        export_menu.addAction(self.export_codes_action)
        export_menu.addAction(self.export_interp_codes_action)
        export_menu.addSeparator()
        export_menu.addAction(self.generate_folder_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        train_menu = bar.addMenu("&Training")
        for action in (self.start_action, self.continue_action, self.pause_action, self.stop_action):
            train_menu.addAction(action)
        train_menu.addSeparator()
        autosave_menu = train_menu.addMenu("&Autosave")
        for action in self.autosave_actions.values():
            autosave_menu.addAction(action)
        autosave_menu.addSeparator()
        autosave_menu.addAction(self.restore_autosave_action)
        view_menu = bar.addMenu("&View")
        for action in (self.zoom_in_action, self.zoom_out_action, self.zoom_reset_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for dock in (self.panel_dock, self.code_dock, self.loss_dock, self.recon_dock, self.samples_dock,
                     self.interpolation_dock, self.traversal_dock, self.denoise_dock, self.anomaly_dock,
                     self.compression_dock):
            view_menu.addAction(dock.toggleViewAction())

        toolbar = QToolBar("Training", self)
        toolbar.setObjectName("trainingToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.start_action, self.pause_action, self.stop_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        self.progress = QProgressBar(objectName="progress")
        self.progress.setMinimumWidth(240)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        self.progress.setValue(0)
        toolbar.addWidget(self.progress)
        self.progress_label = QLabel("Press Start (F5) to train", objectName="progressLabel")
        self.progress_label.setContentsMargins(8, 0, 8, 0)
        toolbar.addWidget(self.progress_label)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _make_status_bar(self) -> None:
        self.device_label = QLabel("", objectName="deviceLabel")
        self.statusBar().addPermanentWidget(self.device_label)
        self._show_device(self.panel.device.currentData())
        self.statusBar().showMessage("Ready: pick a dataset and a model, then press Start (F5).")

    def _connect_session(self) -> None:
        s = self.session
        s.state_changed.connect(self._update_for_state)
        s.run_started.connect(self._on_run_started)
        s.step.connect(self._on_step)
        s.epoch.connect(self._on_epoch)
        s.run_finished.connect(self._on_run_finished)
        s.error.connect(lambda msg: self._show_message(QMessageBox.Icon.Critical, "Training failed", msg))
        s.warning.connect(lambda msg: self._show_message(QMessageBox.Icon.Warning, "Latent Explorer", msg))
        s.setting_changed.connect(self._on_setting_changed)
        self.panel.lr.sigValueChanged.connect(lambda sb: self.session.set_lr(float(sb.value())))
        self.panel.beta.valueChanged.connect(lambda v: self.session.set_beta(float(v)))
        self.panel.device.currentIndexChanged.connect(lambda: self._show_device(self.panel.device.currentData()))

    # -- training ------------------------------------------------------------------------

    def start_training(self, continue_training: bool = False) -> None:
        if self.session.is_running:
            return
        try:
            model, data, train = self.panel.configs()
        except UserError as exc:
            self._show_message(QMessageBox.Icon.Warning, "Cannot start", str(exc))
            return
        self._run_info = None
        self.progress.setValue(0)
        self.progress.setFormat("Loading data...")
        self.progress_label.setText(f"Loading {data.dataset}...")
        self.session.start(model, data, train, continue_training=continue_training)

    def continue_training(self) -> None:
        if not self.session.has_model:
            self.start_training()
            return
        model, _, _ = self.panel.configs()
        current = self.session.model_config
        if current is not None and (model.preset, model.latent_dim) != (current.preset, current.latent_dim):
            self._show_message(QMessageBox.Icon.Information, "Cannot continue",
                               "The model settings changed since this model was trained; press Start to train "
                               "a new model with them.")
            return
        self.start_training(continue_training=True)

    def toggle_pause(self) -> None:
        if self.session.state == PAUSED:
            self.session.resume()
        elif self.session.state == TRAINING:
            self.session.pause()

    def _saved_autosave_every(self) -> int:
        value = self.settings.value("training/autosave_every")
        if value is None:  # the setting of earlier versions: on or off
            return 1 if str(self.settings.value("training/autosave", "true")) == "true" else 0
        try:
            every = int(value)
        except (TypeError, ValueError):
            return 1
        return every if every in self.autosave_actions else 1

    def set_autosave_every(self, every: int) -> None:
        """0 turns autosave off; otherwise a checkpoint every ``every`` epochs."""
        self.autosave_actions[every].setChecked(True)
        self.session.autosave_path = autosave_path() if every > 0 else None
        self.session.autosave_every = max(every, 1)
        self.settings.setValue("training/autosave_every", every)

    def restore_autosave(self) -> bool:
        """Open the autosaved run as a new, unsaved model (saving asks for a file name, so
        the next autosave cannot overwrite what the user saved)."""
        path = autosave_path()
        if not path.exists():
            self._show_message(QMessageBox.Icon.Information, "Nothing to restore", "There is no autosaved run.")
            return False
        if not self.open_checkpoint(str(path)):
            return False
        self.session.checkpoint_path = None
        self.session.dirty = True
        self.setWindowTitle("Restored run - Latent Explorer")
        self.statusBar().showMessage(f"Restored the autosaved run ({self.session.history.last_epoch} epoch(s)); "
                                     "save it with Ctrl+S")
        return True

    def _offer_restore(self) -> None:
        """After a crash, offer the run that was autosaved before it."""
        path = autosave_path()
        if not path.exists() or self.session.has_model or self.session.is_running:
            return
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        self._offer(QMessageBox.Icon.Question, "Restore the last run?",
                    f"Latent Explorer did not close normally last time. Restore the run it autosaved at {when}?",
                    "Restore", "restoreAutosave", self.restore_autosave, QMessageBox.StandardButton.Discard)

    def _update_for_state(self, state: str) -> None:
        running = state in (LOADING, TRAINING, PAUSED, STOPPING)
        self.start_action.setEnabled(not running)
        self.continue_action.setEnabled(not running and self.session.has_model)
        self.pause_action.setEnabled(state in (TRAINING, PAUSED))
        self.pause_action.setText("&Resume" if state == PAUSED else "&Pause")
        self.stop_action.setEnabled(state in (LOADING, TRAINING, PAUSED))
        self.open_action.setEnabled(not running)
        self.recent_menu.setEnabled(not running)
        self.panel.set_running(running)
        if state == PAUSED:
            self.progress.setFormat("Paused  %p%")
            self.statusBar().showMessage("Paused. Press Resume (F6) to go on.")
        elif state == STOPPING:
            self.progress.setFormat("Stopping...")
        elif state == TRAINING:
            self.statusBar().showMessage("Training...")
        elif state == IDLE and self._run_info is None:
            self.progress.setFormat("Ready")

    def _on_run_started(self, event: RunStarted) -> None:
        self._run_info = event
        self._run_started_at = time.perf_counter()
        self.progress.setRange(0, event.epochs * event.steps_per_epoch)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self._show_device(f"{event.device} ({event.precision})")

    def _on_step(self, event: StepLoss) -> None:
        info = self._run_info
        if info is None:
            return
        done = (event.epoch - info.start_epoch - 1) * info.steps_per_epoch + event.step
        total = info.epochs * info.steps_per_epoch
        self.progress.setValue(done)
        elapsed = time.perf_counter() - self._run_started_at
        eta = elapsed / max(done, 1) * (total - done)
        self.progress_label.setText(
            f"Epoch {event.epoch}/{info.start_epoch + info.epochs}  ·  step {event.step}/{info.steps_per_epoch}  ·  "
            f"ETA {format_eta(eta)}  ·  {event.samples_per_s:,.0f} samples/s  ·  loss {event.loss:.2f}")

    def _on_epoch(self, event: EpochEnd) -> None:
        terms = ", ".join(f"{k} {v:.2f}" for k, v in event.test.items() if k != "loss")
        self.statusBar().showMessage(f"Epoch {event.epoch}: test loss {event.test['loss']:.2f}"
                                     + (f" ({terms})" if terms else "") + f" in {event.seconds:.1f} s")

    def _on_run_finished(self, result: RunResult) -> None:
        last = self.session.history.epochs[-1]["test"]["loss"] if self.session.history.epochs else None
        summary = f"test loss {last:.2f}" if last is not None else "no epoch finished"
        if result.status == "diverged":
            self.progress.setFormat("Diverged")
            self._offer_lower_lr(result)
        elif result.status == "stopped":
            self.progress.setFormat("Stopped")
            self.statusBar().showMessage(f"Stopped after {result.epochs_completed} epoch(s); {summary}.")
        else:
            self.progress.setFormat("Done")
            self.progress.setValue(self.progress.maximum())
            self.statusBar().showMessage(f"Finished {result.epochs_completed} epoch(s); {summary}. "
                                         "Save it with Ctrl+S.")

    def _offer_lower_lr(self, result: RunResult) -> None:
        """Say why training paused and offer the usual cure: the same weights (the last good
        ones, already in the views) with a learning rate ten times lower."""
        lower = max(self.panel.lr.value() / 10, self.panel.lr.opts["bounds"][0])
        def retry() -> None:
            self.panel.lr.setValue(lower)
            self.continue_training()

        self._offer(QMessageBox.Icon.Warning, "Training paused", f"Training paused: {result.message}",
                    f"Continue with learning rate {lower:.2g}", "retryLowerLr", retry,
                    QMessageBox.StandardButton.Close)

    def _on_setting_changed(self, event: SettingChanged) -> None:
        self.statusBar().showMessage(f"{'Learning rate' if event.name == 'lr' else 'Beta'} is now {event.value:g}")

    def _show_device(self, device: str) -> None:
        self.device_label.setText(f"Device: {device}")

    # -- files ---------------------------------------------------------------------------

    def ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self._last_folder(), CHECKPOINT_FILTER)
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str) -> bool:
        try:
            self.session.open(path)
        except UserError as exc:
            self._show_message(QMessageBox.Icon.Warning, "Cannot open checkpoint", str(exc))
            return False
        s = self.session
        assert s.model_config is not None and s.data_config is not None and s.train_config is not None
        self.panel.show_configs(s.model_config, s.data_config, s.train_config)
        self._add_recent(path)
        self._run_info = None
        self.progress.setFormat("Opened")
        self.progress_label.setText(f"{Path(path).name}: {s.model_config.preset or 'custom'}, "
                                    f"{s.history.last_epoch} epoch(s) trained")
        self.setWindowTitle(f"{Path(path).name} - Latent Explorer")
        self.statusBar().showMessage(f"Opened {path}")
        self._update_for_state(self.session.state)
        return True

    def save(self) -> bool:
        if self.session.checkpoint_path is None:
            return self.ask_save_as()
        return self.save_to(str(self.session.checkpoint_path))

    def ask_save_as(self) -> bool:
        suggested = str(Path(self._last_folder()) / f"{self.panel.preset.currentData()}.safetensors")
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", suggested, CHECKPOINT_FILTER)
        return self.save_to(path) if path else False

    def save_to(self, path: str) -> bool:
        if not path.endswith(".safetensors"):
            path += ".safetensors"
        try:
            self.session.save(path)
        except UserError as exc:
            self._show_message(QMessageBox.Icon.Warning, "Cannot save", str(exc))
            return False
        self._add_recent(path)
        self.setWindowTitle(f"{Path(path).name} - Latent Explorer")
        self.statusBar().showMessage(f"Saved {path}")
        return True

    def ask_export_curves(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export loss curves", str(Path(self._last_folder()) / "losses.png"),
                                              "PNG images (*.png)")
        if path:
            self.loss_plot.export_png(path)
            self.statusBar().showMessage(f"Exported {path}")

    def ask_export_recon(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export reconstructions",
                                              str(Path(self._last_folder()) / "reconstructions.png"),
                                              "PNG images (*.png)")
        if not path:
            return
        try:
            self.recon_view.export_png(path)
        except (ValueError, UserError) as exc:
            self._show_message(QMessageBox.Icon.Information, "Nothing to export", str(exc))
            return
        self.statusBar().showMessage(f"Exported {path}")

    def _ask_export(self, what: str, name: str, write, filter: str = "PNG images (*.png)") -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", str(Path(self._last_folder()) / name), filter)
        if path:
            self.export_to(path, what, write)

    def export_to(self, path: str, what: str, write) -> bool:
        try:
            write(path)
        except (ValueError, UserError) as exc:
            self._show_message(QMessageBox.Icon.Information, f"Cannot export the {what}", str(exc))
            return False
        self.statusBar().showMessage(f"Exported {path}")
        return True

    def ask_generate_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Generate into a new or empty folder", self._last_folder())
        if folder:
            self.generate_folder(folder)

    def generate_folder(self, folder: str) -> None:
        """Generate images off the GUI thread and write them as an image folder."""
        import numpy as np

        from explorer.analysis.dataset_export import write_image_folder
        from explorer.analysis.latents import sample_codes
        from explorer.analysis.manifold import decode_codes
        from explorer.runtime.threads import ModelCopy

        model, stats = self.session.view_model, self.latent.stats
        if model is None or (not model.is_generative and stats is None):
            self._show_message(QMessageBox.Icon.Information, "Nothing to generate", "Train or open a model first.")
            return
        copy, config = ModelCopy.of(model), model.config
        n, seed = self.samples_view.side.value() ** 2, self.samples_view.seed.value()
        names = self.latent.class_names

        def work() -> int:
            decoder = copy.build()
            labels = np.repeat(np.arange(config.num_classes), n) if config.conditional else None
            codes = sample_codes(config, stats, n * (config.num_classes if config.conditional else 1), seed)
            return len(write_image_folder(folder, decode_codes(decoder, codes, labels), labels, names))

        self.statusBar().showMessage(f"Generating images into {folder}...")
        self.session.run_in_background(
            work, lambda written: self.statusBar().showMessage(f"Wrote {written} images to {folder}"),
            lambda message: self._show_message(QMessageBox.Icon.Warning, "Could not generate", message),
            name="latent-explorer-generate")

    def _export_test_codes(self, path: str) -> None:
        from explorer.analysis.export import save_codes

        stats = self.latent.stats
        if stats is None:
            raise ValueError("there are no test codes yet: train a model or open one")
        if not path.lower().endswith((".csv", ".npy")):
            raise ValueError("codes are written as .csv or .npy")
        save_codes(path, stats.codes, stats.labels)

    def _recent(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("files/recent", recent[:MAX_RECENT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self._recent()
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_checkpoint(p))

    def _last_folder(self) -> str:
        recent = self._recent()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    # -- view ----------------------------------------------------------------------------

    def _change_font(self, step: int) -> None:
        self._apply_font_delta(int(self.settings.value("view/font_delta", 0)) + step)

    def _apply_font_delta(self, delta: int) -> None:
        delta = max(-4, min(12, delta))
        font = QFont(QApplication.font())
        font.setPointSizeF(max(6.0, self._base_font_size + delta))
        QApplication.setFont(font)
        self.settings.setValue("view/font_delta", delta)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        # Until the window is first shown, tabbed docks count their full title widths in the
        # minimum size, and 1280 px gets widened to ~1400; once shown they elide and it fits.
        if self._default_size_pending:
            self._default_size_pending = False
            self.resize(1280, 800)
        if not self._lock.held and not self._lock_checked:
            self._lock_checked = True
            if self._lock.acquire().crashed:
                QTimer.singleShot(0, self._offer_restore)

    def _offer(self, icon: QMessageBox.Icon, title: str, text: str, action_text: str, action_name: str,
               action: Callable[[], object], decline: QMessageBox.StandardButton) -> None:
        """A non-modal question with one way on (the default button) and one way out."""
        box = QMessageBox(icon, title, text, decline, self)
        accept = box.addButton(action_text, QMessageBox.ButtonRole.AcceptRole)
        accept.setObjectName(action_name)
        box.setDefaultButton(accept)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.message_box = box

        def answered() -> None:
            self.message_box = None
            if box.clickedButton() is accept:
                action()

        box.finished.connect(lambda _=0: answered())
        box.open()

    def _show_message(self, icon: QMessageBox.Icon, title: str, text: str) -> None:
        """A non-modal message: training views keep painting behind it."""
        box = QMessageBox(icon, title, text.split("\n\n")[0], QMessageBox.StandardButton.Ok, self)
        if "\n\n" in text:
            box.setDetailedText(text)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.message_box = box
        box.finished.connect(lambda _=0: setattr(self, "message_box", None))
        box.open()

    # -- closing -------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Stop and join the worker; keep the model (autosave) and the layout."""
        if self.session.is_running:
            self.statusBar().showMessage("Stopping training...")
        self.latent.shutdown()
        self.session.shutdown()
        if self.session.dirty and self.session.autosave_path is not None and self.session.has_model:
            try:
                self.session.autosave_path.parent.mkdir(parents=True, exist_ok=True)
                self.session.save(self.session.autosave_path)
            except (UserError, OSError):
                pass  # closing must not fail; the per-epoch autosave is still there
        try:
            self.panel.save_settings(self.settings)
        except UserError:
            pass
        self.plane.save_settings(self.settings)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self._lock.release()  # a normal close: nothing to offer next time
        super().closeEvent(event)
