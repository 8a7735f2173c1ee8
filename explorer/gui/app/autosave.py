"""Autosave: how often the running model is kept, bringing a kept run back, and the offer
after a crash.

Each run is autosaved to its own file (``runtime.recovery.AutosaveStore`` keeps the last
few), so a new run never erases the previous one. A restored run is an untitled document:
saving it asks for a name, so it can never overwrite the autosave it came from. An
autosave that fails to open is moved aside and never offered again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from explorer.display import one_line, plural
from explorer.gui.app.dialogs import Button, Icon
from explorer.gui.state.settings import read_flag, read_int
from explorer.paths import data_dir
from explorer.runtime.recovery import AutosaveStore, SessionLock

if TYPE_CHECKING:
    from explorer.gui.app.main_window import MainWindow

CHOICES = ((0, "&Off"), (1, "Every &epoch"), (2, "Every &2 epochs"), (5, "Every &5 epochs"),
           (10, "Every &10 epochs"))
DEFAULT_EVERY = 1


def autosave_folder() -> Path:
    return data_dir() / "autosave"


def autosave_store() -> AutosaveStore:
    return AutosaveStore(autosave_folder())


def session_lock() -> SessionLock:
    """The crash lock; an unusable one is set aside with one line on stderr (runtime.recovery)."""
    return SessionLock(autosave_folder() / "running.json")


def _when(path: Path, fmt: str) -> str | None:
    """When ``path`` was saved, or None when it is gone (a file listed a moment ago may not be)."""
    try:
        return time.strftime(fmt, time.localtime(path.stat().st_mtime))
    except (OSError, ValueError, OverflowError):
        return None


class AutosaveCommands:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.session = window.session
        self.store = autosave_store()
        self.group = QActionGroup(window)
        self.actions: dict[int, QAction] = {}
        for every, text in CHOICES:
            action = QAction(text, window, checkable=True)
            action.setStatusTip("How often a checkpoint of the running model is kept, to restore after a crash")
            action.triggered.connect(lambda _=False, n=every: self.set_every(n))
            self.group.addAction(action)
            self.actions[every] = action
        self.set_every(self._saved_every())

    def fill_menu(self, menu: QMenu) -> None:
        for action in self.actions.values():
            menu.addAction(action)
        menu.addSeparator()
        self.runs_menu = menu.addMenu("Restore an autosaved &run")
        self.runs_menu.aboutToShow.connect(self._fill_runs_menu)

    def _saved_every(self) -> int:
        settings = self.window.settings
        if settings.value("training/autosave_every") is None:  # the setting of earlier versions: on or off
            return DEFAULT_EVERY if read_flag(settings, "training/autosave", True) else 0
        every = read_int(settings, "training/autosave_every", DEFAULT_EVERY, 0, max(self.actions))
        return every if every in self.actions else DEFAULT_EVERY

    def set_every(self, every: int) -> None:
        """0 turns autosave off; otherwise a checkpoint every ``every`` epochs."""
        self.actions[every].setChecked(True)
        self.session.autosave_store = self.store if every > 0 else None
        self.session.autosave_every = max(every, 1)
        self.window.settings.setValue("training/autosave_every", every)

    # -- restoring ------------------------------------------------------------------------

    def _fill_runs_menu(self) -> None:
        self.runs_menu.clear()
        runs = self.store.runs()
        if not runs:
            self.runs_menu.addAction("(none yet)").setEnabled(False)
        for path in runs:
            when = _when(path, "%Y-%m-%d %H:%M:%S") or "(gone)"
            action = self.runs_menu.addAction(f"{when}  ({one_line(path.name)})")
            action.triggered.connect(lambda checked=False, p=path: self.restore(p))

    def restore(self, path: Path | None = None) -> None:
        """Bring back an autosaved run (the newest by default), asking first if the current
        model has unsaved work."""
        path = path or self.store.latest()
        if path is None:
            self.window.dialogs.message(Icon.Information, "Nothing to restore", "There is no autosaved run.")
            return
        self.window.files.then_if_saved_or_discarded("restoring an autosaved run", lambda: self.restore_now(path))

    def restore_now(self, path: Path) -> bool:
        window = self.window
        if self.session.is_running:
            window.dialogs.message(Icon.Information, "Cannot restore now",
                                   "Stop the current training run before restoring an autosaved one.")
            return False
        def restored() -> None:
            self.session.document.restored()
            self.session.adopt_autosave(path)  # continuing it keeps writing the same autosave
            epochs = plural(self.session.history.last_epoch, "epoch")
            window.statusBar().showMessage(f"Restored the autosaved run ({epochs}); save it with Ctrl+S")

        # A file that fails to open is broken itself: set aside, never offered again.
        return window.files.open_checkpoint(str(path), remember=False, on_opened=restored,
                                            on_failed=lambda: self.store.set_aside(path))

    def offer_after_crash(self) -> None:
        """After a crash, offer the run that was autosaved before it."""
        path = self.store.latest()
        if path is None or self.session.has_model or self.session.is_running:
            return
        when = _when(path, "%Y-%m-%d %H:%M")
        if when is None:
            return
        self.window.dialogs.offer(
            Icon.Question, "Restore the last run?",
            f"Latent Explorer did not close normally last time. Restore the run it autosaved at {when}?",
            "Restore", "restoreAutosave", lambda: self.restore_now(path), Button.Discard)
