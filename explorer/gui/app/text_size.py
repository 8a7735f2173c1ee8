"""Larger or smaller text for demos (View > Larger text, Ctrl++ / Ctrl+- / Ctrl+0)."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

from explorer.gui.state.settings import read_int

KEY = "view/font_delta"
# The application's own text size, kept on the QApplication the first time a window asks:
# a second window in the same process (a notebook's second explorer.view, a test) must
# add the saved step to that, not to the already enlarged font.
BASE_PROPERTY = "latentExplorerBasePointSize"
SMALLEST, LARGEST = -4, 12
MIN_POINTS = 6.0


def saved_delta(settings: QSettings) -> int:
    """The saved step, or 0 when the setting is missing or not a whole number in range."""
    return read_int(settings, KEY, 0, SMALLEST, LARGEST)


class TextSize:
    def __init__(self, settings: QSettings) -> None:
        self.settings = settings
        app = QApplication.instance()
        base = app.property(BASE_PROPERTY) if app is not None else None
        if base is None:
            base = QApplication.font().pointSizeF()
            if app is not None:
                app.setProperty(BASE_PROPERTY, base)
        self.base = float(base)
        self.apply(saved_delta(settings))

    def change(self, step: int) -> None:
        self.apply(saved_delta(self.settings) + step)

    def apply(self, delta: int) -> None:
        delta = max(SMALLEST, min(LARGEST, delta))
        font = QFont(QApplication.font())
        font.setPointSizeF(max(MIN_POINTS, self.base + delta))
        QApplication.setFont(font)
        self.settings.setValue(KEY, delta)
