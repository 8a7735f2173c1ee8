"""The document: which file the current model belongs to, and whether it has unsaved work.

One object answers "what would this action lose?" for every action that replaces the
model (a new run, Open, Restore, quitting), and what the title bar shows. A new run is an
untitled document, so Save asks for a name instead of writing over the file the previous
model came from; a restored autosave is untitled too, so saving it cannot overwrite the
autosave itself.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, Signal


class Origin(Enum):
    """Where the current model came from (what the title says while it has no file)."""

    EMPTY = "empty"  # no model yet
    NEW_RUN = "new run"  # trained in this window, never saved
    OPENED = "opened"  # read from a file the user chose
    RESTORED = "restored"  # an autosaved run brought back
    GIVEN = "given"  # handed over from Python (explorer.view): a model object, or an encoder and decoder


UNTITLED_NAMES = {Origin.EMPTY: "", Origin.NEW_RUN: "Untitled", Origin.RESTORED: "Restored run",
                  Origin.OPENED: "Untitled", Origin.GIVEN: "From Python"}


class Document(QObject):
    changed = Signal()  # path, origin or the unsaved mark changed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.origin = Origin.EMPTY
        self.modified = False

    # -- queries ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """What the title bar calls this document ('' before there is a model)."""
        return self.path.name if self.path is not None else UNTITLED_NAMES[self.origin]

    @property
    def untitled(self) -> bool:
        return self.path is None

    @property
    def has_unsaved_work(self) -> bool:
        return self.modified and self.origin is not Origin.EMPTY

    # -- what happened ----------------------------------------------------------------------

    def new_run(self) -> None:
        """A run from scratch: a new, untitled document (nothing to lose until it trains)."""
        self._set(None, Origin.NEW_RUN, False)

    def opened(self, path: str | Path) -> None:
        self._set(Path(path), Origin.OPENED, False)

    def given(self, path: str | Path | None = None) -> None:
        """A model handed over from Python: nothing unsaved (its owner holds it), and the
        file it was loaded from, if any."""
        self._set(Path(path) if path is not None else None, Origin.GIVEN, False)

    def restored(self) -> None:
        """An autosave brought back: unsaved, with no file of its own."""
        self._set(None, Origin.RESTORED, True)

    def saved(self, path: str | Path) -> None:
        self._set(Path(path), self.origin if self.origin is not Origin.EMPTY else Origin.OPENED, False)

    def mark_modified(self) -> None:
        if not self.modified and self.origin is not Origin.EMPTY:
            self.modified = True
            self.changed.emit()

    def _set(self, path: Path | None, origin: Origin, modified: bool) -> None:
        if (path, origin, modified) != (self.path, self.origin, self.modified):
            self.path, self.origin, self.modified = path, origin, modified
            self.changed.emit()
