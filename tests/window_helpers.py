"""Helpers for driving the main window's questions as a person would."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox


def answer_unsaved(qtbot, window, answer: QMessageBox.StandardButton) -> None:
    """Answer the Save / Discard / Cancel question that an action raised, as a person would."""
    qtbot.waitUntil(lambda: window.message_box is not None and window.message_box.isVisible(), timeout=3000)
    box = window.message_box
    assert box.objectName() == "unsavedWork", box.text()
    qtbot.mouseClick(box.button(answer), Qt.MouseButton.LeftButton)


def start_on_an_empty_folder(qtbot, window, click, folder, timeout_ms: int = 90_000) -> None:
    """Press Start with an empty image folder chosen: the run fails on its data; wait until
    the session has said so and is idle again."""
    folder.mkdir()
    window.panel.set_dataset(str(folder))
    with qtbot.waitSignal(window.session.error, timeout=timeout_ms):
        click(window, window.start_action)
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=10_000)
