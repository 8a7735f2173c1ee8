"""The (interim) window: opens, shows a checkpoint, refuses a bad one without dying."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from explorer.gui.main_window import MainWindow  # noqa: E402


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_window_title_and_welcome(window):
    assert window.windowTitle() == "Latent Explorer"
    assert "latent-explorer train" in window.info.text()


def test_opening_a_checkpoint_shows_its_settings(window, tmp_path):
    import torch

    from explorer.config import DataConfig, TrainConfig
    from explorer.models import build_model, config_for_data, get_preset
    from explorer.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model(config_for_data(get_preset("vae").model, (1, 28, 28), 10))
    path = save_checkpoint(tmp_path / "m.safetensors", model, DataConfig(), TrainConfig())
    assert window.open_checkpoint(str(path))
    assert "vae" in window.info.text() and "20" in window.info.text()


def test_a_bad_checkpoint_shows_a_message_and_the_window_survives(window, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    assert not window.open_checkpoint(str(bad))
    assert shown and "not a Latent Explorer checkpoint" in shown[0]
    assert window.isVisible()


def test_image_item_repaints_do_not_leak_bool_references(qtbot):
    """Regression guard for the PySide6 6.12.0 + pyqtgraph bug (DESIGN.md section 8):
    each ImageItem repaint lost references to True/False until the process died."""
    import numpy as np
    import pyqtgraph as pg

    view = pg.GraphicsLayoutWidget()
    qtbot.addWidget(view)
    item = pg.ImageItem(axisOrder="row-major")
    view.addViewBox().addItem(item)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    frames = [rng.random((28, 28), dtype=np.float32) for _ in range(8)]
    for i in range(20):  # warm-up: caches fill, first-time allocations happen
        item.setImage(frames[i % 8], autoLevels=False, levels=(0, 1))
        view.repaint()
    before_true, before_false = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(400):
        item.setImage(frames[i % 8], autoLevels=False, levels=(0, 1))
        view.repaint()
    assert sys.getrefcount(True) >= before_true - 10
    assert sys.getrefcount(False) >= before_false - 10
