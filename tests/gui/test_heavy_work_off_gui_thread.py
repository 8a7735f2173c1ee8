"""The manifold decode and the checkpoint open leave the GUI thread, whatever the model's
size: ticking Manifold on a 64x64 colour conv-VAE held the GUI thread for 1.16 s on a busy
machine, and opening it 0.98 s (issue #26).

Each test holds the heavy step on a gate: an implementation that ran it on the GUI thread
would block the click (or the open) until the gate's own timeout, and the step would record
the GUI thread as its own.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import Qt

from explorer.gui.views import latent_plane
from explorer.training import checkpoint

GATE_S = 20.0  # how long a gated step waits to be let through: far beyond any test's wait


def settle(qtbot, window) -> None:
    """Let the other views' work on the opened model finish: closing joins it."""
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=60_000)


class Gate:
    """Wraps a function: records the thread it ran on and holds it until ``open()``."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.threads: list[int] = []
        self.entered = threading.Event()
        self._release = threading.Event()

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.get_ident())
        self.entered.set()
        self._release.wait(GATE_S)
        return self.fn(*args, **kwargs)

    def open(self) -> None:
        self._release.set()


def test_ticking_manifold_returns_before_the_lattice_is_decoded(qtbot, window, trained_checkpoint, monkeypatch):
    assert window.files.open_checkpoint(str(trained_checkpoint("conv-vae", latent_dim=2)))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)
    plane = window.plane
    gate = Gate(latent_plane.manifold_image)
    monkeypatch.setattr(latent_plane, "manifold_image", gate)
    try:
        qtbot.mouseClick(plane.show_manifold, Qt.MouseButton.LeftButton)
        assert plane.show_manifold.isChecked()
        # The click has returned and the decode has started, held at the gate, in another thread.
        assert gate.entered.wait(10), "ticking Manifold decoded nothing"
        assert plane.manifold_array is None
        assert "Decoding the manifold" in window.session.tasks.busy_labels
    finally:
        gate.open()
    qtbot.waitUntil(lambda: plane.manifold_array is not None, timeout=10_000)
    assert threading.get_ident() not in gate.threads, "the manifold was decoded on the GUI thread"
    _, h, w = window.session.view_model.config.image_shape
    n = plane.grid_size.value()
    assert plane.manifold_array.shape == (n * h, n * w)
    assert np.isfinite(plane.manifold_array).all() and plane.manifold_array.std() > 0
    settle(qtbot, window)


def test_a_newer_view_replaces_a_manifold_still_decoding(qtbot, window, trained_checkpoint, monkeypatch):
    """Pan while a decode runs: the picture that lands covers the region on screen now,
    not the one the first request was for."""
    assert window.files.open_checkpoint(str(trained_checkpoint("vae", latent_dim=2)))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)
    plane = window.plane
    gate = Gate(latent_plane.manifold_image)
    monkeypatch.setattr(latent_plane, "manifold_image", gate)
    try:
        qtbot.mouseClick(plane.show_manifold, Qt.MouseButton.LeftButton)
        assert gate.entered.wait(10)
        plane.box.scaleBy((0.5, 0.5))  # zoom in, as the wheel does, while the first decode is held
        qtbot.waitUntil(lambda: plane.manifold_redraws.stale is False, timeout=5000)
    finally:
        gate.open()
    x_range, y_range = plane.manifold_region()
    qtbot.waitUntil(lambda: plane.manifold_array is not None and window.session.tasks.idle, timeout=10_000)
    rect = plane.manifold.mapRectToParent(plane.manifold.boundingRect())
    np.testing.assert_allclose((rect.left(), rect.right(), rect.top(), rect.bottom()), (*x_range, *y_range))
    assert len(gate.threads) == 2  # the first request, then the zoomed one; nothing queued behind them
    settle(qtbot, window)


def test_opening_a_checkpoint_reads_and_builds_it_off_the_gui_thread(qtbot, window, trained_checkpoint,
                                                                     monkeypatch):
    path = trained_checkpoint("conv-vae", latent_dim=2)
    gate = Gate(checkpoint.load_checkpoint)
    monkeypatch.setattr(checkpoint, "load_checkpoint", gate)
    try:
        assert window.files.open_checkpoint(str(path))  # returns with the file still being read
        assert gate.entered.wait(10), "the checkpoint was never read"
        assert window.session.view_model is None
    finally:
        gate.open()
    qtbot.waitUntil(lambda: window.latent.ready, timeout=30_000)
    assert threading.get_ident() not in gate.threads, "the checkpoint was read on the GUI thread"
    assert window.session.document.path == path
    settle(qtbot, window)


def test_exporting_the_manifold_on_screen_decodes_nothing_more(qtbot, window, trained_checkpoint, monkeypatch,
                                                               tmp_path):
    from PIL import Image

    assert window.files.open_checkpoint(str(trained_checkpoint("vae", latent_dim=2)))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)
    plane = window.plane
    plane.grid_size.setValue(6)
    qtbot.mouseClick(plane.show_manifold, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plane.manifold_array is not None and not plane.manifold_redraws.stale
                    and window.session.tasks.idle, timeout=10_000)
    shown = plane.manifold_array

    def no_decode(*_args, **_kwargs):
        raise AssertionError("the export decoded the lattice again")

    monkeypatch.setattr(latent_plane, "manifold_image", no_decode)
    path = tmp_path / "manifold.png"
    assert window.exports.export_to(str(path), "manifold grid", plane.export_manifold_png)
    written = np.asarray(Image.open(path), dtype=np.float64) / 255
    np.testing.assert_allclose(written, shown[::-1], atol=1 / 255)
