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
