"""Driving the training window as a person would: click Start, Pause, Stop, Save, Open."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from window_helpers import answer_unsaved  # tests/ is on sys.path (its conftest)

from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.registry import VIEWS, Place
from explorer.training.checkpoint import load_checkpoint

RUN_TIMEOUT_MS = 90_000


def start_and_wait_for_data(click, qtbot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.session.data_changed, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)


def test_first_launch_defaults_are_a_2d_vae_on_bundled_mnist(window):
    model, data, train = window.panel.configs()
    assert (model.preset, model.latent_dim, model.variational) == ("vae", 2, True)
    assert data.dataset == "mnist"
    assert window.windowTitle() == "Latent Explorer"
    assert not window.pause_action.isEnabled() and not window.stop_action.isEnabled()


def test_start_trains_draws_curves_and_sharpens_reconstructions(click, qtbot, window):
    window.panel.epochs.setValue(4)  # long enough that the first grid comes before the end
    ended: list = []  # heard from the start: the short run may end before the first grid is decoded
    window.session.run_finished.connect(ended.append)
    start_and_wait_for_data(click, qtbot, window)
    assert not window.panel.preset.isEnabled(), "model settings must be locked while training"
    assert window.panel.lr.isEnabled() and window.panel.beta.isEnabled(), "lr and beta stay live"
    recon = window.recon_view
    qtbot.waitUntil(lambda: recon.grid is not None, timeout=RUN_TIMEOUT_MS)  # decoded off the GUI thread
    before = recon.grid.copy()  # drawn from (nearly) untrained weights
    qtbot.waitUntil(lambda: bool(ended), timeout=RUN_TIMEOUT_MS)
    assert ended[0].status == "completed"
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)
    assert window.loss_plot.point_count() >= 2
    assert window.loss_plot.point_count("test loss") == 4
    assert window.loss_plot.point_count("test kl") == 4
    qtbot.waitUntil(lambda: not recon.redraws.stale and recon.pictures.current and not recon.pictures.pending,
                    timeout=RUN_TIMEOUT_MS)  # the final weights' grid has landed
    after = recon.grid
    assert after.shape == before.shape
    assert np.abs(after - before).mean() > 0.01, "reconstructions did not change with training"
    label = window.progress.label.text()  # how the run ended; no ETA or speed of a run that is over
    assert label.startswith("Finished after 4 epochs; test loss ") and "ETA" not in label, label
    assert window.progress.device_label.text().startswith("Device: cpu (")
    assert window.panel.preset.isEnabled()


def test_pause_holds_training_and_resume_continues(click, qtbot, window):
    window.panel.epochs.setValue(200)
    start_and_wait_for_data(click, qtbot, window)
    with qtbot.waitSignal(window.session.step, timeout=RUN_TIMEOUT_MS):
        pass
    with qtbot.waitSignal(window.session.state_changed, timeout=5000,
                          check_params_cb=lambda state: state == "paused"):
        click(window, window.pause_action)
    assert window.pause_action.text() == "&Resume"
    steps = window.loss_plot.point_count()
    qtbot.wait(400)
    assert window.loss_plot.point_count() == steps, "training went on while paused"
    with qtbot.waitSignal(window.session.step, timeout=10_000):
        click(window, window.pause_action)  # now "Resume"
    assert window.session.state == "training"
    with qtbot.waitSignal(window.session.run_finished, timeout=5000) as finished:
        click(window, window.stop_action)
    assert finished.args[0].status == "stopped"


def test_stop_ends_the_run_within_a_second(click, qtbot, window):
    window.panel.epochs.setValue(500)
    start_and_wait_for_data(click, qtbot, window)
    with qtbot.waitSignal(window.session.step, timeout=RUN_TIMEOUT_MS):
        pass
    with qtbot.waitSignal(window.session.run_finished, timeout=1000) as finished:
        click(window, window.stop_action)
    assert finished.args[0].status == "stopped"
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=2000)
    assert window.start_action.isEnabled()


def test_closing_mid_run_joins_the_thread_and_keeps_the_model(click, qtbot, settings, tmp_path):
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    window.panel.limit.setValue(300)
    window.panel.epochs.setValue(500)
    start_and_wait_for_data(click, qtbot, window)
    with qtbot.waitSignal(window.session.step, timeout=RUN_TIMEOUT_MS):
        pass
    thread = window.session._worker.thread
    assert thread.is_alive()
    window.close()  # the running model is unsaved: closing asks first
    answer_unsaved(qtbot, window, QMessageBox.StandardButton.Discard)
    # The window stays up, painting, until the run has stopped; then it closes itself.
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert not thread.is_alive(), "the training thread outlived the window"
    autosave = window.session.autosave_path
    assert autosave is not None and autosave.exists()
    assert load_checkpoint(autosave).model_config.latent_dim == 2


def test_a_worker_error_shows_a_message_and_the_app_still_trains(click, qtbot, window, monkeypatch):
    import explorer.training.runs as runs

    real = runs.prepare_run
    calls = []

    def broken_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "prepare_run", broken_once)
    with qtbot.waitSignal(window.session.error, timeout=RUN_TIMEOUT_MS) as error:
        click(window, window.start_action)
    assert "injected failure" in error.args[0]
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=2000)
    assert window.message_box.icon() == QMessageBox.Icon.Critical
    assert "injected failure" in window.message_box.text()
    window.message_box.accept()
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)

    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(window, window.start_action)
    assert finished.args[0].status == "completed"


def test_learning_rate_and_beta_change_live(click, qtbot, window):
    window.panel.epochs.setValue(500)
    start_and_wait_for_data(click, qtbot, window)
    with qtbot.waitSignal(window.session.step, timeout=RUN_TIMEOUT_MS):
        pass
    with qtbot.waitSignal(window.session.setting_changed, timeout=5000,
                          check_params_cb=lambda ev: ev.name == "beta") as changed:
        window.panel.beta.selectAll()
        qtbot.keyClicks(window.panel.beta, "3")
        qtbot.keyClick(window.panel.beta, Qt.Key.Key_Return)
    assert changed.args[0].value == pytest.approx(3.0)
    with qtbot.waitSignal(window.session.setting_changed, timeout=5000,
                          check_params_cb=lambda ev: ev.name == "lr") as changed:
        window.panel.lr.setValue(2e-4)
    assert changed.args[0].value == pytest.approx(2e-4)
    with qtbot.waitSignal(window.session.step, timeout=5000,
                          check_params_cb=lambda ev: ev.beta == pytest.approx(3.0)):
        pass
    with qtbot.waitSignal(window.session.run_finished, timeout=5000):
        click(window, window.stop_action)


def test_save_then_open_round_trips_model_settings_and_history(click, qtbot, window, settings, tmp_path):
    window.panel.latent.setValue(3)
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)
    path = tmp_path / "model.safetensors"
    assert window.files.save_to(str(path))
    assert path.exists()
    saved_points = window.loss_plot.point_count()
    weights = {k: v.clone() for k, v in window.session.view_model.state_dict().items()}

    other = MainWindow(settings=settings)
    qtbot.addWidget(other)
    other.show()
    other.panel.latent.setValue(7)
    with qtbot.waitSignal(other.session.data_changed, timeout=RUN_TIMEOUT_MS):
        assert other.files.open_checkpoint(str(path))
    assert other.panel.latent.value() == 3
    assert other.panel.limit.value() == 300
    assert other.loss_plot.point_count() == saved_points
    assert other.loss_plot.point_count("test loss") == 1
    for key, value in other.session.view_model.state_dict().items():
        assert (value == weights[key]).all()
    qtbot.waitUntil(lambda: other.recon_view.has_image(), timeout=5000)
    assert str(path) in other.windowTitle() or path.name in other.windowTitle()
    assert other.files.recent()[0] == str(path.resolve())


def test_opening_a_bad_file_says_why_and_keeps_the_window(qtbot, window, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04\x95not a checkpoint at all")
    window.files.open_checkpoint(str(bad))  # read in the background; the refusal arrives as a message
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=2000)
    assert "not a Latent Explorer checkpoint" in window.message_box.text()
    window.message_box.accept()
    assert window.isVisible()


def test_typing_settings_and_preset_defaults(qtbot, window):
    window.panel.epochs.selectAll()
    qtbot.keyClicks(window.panel.epochs, "7")
    assert window.panel.configs()[2].epochs == 7
    window.panel.preset.setCurrentIndex(window.panel.preset.findData("denoising-ae"))
    model, _, train = window.panel.configs()
    assert model.noise == "gaussian" and model.noise_level == pytest.approx(0.5)
    assert not window.panel.beta.isEnabled(), "beta means nothing for a plain autoencoder"
    assert window.panel.noise_level.isEnabled()


def test_log_toggle_and_hover_readout(click, qtbot, window):
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    qtbot.mouseClick(window.loss_plot.log_toggle, Qt.MouseButton.LeftButton)
    assert window.loss_plot.plot.getPlotItem().ctrl.logYCheck.isChecked()
    text = window.loss_plot.describe_step(3)
    assert text.startswith("step 3:") and "train loss" in text and "test kl" in text


def test_f5_starts_training(qtbot, window):
    window.activateWindow()
    ended: list = []  # heard from the start: a short run may end before the first wait returns
    window.session.run_finished.connect(ended.append)
    with qtbot.waitSignal(window.session.state_changed, timeout=5000):
        window.start_action.trigger() if not window.isActiveWindow() else qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: bool(ended), timeout=RUN_TIMEOUT_MS)
    assert window.start_action.shortcut().toString() == "F5"


def test_layout_and_settings_persist(qtbot, settings):
    from PySide6.QtWidgets import QApplication

    points = QApplication.font().pointSizeF()
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.panel.preset.setCurrentIndex(first.panel.preset.findData("conv-vae"))
    first.panel.latent.setValue(5)
    first.text_size.change(+2)
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    model, _, _ = second.panel.configs()
    assert (model.preset, model.latent_dim) == ("conv-vae", 5)
    assert int(settings.value("view/font_delta")) == 2
    # A second window adds the saved step to the application's own size, not to the first's.
    assert QApplication.font().pointSizeF() == points + 2
    second.text_size.apply(0)
    assert QApplication.font().pointSizeF() == points


def visible_tab_bars(window: MainWindow) -> list[set[str]]:
    from PySide6.QtWidgets import QTabBar

    return [{bar.tabText(i) for i in range(bar.count())} for bar in window.findChildren(QTabBar)
            if bar.parent() is window and bar.isVisibleTo(window)]


def test_only_the_two_tab_groups_show_tab_bars_fresh_and_after_a_restored_layout(qtbot, settings):
    for _ in range(2):  # the second window restores the layout the first saved
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        qtbot.wait(50)  # the layout settles in the first event-loop turns
        bars = visible_tab_bars(window)
        groups = sorted(sum(spec.place is place for spec in VIEWS) for place in (Place.BOTTOM_LEFT, Place.BOTTOM_RIGHT))
        assert sorted(map(len, bars)) == groups, f"a stale tab bar is on screen: {bars}"
        panel = window.panel_dock.geometry()
        from PySide6.QtWidgets import QTabBar
        for bar in window.findChildren(QTabBar):
            if bar.parent() is window and bar.isVisibleTo(window):
                assert not bar.geometry().intersects(panel), "a tab bar covers the training settings"
        window.close()
