"""The Directions view, driven as a person would on a 16-D VAE and a 20-D autoencoder: make
"4 to 9" from two classes, move its slider (the code changes along it and nothing else),
rename it, make a probe and a direction from two picks, do a - b + c, export, save, reopen."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox
from window_helpers import answer_unsaved  # tests/ is on sys.path (its conftest)

from explorer.gui.app.main_window import MainWindow
from explorer.training.checkpoint import load_checkpoint

TIMEOUT_MS = 30_000


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready, timeout=TIMEOUT_MS)


def show_directions(qtbot, window: MainWindow):
    dock = window.directions_dock
    dock.show()
    dock.raise_()
    qtbot.waitUntil(dock.widget().isVisible, timeout=5000)
    return window.directions_view


def choose(box, value: int) -> None:
    index = box.findData(value)
    assert index >= 0, f"class {value} is not offered"
    box.setCurrentIndex(index)


def orthogonal(vector: np.ndarray, unit: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector - (vector @ unit) * unit


@pytest.mark.parametrize(("preset", "dim"), [("vae", 16), ("ae", 20)])
def test_a_class_direction_slider_moves_the_code_along_it_and_nothing_else(
        qtbot, window, trained_checkpoint, tmp_path, preset, dim):
    open_model(qtbot, window, trained_checkpoint(preset, latent_dim=dim))
    view, state, session = show_directions(qtbot, window), window.latent, window.session
    assert not window.isWindowModified()

    choose(view.from_class, 4)
    choose(view.to_class, 9)
    qtbot.mouseClick(view.add_means, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(session.directions) == 1, timeout=TIMEOUT_MS)
    direction = session.directions[0]
    assert direction.name == "4 to 9" and direction.dim == dim
    fours = state.stats.codes[state.stats.labels == 4].mean(0)
    nines = state.stats.codes[state.stats.labels == 9].mean(0)
    np.testing.assert_allclose(direction.vector, (nines - fours) / np.linalg.norm(nines - fours), atol=1e-5)
    assert view.table.item(0, 0).text() == "4 to 9"
    # Held out, balanced (chance 0.5); 4s and 9s overlap in a model trained one epoch on 2,000 images.
    assert 0.5 < direction.accuracy <= 1.0
    assert view.table.item(0, 2).text() == f"{direction.accuracy:.1%}"
    assert window.isWindowModified(), "a new direction is unsaved work"

    assert len(view.sliders) == 1, "the new direction is selected and has its slider"
    slider = view.sliders[0].slider
    before = state.code.astype(np.float64).copy()
    t_before = direction.position(before)
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_PageUp)
    qtbot.keyClick(slider, Qt.Key.Key_PageUp)
    after = state.code.astype(np.float64)
    assert direction.position(after) == pytest.approx(t_before + 0.2, abs=2e-3), "two page steps of 0.1"
    moved = (after - before) @ direction.vector
    assert abs(moved) > 0.05 * direction.span
    np.testing.assert_allclose(orthogonal(after, direction.vector), orthogonal(before, direction.vector),
                               atol=1e-5 * max(1.0, float(np.abs(before).max())))
    assert "t = " in view.sliders[0].value.text()

    state.reset_code()  # the code moved elsewhere: the slider shows where it is now, without moving it
    assert slider.value() == round(np.clip(direction.position(state.code), -1, 2) * 1000)

    # Rename by editing its name in the list, as a person would.
    view.table.editItem(view.table.item(0, 0))
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "four to nine")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: session.directions[0].name == "four to nine", timeout=5000)
    view.table.item(0, 0).setText("  ")  # a blank name keeps the old one, in the list too
    assert session.directions[0].name == "four to nine" and view.table.item(0, 0).text() == "four to nine"

    # Export as CSV (File > Export's method) and read it back.
    target = tmp_path / "directions.csv"
    view.export_directions(str(target))
    with open(target, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][0] == "four to nine" and len(rows[1]) == 5 + dim
    np.testing.assert_allclose([float(v) for v in rows[1][5:]], session.directions[0].vector, atol=1e-6)

    # Save, open the file again, and find the direction there.
    saved = tmp_path / "with-directions.safetensors"
    assert window.files.save_to(str(saved))
    assert not window.isWindowModified()
    assert [d.name for d in load_checkpoint(saved).directions] == ["four to nine"]
    session.remove_direction(0)
    assert view.table.rowCount() == 0 and window.isWindowModified()
    window.session.document.saved(saved)  # drop the removal unasked: reopen the saved file
    open_model(qtbot, window, saved)
    qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=TIMEOUT_MS)
    assert view.table.item(0, 0).text() == "four to nine" and not window.isWindowModified()
    np.testing.assert_allclose(session.directions[0].vector, direction.vector, atol=1e-6)


def test_probe_picks_and_analogy(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=16))
    view, state, session = show_directions(qtbot, window), window.latent, window.session
    assert not view.add_picks.isEnabled() and not view.analogy.isEnabled()
    choose(view.from_class, 2)
    choose(view.to_class, 2)
    qtbot.mouseClick(view.add_means, Qt.MouseButton.LeftButton)
    assert view.status.text() == "Choose two different classes." and session.directions == []

    choose(view.probe_class, 1)
    qtbot.mouseClick(view.add_probe, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(session.directions) == 1, timeout=TIMEOUT_MS)
    probe = session.directions[0]
    assert probe.name == "probe: 1" and probe.accuracy > 0.8, "1s against the rest is linearly separable"

    picked = [3, 10, 25]
    codes = []
    for index in picked:  # what clicking a dot on the plane does
        state.pick(index)
        codes.append(state.code.astype(np.float64).copy())
    assert "a = image 3" in view.picks_line.text() and "c = image 25" in view.picks_line.text()
    qtbot.mouseClick(view.add_picks, Qt.MouseButton.LeftButton)
    pair = session.directions[-1]
    assert pair.name == "image 10 to 25" and pair.defined_by == (10, 25)
    assert pair.position(codes[1]) == pytest.approx(0.0, abs=1e-6)
    assert pair.position(codes[2]) == pytest.approx(1.0, abs=1e-6)

    qtbot.mouseClick(view.analogy, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(state.code, codes[0] - codes[1] + codes[2], atol=1e-5)

    view.table.selectRow(0)
    qtbot.mouseClick(view.remove, Qt.MouseButton.LeftButton)
    assert [d.name for d in session.directions] == ["image 10 to 25"]

    # Directions are unsaved work: quitting asks, and Cancel keeps them.
    window.quit_action.trigger()
    answer_unsaved(qtbot, window, QMessageBox.StandardButton.Cancel)
    assert window.isVisible() and [d.name for d in session.directions] == ["image 10 to 25"]


def test_a_class_without_codes_is_refused_in_one_line(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", classes=(1,)))  # test images of 1s alone
    view, session = show_directions(qtbot, window), window.session
    choose(view.from_class, 0)
    choose(view.to_class, 1)
    qtbot.mouseClick(view.add_means, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.status.text().startswith("Could not"), timeout=TIMEOUT_MS)
    assert view.status.text() == "Could not make the direction: there are no codes of class 0"
    assert session.directions == [] and not window.isWindowModified() and view.add_means.isEnabled()


def test_a_model_from_python_brings_its_directions(qtbot, trained_checkpoint, tmp_path):
    import explorer
    from explorer.gui.state.session import TrainingSession

    model = explorer.load(trained_checkpoint("vae", latent_dim=16))
    rng = np.random.default_rng(0)
    explorer.direction(model, (rng.random((40, 1, 28, 28)) * 255).astype(np.uint8), np.repeat([0, 1], 20),
                       from_class=0, to_class=1, name="made in Python")
    session = TrainingSession()
    try:
        with qtbot.waitSignal(session.directions_changed, timeout=5000):
            session.install_given(model, None, data_config=model.record.data_config,
                                  directions=model.record.directions)
        assert [d.name for d in session.directions] == ["made in Python"] and not session.dirty
        session.save(tmp_path / "given.safetensors")
        assert [d.name for d in load_checkpoint(tmp_path / "given.safetensors").directions] == ["made in Python"]
    finally:
        session.shutdown()
