"""Larger or smaller text for demos (View > Larger text, Ctrl++ / Ctrl+- / Ctrl+0)."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

from explorer.gui.state.settings import read_int

KEY = "view/font_delta"
SMALLEST, LARGEST = -4, 12
MIN_POINTS = 6.0


def saved_delta(settings: QSettings) -> int:
    """The saved step, or 0 when the setting is missing or not a whole number in range."""
    return read_int(settings, KEY, 0, SMALLEST, LARGEST)


class TextSize:
    def __init__(self, settings: QSettings) -> None:
        self.settings = settings
        self.base = QApplication.font().pointSizeF()
        self.apply(saved_delta(settings))

    def change(self, step: int) -> None:
        self.apply(saved_delta(self.settings) + step)

    def apply(self, delta: int) -> None:
        delta = max(SMALLEST, min(LARGEST, delta))
        font = QFont(QApplication.font())
        font.setPointSizeF(max(MIN_POINTS, self.base + delta))
        QApplication.setFont(font)
        self.settings.setValue(KEY, delta)
