"""The dataset box's "NumPy file (.npz, .npy)..." item: choose a file, see its name, train on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog, QMessageBox

from explorer.gui.views.training_panel import ARRAY_FILE_ITEM

RUN_TIMEOUT_MS = 90_000


def _choose_file(window, monkeypatch, path: Path) -> None:
    """Pick the NumPy item as a person would, the file dialog answering with ``path``."""
    asked = []

    def dialog(*args, **kwargs):
        asked.append(args)
        return str(path), "NumPy arrays (*.npz *.npy)"

    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    combo = window.panel.dataset
    index = combo.findText(ARRAY_FILE_ITEM)
    assert index >= 0, "the dataset box has no NumPy file item"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)  # what a click on the item sends
    assert len(asked) == 1


def _blocks(path: Path, n: int = 200, side: int = 16) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, side, side), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, 2:8, 2 + 4 * k: 8 + 4 * k] = 240
    np.savez_compressed(path, images=images, labels=labels, class_names=np.array(["left", "middle", "right"]))
    return path


def test_choosing_a_numpy_file_trains_one_epoch_on_it(click, qtbot, window, monkeypatch, tmp_path):
    path = _blocks(tmp_path / "blocks.npz")
    _choose_file(window, monkeypatch, path)
    assert window.panel.dataset.currentText() == "File: blocks.npz"
    _, data_config, _ = window.panel.configs()
    assert data_config.dataset == str(path)

    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(window, window.start_action)
    assert finished.args[0].status == "completed"
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)
    data = window.session.data
    assert data is not None and data.class_names == ("left", "middle", "right")
    assert data.image_shape == (1, 16, 16)
    assert (len(data.train_images), len(data.test_images)) == (180, 20)
    assert window.session.model_config.image_shape == (1, 16, 16)
    assert window.loss_plot.point_count("test loss") == 1  # one epoch, tested once


def test_a_bad_numpy_file_shows_its_one_line_error(click, qtbot, window, monkeypatch, tmp_path):
    path = tmp_path / "floats.npz"
    np.savez(path, images=np.linspace(0, 255, 10 * 64).reshape(10, 8, 8))
    _choose_file(window, monkeypatch, path)
    assert window.panel.dataset.currentText() == "File: floats.npz"
    with qtbot.waitSignal(window.session.error, timeout=RUN_TIMEOUT_MS) as error:
        click(window, window.start_action)
    assert "floats.npz: float images must lie in [0, 1]; these range from 0 to 255 (divide by 255)" in error.args[0]
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=2000)
    assert window.message_box.icon() == QMessageBox.Icon.Critical
    window.message_box.close()
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)
    assert window.start_action.isEnabled()
