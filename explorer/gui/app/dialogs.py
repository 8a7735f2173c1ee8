"""Messages and questions that never block the event loop.

Every box is opened with ``open()`` (window-modal, not a nested event loop), so training
views keep painting behind it and the slow-handler check never sees a dialog as a stall.
The answer arrives later, through a callback. ``Dialogs.current`` is the box on screen,
for tests and for the self-test to answer.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

Icon = QMessageBox.Icon
Button = QMessageBox.StandardButton


class Dialogs:
    def __init__(self, parent: QWidget) -> None:
        self.parent = parent
        self.current: QMessageBox | None = None

    def _open(self, box: QMessageBox, answered: Callable[[], None] | None = None) -> QMessageBox:
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.current = box

        def finished(_: int = 0) -> None:
            if self.current is box:
                self.current = None
            if answered is not None:
                answered()

        box.finished.connect(finished)
        box.open()
        return box

    def message(self, icon: Icon, title: str, text: str) -> QMessageBox:
        """A message with OK; text after a blank line goes into the details."""
        box = QMessageBox(icon, title, text.split("\n\n")[0], Button.Ok, self.parent)
        if "\n\n" in text:
            box.setDetailedText(text)
        return self._open(box)

    def offer(self, icon: Icon, title: str, text: str, action_text: str, action_name: str,
              action: Callable[[], object], decline: Button) -> QMessageBox:
        """A question with one way on (the default button) and one way out."""
        box = QMessageBox(icon, title, text, decline, self.parent)
        accept = box.addButton(action_text, QMessageBox.ButtonRole.AcceptRole)
        accept.setObjectName(action_name)
        box.setDefaultButton(accept)
        return self._open(box, lambda: action() if box.clickedButton() is accept else None)

    def save_discard_cancel(self, title: str, text: str, on_save: Callable[[], object],
                            on_discard: Callable[[], object]) -> QMessageBox:
        """The unsaved-work question: Save (default), Discard or Cancel (does nothing)."""
        box = QMessageBox(Icon.Warning, title, text, Button.Save | Button.Discard | Button.Cancel, self.parent)
        box.setDefaultButton(Button.Save)
        box.setEscapeButton(Button.Cancel)
        box.setObjectName("unsavedWork")

        def answered() -> None:
            clicked = box.standardButton(box.clickedButton()) if box.clickedButton() is not None else Button.Cancel
            if clicked == Button.Save:
                on_save()
            elif clicked == Button.Discard:
                on_discard()

        return self._open(box, answered)
