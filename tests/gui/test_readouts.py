"""The progress readout always tells the current state, never an earlier one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox
from window_helpers import start_on_an_empty_folder  # tests/ is on sys.path (its conftest)

RUN_TIMEOUT_MS = 90_000


def test_resume_clears_paused_from_the_progress_bar(qtbot, window, click):
    window.panel.epochs.setValue(200)
    with qtbot.waitSignal(window.session.step, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    click(window, window.pause_action)
    qtbot.waitUntil(lambda: window.session.state == "paused", timeout=10_000)
    assert window.progress.bar.format().startswith("Paused")
    assert window.pause_action.text() == "&Resume"
    click(window, window.pause_action)
    qtbot.waitUntil(lambda: window.session.state == "training", timeout=10_000)
    assert "Paused" not in window.progress.bar.format()
    assert window.pause_action.text() == "&Pause"
    window.session.stop()
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=RUN_TIMEOUT_MS)


def test_a_data_error_does_not_leave_loading_on_the_toolbar(qtbot, window, click, tmp_path: Path):
    start_on_an_empty_folder(qtbot, window, click, tmp_path / "no-images-here")
    assert "Loading" not in window.progress.bar.format()
    assert "Loading" not in window.progress.label.text()
    assert window.start_action.isEnabled()
    box = window.message_box
    assert box is not None and box.icon() == QMessageBox.Icon.Critical
    box.accept()


def test_background_work_shows_in_the_status_bar_and_clears(qtbot, window, trained_checkpoint):
    busy: list[list[str]] = []
    window.session.tasks.busy_changed.connect(busy.append)
    with qtbot.waitSignal(window.latent.stats_changed, timeout=RUN_TIMEOUT_MS):
        assert window.files.open_checkpoint(str(trained_checkpoint("vae")))
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=RUN_TIMEOUT_MS)
    assert any("Encoding the test images" in labels for labels in busy)
    assert window.progress.busy_label.text() == ""
