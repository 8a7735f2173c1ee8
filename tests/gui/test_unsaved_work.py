"""Nothing is lost: Save never writes over another model's file, and every action that
would drop unsaved work (Start, Open, Restore, quitting) asks Save / Discard / Cancel.
Driven through the real actions, toolbar buttons and shortcuts."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox
from window_helpers import answer_unsaved, start_on_an_empty_folder  # tests/ is on sys.path (its conftest)

from explorer.gui.app.main_window import MainWindow
from explorer.training.checkpoint import load_checkpoint

RUN_TIMEOUT_MS = 120_000
Button = QMessageBox.StandardButton


def train(qtbot, window: MainWindow, click) -> None:
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)


def choose_preset(window: MainWindow, preset: str) -> None:
    window.panel.preset.setCurrentIndex(window.panel.preset.findData(preset))


@pytest.fixture
def save_dialog(monkeypatch):
    """The Save-as dialog, answered with ``answers`` in turn ("" = Cancel); records each call."""
    calls: list[str] = []
    answers: list[str] = []

    def ask(parent, caption, suggested, filters):
        calls.append(suggested)
        return (answers.pop(0) if answers else "", "")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(ask))
    return calls, answers


def test_a_new_run_is_untitled_and_save_asks_instead_of_overwriting_the_old_file(
        qtbot, window, click, tmp_path: Path, save_dialog):
    calls, answers = save_dialog
    choose_preset(window, "cvae")
    train(qtbot, window, click)
    cvae_file = tmp_path / "cvae.safetensors"
    assert window.files.save_to(str(cvae_file))
    assert window.windowTitle().startswith("cvae.safetensors") and not window.isWindowModified()
    before = cvae_file.read_bytes()

    choose_preset(window, "ae")  # another preset...
    window.panel.limit.setValue(200)  # ...and other data
    train(qtbot, window, click)  # the saved cvae has nothing unsaved: no question
    assert "cvae" not in window.windowTitle(), "the title must not name the old file during a new run"
    assert window.windowTitle().startswith("Untitled") and window.isWindowModified()

    answers.append("")  # Ctrl+S on the untitled model asks for a name; the user cancels
    QTest.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert len(calls) == 1, "Save on a new, untitled run must ask for a file name"
    assert cvae_file.read_bytes() == before, "the other model's file was overwritten"
    assert window.isWindowModified()

    answers.append(str(tmp_path / "ae.safetensors"))
    window.save_action.trigger()
    assert load_checkpoint(tmp_path / "ae.safetensors").model_config.preset == "ae"
    assert load_checkpoint(cvae_file).model_config.preset == "cvae"
    assert window.windowTitle().startswith("ae.safetensors") and not window.isWindowModified()


def test_start_over_unsaved_work_asks_and_cancel_keeps_the_model(qtbot, window, click):
    train(qtbot, window, click)
    model = window.session.view_model
    assert window.isWindowModified()
    click(window, window.start_action)
    answer_unsaved(qtbot, window, Button.Cancel)
    qtbot.wait(50)
    assert window.session.state == "idle" and window.session.view_model is model, "Cancel must change nothing"
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
        answer_unsaved(qtbot, window, Button.Discard)
    assert window.session.view_model is not model, "Discard goes on with the new run"


def test_open_over_unsaved_work_saves_first_when_asked(qtbot, window, click, tmp_path, monkeypatch,
                                                         trained_checkpoint, save_dialog):
    calls, answers = save_dialog
    other = trained_checkpoint("vae")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(other), "")))
    train(qtbot, window, click)
    kept = tmp_path / "kept.safetensors"
    answers.append(str(kept))
    QTest.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(window.session.data_changed, timeout=RUN_TIMEOUT_MS):
        answer_unsaved(qtbot, window, Button.Save)
    assert kept.exists() and load_checkpoint(kept).history.last_epoch == 1, "the unsaved run was saved first"
    assert window.session.document.path == Path(other)
    assert window.windowTitle().startswith(Path(other).name)


def test_open_recent_over_unsaved_work_and_cancel_in_the_save_dialog_cancels_the_open(
        qtbot, window, click, trained_checkpoint, save_dialog):
    calls, answers = save_dialog
    other = trained_checkpoint("vae")
    window.files.add_recent(str(other))
    train(qtbot, window, click)
    model = window.session.view_model
    window.files.fill_recent_menu()
    window.recent_menu.actions()[0].trigger()
    answer_unsaved(qtbot, window, Button.Save)  # then Cancel in the file dialog
    qtbot.wait(50)
    assert calls and window.session.view_model is model, "a cancelled save must not drop the model"


def test_restore_over_unsaved_work_asks(qtbot, window, click):
    window.autosave.set_every(1)
    train(qtbot, window, click)  # autosaved, and unsaved
    model = window.session.view_model
    window.restore_autosave_action.trigger()
    answer_unsaved(qtbot, window, Button.Cancel)
    qtbot.wait(50)
    assert window.session.view_model is model


def test_quitting_with_unsaved_work_asks_and_cancel_keeps_the_window(qtbot, window, click):
    train(qtbot, window, click)
    window.quit_action.trigger()
    answer_unsaved(qtbot, window, Button.Cancel)
    qtbot.wait(50)
    assert window.isVisible() and window.session.has_model
    window.close()
    answer_unsaved(qtbot, window, Button.Discard)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)


def test_autosave_keeps_earlier_runs(qtbot, window, click):
    window.autosave.set_every(1)
    train(qtbot, window, click)
    first = window.session.autosave_path
    choose_preset(window, "ae")
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
        answer_unsaved(qtbot, window, Button.Discard)
    second = window.session.autosave_path
    assert first != second and first.exists() and second.exists(), "a new run must not erase the last one"
    assert load_checkpoint(first).model_config.preset == "vae"
    assert load_checkpoint(second).model_config.preset == "ae"
    runs = window.autosave.store.runs()
    assert runs.index(second) < runs.index(first), "newest first"


def test_a_reopened_checkpoint_keeps_every_loss_curve(qtbot, window, click, tmp_path):
    train(qtbot, window, click)
    path = tmp_path / "vae.safetensors"
    assert window.files.save_to(str(path))
    assert load_checkpoint(path).history.part_names == ("recon", "kl")
    with qtbot.waitSignal(window.session.data_changed, timeout=RUN_TIMEOUT_MS):
        assert window.files.open_checkpoint(str(path))
    assert window.loss_plot.point_count("train kl") > 0


def test_a_run_whose_data_fails_leaves_the_open_model_its_file_and_curves(qtbot, window, click, tmp_path,
                                                                        trained_checkpoint):
    path = trained_checkpoint("vae")
    with qtbot.waitSignal(window.session.data_changed, timeout=RUN_TIMEOUT_MS):
        assert window.files.open_checkpoint(str(path))
    opened = load_checkpoint(path)
    points = window.loss_plot.point_count()
    start_on_an_empty_folder(qtbot, window, click, tmp_path / "empty")
    window.message_box.accept()
    s = window.session
    assert window.windowTitle().startswith(path.name) and not window.isWindowModified()
    assert s.data_config == opened.data_config and s.model_config == opened.model_config
    assert s.history.last_epoch == opened.history.last_epoch and window.loss_plot.point_count() == points
