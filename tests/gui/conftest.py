"""GUI fixtures: a main window with private settings, and helpers to drive training."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt

from explorer.gui.main_window import MainWindow


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """A shown main window set up for quick runs (300 images per split)."""
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.panel.limit.setValue(300)
    w.panel.epochs.setValue(1)
    w.panel.batch_size.setValue(64)
    yield w
    w.session.shutdown()


@pytest.fixture
def click(qtbot):
    """Click the toolbar button of an action as a person would: ``click(window, action)``."""

    def do(window: MainWindow, action) -> None:
        button = window.toolbar.widgetForAction(action)
        assert button is not None and button.isEnabled(), f"{action.text()} is not clickable"
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    return do
