"""File commands: Open, Open recent, Save, Save as, and the question every action asks
before it would drop unsaved work.

The document (``session.document``) knows the file and the unsaved mark; this module asks
the user and then acts. ``then_if_saved_or_discarded(what, action)`` is the one gate: it
runs ``action`` at once when nothing is unsaved, and otherwise asks Save / Discard /
Cancel first (Save on an untitled model asks for a name; cancelling that cancels the
action too).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from explorer.display import one_line
from explorer.errors import UserError
from explorer.gui.app.dialogs import Icon
from explorer.gui.state.settings import read_text_list

if TYPE_CHECKING:
    from explorer.gui.app.main_window import MainWindow

MAX_RECENT = 8
CHECKPOINT_FILTER = "Latent Explorer checkpoints (*.safetensors)"
SUFFIX = ".safetensors"


class FileCommands:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.session = window.session
        self.settings = window.settings
        # What to do when each open in flight ends: (remember it, then on success, on failure).
        self._opening: dict[Path, tuple[bool, Callable[[], object] | None, Callable[[], object] | None]] = {}
        self.session.opened.connect(self._on_opened)
        self.session.open_failed.connect(self._on_open_failed)

    # -- the gate -----------------------------------------------------------------------

    def then_if_saved_or_discarded(self, what: str, action: Callable[[], object]) -> None:
        """Run ``action`` unless it would drop unsaved work; then ask first."""
        document = self.session.document
        if not (document.has_unsaved_work and self.session.has_model):
            action()
            return

        def save_then() -> None:
            if self.save():
                action()

        self.window.dialogs.save_discard_cancel(
            "Unsaved model",
            f"{document.name} has training that is not saved. Save it before {what}?",
            on_save=save_then, on_discard=action)

    # -- open ---------------------------------------------------------------------------

    def ask_open(self) -> None:
        def choose() -> None:
            path, _ = QFileDialog.getOpenFileName(self.window, "Open checkpoint", self.last_folder(),
                                                  CHECKPOINT_FILTER)
            if path:
                self.open_checkpoint(path)

        self.then_if_saved_or_discarded("opening another model", choose)

    def open_recent(self, path: str) -> None:
        self.then_if_saved_or_discarded("opening another model", lambda: self.open_checkpoint(path))

    def open_checkpoint(self, path: str, remember: bool = True, on_opened: Callable[[], object] | None = None,
                        on_failed: Callable[[], object] | None = None) -> bool:
        """Start opening ``path`` (callers that might drop unsaved work go through the gate);
        False if it cannot start. The file is read in the background; ``remember`` adds it to
        Open recent once it opened. A refused file is one message and changes nothing."""
        try:
            self.session.open(path)
        except UserError as exc:
            self.window.dialogs.message(Icon.Warning, "Cannot open checkpoint", str(exc))
            return False
        self.window.follower.stop()  # opening another model stops following
        self._opening[Path(path)] = (remember, on_opened, on_failed)
        self.window.statusBar().showMessage(f"Opening {one_line(path)}...")
        return True

    def _on_opened(self, path: Path) -> None:
        window, s = self.window, self.session
        remember, on_opened, _ = self._opening.pop(path, (True, None, None))
        assert s.model_config is not None and s.data_config is not None and s.train_config is not None
        window.panel.show_configs(s.model_config, s.data_config, s.train_config)
        if remember:
            self.add_recent(str(path))
        window.progress.show_opened(path.name, s.model_config.preset or "custom", s.history.last_epoch)
        notes = "".join(f"; {note}" for note in s.open_notes)
        window.statusBar().showMessage(one_line(f"Opened {path}{notes}", limit=400))
        if on_opened is not None:
            on_opened()

    def _on_open_failed(self, path: Path, message: str) -> None:
        _, _, on_failed = self._opening.pop(path, (True, None, None))
        if on_failed is not None:
            on_failed()
        self.window.statusBar().showMessage(f"Could not open {one_line(path)}")
        self.window.dialogs.message(Icon.Warning, "Cannot open checkpoint", message)

    # -- follow a run ---------------------------------------------------------------------

    def ask_follow(self) -> None:
        def choose() -> None:
            path, _ = QFileDialog.getOpenFileName(self.window, "Follow run", self.last_folder(), CHECKPOINT_FILTER)
            if path:
                self.follow(path)

        self.then_if_saved_or_discarded("following a run", choose)

    def follow(self, path: str) -> bool:
        """Follow the checkpoint at ``path`` (callers that might drop unsaved work go
        through the gate): read-only, so training is off until Stop following."""
        if self.session.is_running:
            self.window.dialogs.message(Icon.Warning, "Cannot follow a run",
                                        "Stop the current training run before following another.")
            return False
        self.window.follower.follow(path)
        return True

    # -- save ---------------------------------------------------------------------------

    def save(self) -> bool:
        """Save to the document's own file; an untitled model, or the run being followed
        (read-only: its training process keeps rewriting it), asks for a name."""
        path = self.session.writable_path
        if path is None:
            return self.ask_save_as()
        return self.save_to(str(path))

    def ask_save_as(self) -> bool:
        preset = self.session.model_config.preset if self.session.model_config is not None else None
        suggested = str(Path(self.last_folder()) / f"{preset or self.window.panel.preset.currentData()}{SUFFIX}")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save checkpoint", suggested, CHECKPOINT_FILTER)
        return self.save_to(path) if path else False

    def save_to(self, path: str) -> bool:
        if not path.endswith(SUFFIX):
            path += SUFFIX
        try:
            self.session.save(path)
        except UserError as exc:
            self.window.dialogs.message(Icon.Warning, "Cannot save", str(exc))
            return False
        self.add_recent(path)
        self.window.statusBar().showMessage(f"Saved {one_line(path)}")
        return True

    # -- recent files -------------------------------------------------------------------

    def recent(self) -> list[str]:
        return read_text_list(self.settings, "files/recent", MAX_RECENT)

    def add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self.recent() if p != path]
        self.settings.setValue("files/recent", recent[:MAX_RECENT])

    def fill_recent_menu(self) -> None:
        menu = self.window.recent_menu
        menu.clear()
        recent = self.recent()
        if not recent:
            menu.addAction("(none yet)").setEnabled(False)
        for path in recent:
            action = menu.addAction(one_line(path))
            action.triggered.connect(lambda checked=False, p=path: self.open_recent(p))

    def last_folder(self) -> str:
        recent = self.recent()
        return str(Path(recent[0]).parent) if recent else str(Path.home())
