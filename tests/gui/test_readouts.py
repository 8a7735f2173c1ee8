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


def test_where_a_run_ended_is_said_in_words():
    from explorer.gui.app.progress import where_it_ended
    from explorer.training.events import RunResult
    from explorer.training.history import History

    history = History(("recon", "kl"))
    history.epochs = [{"epoch": 1, "global_step": 469, "train": {}, "test": {}}]
    stopped = RunResult("stopped", epochs_completed=1, global_step=469 + 260)
    assert where_it_ended(stopped, history, 469) == "in epoch 2 (after 260 of its 469 steps)"
    assert where_it_ended(RunResult("stopped", 1, 469), history, 469) == "after 1 epoch"
    history.epochs.append({"epoch": 2, "global_step": 938, "train": {}, "test": {}})
    assert where_it_ended(RunResult("completed", 2, 938), history, 469) == "after 2 epochs"
    assert where_it_ended(RunResult("stopped", 0, 1), History(), 469) == "in epoch 1 (after 1 of its 469 steps)"
    assert where_it_ended(RunResult("stopped", 0, 1), History(), None) == "in epoch 1 (after 1 step)"


def test_stop_clears_the_eta_and_speed_and_says_where_the_run_stopped(qtbot, window, click):
    """After Stop the toolbar kept "ETA 15:41 · 6,090 samples/s", and the status bar said
    "Stopped after 1 epoch(s)" when 260 steps of epoch 2 had run."""
    window.panel.limit.setValue(6000)
    window.panel.epochs.setValue(50)
    started: list = []
    window.session.run_started.connect(started.append)
    with qtbot.waitSignal(window.session.step, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda event: event.epoch >= 2):
        click(window, window.start_action)
    click(window, window.pause_action)
    qtbot.waitUntil(lambda: window.session.state == "paused", timeout=10_000)
    label = window.progress.label.text()
    assert "paused" in label and "ETA" not in label and "samples/s" not in label, label
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(window, window.stop_action)
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=RUN_TIMEOUT_MS)
    result, per_epoch = finished.args[0], started[0].steps_per_epoch
    epochs, into = divmod(result.global_step, per_epoch)  # a new run: epoch k ends at step k x per_epoch
    where = f"in epoch {epochs + 1} (after {into} of its {per_epoch} steps)" if into else \
        f"after {epochs} epoch{'s' if epochs != 1 else ''}"
    label, status = window.progress.label.text(), window.statusBar().currentMessage()
    assert "ETA" not in label and "samples/s" not in label, label
    assert label.startswith(f"Stopped {where}; test loss "), label
    assert status.startswith(f"Stopped {where}; test loss "), status
    assert "(s)" not in status and window.progress.bar.format() == "Stopped"


def test_a_finished_run_leaves_no_eta_and_counts_its_steps_in_words(qtbot, window, click):
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=RUN_TIMEOUT_MS)
    label, status = window.progress.label.text(), window.statusBar().currentMessage()
    assert "ETA" not in label and "samples/s" not in label, label
    assert label.startswith("Finished after 1 epoch; test loss "), label
    # 300 images in batches of 64: 5 steps, far too few (and said in agreeing words).
    assert status.startswith("Finished after 1 epoch; test loss ") and "Only 5 training steps" in status, status
    assert "(s)" not in status
