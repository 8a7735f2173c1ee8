"""The manifold decode, the checkpoint open and every picture view's batch encode/decode
leave the GUI thread, whatever the model's size: ticking Manifold on a 64x64 colour conv-VAE
held the GUI thread for 1.16 s on a busy machine, and opening it 0.98 s (issue #26).

Each test holds the heavy step on a gate: an implementation that ran it on the GUI thread
would block the click (or the open) until the gate's own timeout, and the step would record
the GUI thread as its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from explorer.analysis.latents import sample_codes
from explorer.analysis.manifold import decode_codes
from explorer.gui.state.latent_state import LatentState
from explorer.gui.state.session import TrainingSession
from explorer.gui.views import (
    anomaly_view,
    denoise_view,
    interpolation_view,
    latent_plane,
    recon_view,
    samples_view,
    traversal_view,
)
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


# -- every view's batch decode or encode ---------------------------------------------------------
# Reconstructions, samples, interpolation, traversal, denoising and anomaly scoring each encode
# or decode a batch through the model, which grows with the model (a 64x64 colour conv-VAE's
# reconstruction grid: 32 ms idle, several times that on a busy machine). Each view asks for
# its picture through BackgroundPicture: the gated step must run on another thread, the old
# picture stays on screen while it runs, and a result superseded by a newer request is dropped.


@dataclass(frozen=True)
class ViewCase:
    name: str
    build: Callable  # (session, latent) -> the view
    module: object  # the view's module, holding the step to gate
    step: str  # the module-level function the view's task calls
    trigger: Callable  # (qtbot, view): a real widget action that asks for a new picture
    shown: Callable  # view -> what is on screen (None: nothing yet)
    answers_latest: Callable = lambda view: True  # view -> whether the shown picture is the newest asked
    classes: tuple[int, ...] | None = None  # the checkpoint's training classes


def _press(key):
    def trigger(qtbot, view_part) -> None:
        view_part.setFocus()
        qtbot.keyClick(view_part, key)
    return trigger


CASES = (
    ViewCase("reconstructions", lambda s, _: recon_view.ReconstructionView(s), recon_view, "reconstruct_pairs",
             lambda qtbot, v: qtbot.mouseClick(v.new_batch_button, Qt.MouseButton.LeftButton),
             lambda v: v.pane.array,
             lambda v: v.shown is not None and torch.equal(v.shown.indices, v.indices)),
    ViewCase("samples", lambda _, latent: samples_view.SamplesView(latent), samples_view, "decode_samples",
             lambda qtbot, v: qtbot.mouseClick(v.resample, Qt.MouseButton.LeftButton),
             lambda v: v.pane.array,
             lambda v: np.array_equal(v.codes, sample_codes(v.state.model.config, v.state.stats,
                                                            v.side.value() ** 2, v.seed.value()))),
    ViewCase("interpolation", lambda _, latent: interpolation_view.InterpolationView(latent), interpolation_view,
             "interpolate_strip", lambda qtbot, v: _press(Qt.Key.Key_Up)(qtbot, v.steps),
             lambda v: v.pane.array, lambda v: len(v.strip) == v.steps.value() + 2),
    ViewCase("traversal", lambda _, latent: traversal_view.TraversalView(latent), traversal_view,
             "decode_traversal", lambda qtbot, v: _press(Qt.Key.Key_Up)(qtbot, v.steps),
             lambda v: v.image.image, lambda v: v.images.shape[0] == len(v.dims) * v.steps.value()),
    ViewCase("denoising", lambda s, _: denoise_view.DenoiseView(s), denoise_view, "denoise_batch",
             lambda qtbot, v: _press(Qt.Key.Key_Right)(qtbot, v.level), lambda v: v.pane.array,
             lambda v: v.shown_setting == (v.noise.currentData(), v.noise_level)),
    ViewCase("anomaly", lambda s, _: anomaly_view.AnomalyView(s), anomaly_view, "score_test_set",
             lambda qtbot, v: qtbot.mouseClick(v.score_button, Qt.MouseButton.LeftButton),
             lambda v: v.worst.array, classes=(1,)),
)


@contextmanager
def _view_showing_a_model(qtbot, case: ViewCase, trained_checkpoint):
    """The view alone, shown, with its first picture of an opened model on screen."""
    session = TrainingSession()
    latent = LatentState(session)
    view = case.build(session, latent)
    qtbot.addWidget(view)
    view.resize(700, 450)
    view.show()
    try:
        with qtbot.waitSignal(latent.stats_changed, timeout=60_000):
            session.open(trained_checkpoint("vae", classes=case.classes))
        qtbot.waitUntil(lambda: case.shown(view) is not None and session.tasks.idle
                        and not view.pictures.pending, timeout=60_000)
        yield view
    finally:
        latent.shutdown()
        session.shutdown()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_view_asks_for_its_picture_and_returns_before_it_is_computed(qtbot, case, trained_checkpoint,
                                                                        monkeypatch):
    with _view_showing_a_model(qtbot, case, trained_checkpoint) as view:
        before = case.shown(view)
        gate = Gate(getattr(case.module, case.step))
        monkeypatch.setattr(case.module, case.step, gate)
        try:
            case.trigger(qtbot, view)
            qtbot.waitUntil(gate.entered.is_set, timeout=10_000)
            # The handler has returned with the step held at the gate: it runs in another
            # thread, and the picture on screen is still the one from before.
            assert threading.get_ident() not in gate.threads, f"{case.name}: the step ran on the GUI thread"
            assert view.pictures.pending
            assert case.shown(view) is before
        finally:
            gate.open()
        qtbot.waitUntil(lambda: view.pictures.current and not view.pictures.pending, timeout=30_000)
        assert case.shown(view) is not before
        assert case.answers_latest(view)


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "anomaly"], ids=lambda c: c.name)
def test_a_picture_asked_for_before_a_newer_request_is_never_shown(qtbot, case, trained_checkpoint, monkeypatch):
    with _view_showing_a_model(qtbot, case, trained_checkpoint) as view:
        shown = []
        show = view.pictures._show
        monkeypatch.setattr(view.pictures, "_show", lambda result: (shown.append(result), show(result)))
        gate = Gate(getattr(case.module, case.step))
        monkeypatch.setattr(case.module, case.step, gate)
        try:
            case.trigger(qtbot, view)
            qtbot.waitUntil(gate.entered.is_set, timeout=10_000)
            first = view.pictures.generation
            case.trigger(qtbot, view)  # asked again while the first is held
            qtbot.waitUntil(lambda: view.pictures.generation > first, timeout=10_000)
        finally:
            gate.open()
        qtbot.waitUntil(lambda: view.pictures.current and not view.pictures.pending, timeout=30_000)
        assert len(shown) == 1, f"{case.name}: a superseded picture was shown"
        assert len(gate.threads) == 2  # the held request, then the newest; nothing queued behind them
        assert case.answers_latest(view)


def test_anomaly_scores_a_second_time_and_shows_only_the_newest(qtbot, trained_checkpoint, monkeypatch):
    """Scoring again while a pass runs: the held pass's result is dropped."""
    case = next(c for c in CASES if c.name == "anomaly")
    with _view_showing_a_model(qtbot, case, trained_checkpoint) as view:
        shown = []
        monkeypatch.setattr(view.pictures, "_show", lambda result: shown.append(result))
        gate = Gate(anomaly_view.score_test_set)
        monkeypatch.setattr(anomaly_view, "score_test_set", gate)
        try:
            case.trigger(qtbot, view)
            qtbot.waitUntil(gate.entered.is_set, timeout=10_000)
            case.trigger(qtbot, view)
        finally:
            gate.open()
        qtbot.waitUntil(lambda: view.pictures.current and not view.pictures.pending, timeout=60_000)
        assert len(shown) == 1 and len(gate.threads) == 2


