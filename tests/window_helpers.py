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


def wait_until_settled(qtbot, window, timeout_ms: int = 120_000) -> None:
    """Wait until the window has no background task running and no redraw waiting to start
    one, twice in a row (a task's result can ask for another redraw). A check of what some
    action starts in the background must not count work left over from before it, which on
    a busy machine may start late."""
    from explorer.gui.widgets.redraw import Coalescer

    def settled() -> bool:
        return window.session.tasks.idle and not any(c.pending for c in window.findChildren(Coalescer))

    for _ in range(2):
        qtbot.waitUntil(settled, timeout=timeout_ms)
        qtbot.wait(0)
