"""Repaint the live views thousands of times: no crash, no lost references.

Guards the PySide6 6.12.0 + pyqtgraph bug (DESIGN.md section 8): every ImageItem repaint
lost references to True/False until the process died with ``bool_dealloc``.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pyqtgraph as pg

from explorer.training.events import EpochEnd, StepLoss


def _bool_refs() -> tuple[int, int]:
    return sys.getrefcount(True), sys.getrefcount(False)


def test_image_item_repaints_do_not_leak_bool_references(qtbot):
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
    before = _bool_refs()
    for i in range(1000):
        item.setImage(frames[i % 8], autoLevels=False, levels=(0, 1))
        view.repaint()
    after = _bool_refs()
    assert after[0] >= before[0] - 10 and after[1] >= before[1] - 10, (before, after)


def test_live_views_survive_thousands_of_repaints(qtbot, window):
    """Feed the window's curves and reconstruction grid as a long run would, repainting
    every time, and check nothing leaks or breaks."""
    import torch

    from explorer.config import DataConfig
    from explorer.data import load_dataset
    from explorer.models import build_model, config_for_data, get_preset

    session = window.session
    session.data = load_dataset(DataConfig(limit=64))
    session.view_model = build_model(config_for_data(get_preset("vae").model, (1, 28, 28), 10)).eval()
    session.data_changed.emit()
    for _ in range(20):
        session.model_changed.emit()
        window.repaint()
    recon = window.recon_view

    def grid_landed() -> bool:
        return not recon.redraws.stale and recon.pictures.current and not recon.pictures.pending

    qtbot.waitUntil(grid_landed, timeout=10_000)  # the warm-up's grids are in: count from a settled window
    # Waiting lets the GUI-thread garbage collector's timer run, which frees earlier tests'
    # objects during the loop: count both ends after a full collection.
    gc.collect()
    before = _bool_refs()
    rounds = 2000
    for i in range(1, rounds + 1):
        session.step.emit(StepLoss(epoch=1, step=i, global_step=i, loss=200.0 / i ** 0.3,
                                   parts={"recon": 180.0 / i ** 0.3, "kl": 20.0}, samples_per_s=1000.0,
                                   lr=1e-3, beta=1.0))
        if i % 100 == 0:
            session.epoch.emit(EpochEnd(epoch=i // 100, train={"loss": 1.0}, test={"loss": 150.0 - i / 100,
                                        "recon": 130.0, "kl": 20.0}, seconds=1.0, samples_per_s=1000.0))
        if i % 4 == 0:
            with torch.no_grad():
                for p in session.view_model.parameters():
                    p.add_(0.001)
            session.model_changed.emit()
        if i % 100 == 0:  # the grid is decoded off the GUI thread: let the newest one land now and then
            qtbot.waitUntil(grid_landed, timeout=10_000)
        window.loss_plot._redraw()
        window.loss_plot.plot.repaint()
        window.recon_view.view.repaint()
    gc.collect()
    after = _bool_refs()
    assert window.loss_plot.point_count() == rounds
    assert window.loss_plot.point_count("test loss") == rounds // 100
    assert window.recon_view.has_image()
    assert after[0] >= before[0] - 10 and after[1] >= before[1] - 10, (before, after)