def test_a_picture_of_weights_written_while_it_was_computed_is_dropped(qtbot, trained_checkpoint, monkeypatch):
    """The weights are copied in the task: a copy that may have overlapped a snapshot's write is
    never shown, and the snapshot's own signal brings the picture of the new weights."""
    case = next(c for c in CASES if c.name == "samples")
    with _view_showing_a_model(qtbot, case, trained_checkpoint) as view:
        session, before = view.state.session, case.shown(view)
        gate = Gate(samples_view.decode_samples)
        monkeypatch.setattr(samples_view, "decode_samples", gate)
        try:
            case.trigger(qtbot, view)
            qtbot.waitUntil(gate.entered.is_set, timeout=10_000)
            with torch.no_grad():  # a snapshot lands in the view model while the task runs
                for p in session.view_model.parameters():
                    p.add_(0.01)
        finally:
            gate.open()
        qtbot.waitUntil(lambda: not view.pictures.pending, timeout=30_000)
        assert not view.pictures.current and case.shown(view) is before, "a picture of torn weights was shown"
        session.model_changed.emit()  # what the snapshot's load emits after the write
        qtbot.waitUntil(lambda: view.pictures.current and not view.pictures.pending, timeout=30_000)
        assert case.shown(view) is not before and case.answers_latest(view)
        np.testing.assert_allclose(view.images, decode_codes(session.view_model, view.codes, None), atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_exporting_a_view_writes_its_picture_without_decoding_again(qtbot, case, trained_checkpoint, monkeypatch,
                                                                    tmp_path):
    from PIL import Image

    with _view_showing_a_model(qtbot, case, trained_checkpoint) as view:
        def no_work(*_args, **_kwargs):
            raise AssertionError(f"{case.name}: the export computed the picture again")

        monkeypatch.setattr(case.module, case.step, no_work)
        path = tmp_path / f"{case.name}.png"
        view.export_png(str(path))
        written = np.asarray(Image.open(path), dtype=np.float64) / 255
        assert written.size > 0 and written.std() > 0
        if case.name == "reconstructions":  # the grid on screen, pixel for pixel
            shown = view.grid if view.grid.ndim == 3 else np.repeat(view.grid[..., None], 3, 2)  # grey as RGB
            np.testing.assert_allclose(written, shown, atol=1 / 255)
