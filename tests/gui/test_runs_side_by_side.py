"""Runs side by side: one linked cursor decodes the same code in every model, a picked
test image is ringed in every plane, a sweep trained in the window is saved and overlaid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from explorer.analysis.manifold import decode_codes
from explorer.training.checkpoint import load_checkpoint

TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    """A 3-run beta sweep of a 20-D vae, trained together by the sweep core."""
    from explorer.config import DataConfig
    from explorer.training.sweep import plan_sweep, run_sweep

    folder = tmp_path_factory.mktemp("sweep") / "betas"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(plan_sweep("vae", betas=[0.5, 1, 4], epochs=2, batch_size=64), DataConfig(limit=1000), folder)
    finally:
        torch.set_num_threads(threads)
    return folder


def _open_folder(qtbot, window, folder: Path) -> None:
    window.runs_dock.show()
    window.runs_view.open_folder(str(folder))
    qtbot.waitUntil(lambda: len(window.runs.runs) == 3 and all(r.coords is not None for r in window.runs.runs),
                    timeout=TIMEOUT_MS)


def test_the_linked_cursor_decodes_the_same_code_in_every_model(qtbot, window, sweep_folder):
    _open_folder(qtbot, window, sweep_folder)
    view, state = window.runs_view, window.runs
    assert [p.isVisible() for p in view.panes] == [True, True, True, False]
    pane = view.panes[1]
    plot_rect = pane.plot.getPlotItem().vb.sceneBoundingRect()
    target = pane.plot.mapFromScene(plot_rect.center() + QPointF(plot_rect.width() * 0.2, -plot_rect.height() * 0.2))
    qtbot.mouseClick(pane.plot.viewport(), Qt.MouseButton.LeftButton, pos=target)
    code = state.code
    assert code is not None and code.shape == (20,)
    # The click landed on run 1's plane at its projection of the shared code.
    clicked = pane.box.mapSceneToView(pane.plot.mapToScene(target))
    assert np.allclose(state.runs[1].axes.project(code), [clicked.x(), clicked.y()], atol=1e-3)
    for slot, run in enumerate(state.runs):
        model = load_checkpoint(sweep_folder / f"{run.name}.safetensors").build_model()
        expected = decode_codes(model, code[None])[0]
        assert np.allclose(state.decode(run), expected, atol=1e-5), run.name
        assert np.allclose(view.panes[slot].cursor_point(), run.axes.project(code), atol=1e-4)
    images = [state.decode(run) for run in state.runs]
    assert not np.allclose(images[0], images[2])  # different models, different pictures of one code


def test_picking_a_test_image_rings_it_in_every_plane(qtbot, window, sweep_folder):
    _open_folder(qtbot, window, sweep_folder)
    view, state = window.runs_view, window.runs
    index = int(state.indices[17])
    state.pick(index)
    for slot, run in enumerate(state.runs):
        x, y = view.panes[slot].ring.getData()
        assert len(x) == 1 and np.allclose([x[0], y[0]], run.coords[17], atol=1e-4)


def test_loss_curves_overlay_one_colour_per_run(qtbot, window, sweep_folder):
    _open_folder(qtbot, window, sweep_folder)
    curves = window.runs_view.curves
    assert len(curves) == 3
    assert len({curve.opts["pen"].color().name() for curve in curves}) == 3
    for curve, run in zip(curves, window.runs.runs, strict=True):
        assert list(curve.getData()[0]) == [1, 2] and np.allclose(curve.getData()[1], [v for _, v in run.epochs])


def test_the_lecture_comparison_trains_three_runs_together_and_saves_them(qtbot, window):
    window.panel.latent.setValue(2)
    window.panel.epochs.setValue(2)
    window.runs_dock.show()
    view, state = window.runs_view, window.runs
    qtbot.mouseClick(view.lecture_button, Qt.MouseButton.LeftButton)
    assert view.stop_button.isEnabled() and not view.lecture_button.isEnabled()
    qtbot.waitUntil(lambda: not state.sweeping, timeout=TIMEOUT_MS)
    assert "Saved the runs to" in view.status.text()
    names = [run.name for run in state.runs]
    assert names == ["vae-reconstruction-only-z2", "vae-kl-only-z2", "vae-reconstruction-and-kl-z2"]
    kl = {}
    for run in state.runs:
        saved = load_checkpoint(run.path)
        assert saved.history.last_epoch == 2 and len(run.epochs) == 2
        # a sweep in the window records each run's timeline, as a single run does
        assert saved.timeline is not None and [f.epoch for f in saved.timeline.frames] == [1, 2]
        kl[run.name] = saved.history.epochs[-1]["test"]["kl"]
    assert kl["vae-kl-only-z2"] < 0.5 < kl["vae-reconstruction-only-z2"]
    assert (run.path.parent / "summary.md").exists()


def test_a_folder_without_checkpoints_is_one_clear_line(qtbot, window, tmp_path):
    window.runs_view.open_folder(str(tmp_path))
    assert "holds no checkpoints" in window.runs_view.status.text()


def test_a_run_s_refitted_plane_keeps_its_orientation():
    """A run trained side by side re-encodes as it trains and refits its principal axes;
    the refit is turned to the plane shown, so the pane never mirror-flips."""
    from explorer.gui.state.runs import _encode
    from explorer.models import build_model
    from explorer.runtime.threads import ModelCopy
    from explorer.training.runs import model_config_for

    torch.manual_seed(0)
    model = build_model(model_config_for("vae", latent_dim=6)).eval()
    images = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    first = _encode(ModelCopy.of(model), images, None, "run", 0)
    with torch.no_grad():  # the next weights give mirrored codes: a bare refit would show the plane flipped
        model.mean_head.weight.neg_()
        model.mean_head.bias.neg_()
    again = _encode(ModelCopy.of(model), images, None, "run", 0, shown=(first.coords, first.axes))
    np.testing.assert_allclose(again.coords, first.coords, atol=1e-4)
    bare = _encode(ModelCopy.of(model), images, None, "run", 0)
    np.testing.assert_allclose(bare.coords, -first.coords, atol=1e-4)


def test_background_work_run_inline_leaves_the_main_thread_as_it_was():
    """A model copy built on the main thread (a script, a test, a notebook) must not lower
    that thread's priority or its torch threads for the rest of the process."""
    import os
    import threading

    from explorer.models import build_model
    from explorer.runtime.threads import ModelCopy
    from explorer.training.runs import model_config_for

    priority, threads = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), torch.get_num_threads()
    ModelCopy.of(build_model(model_config_for("vae", latent_dim=2))).build()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == priority
    assert torch.get_num_threads() == threads


def test_a_beta_sweep_takes_a_learning_rate_per_run_and_refuses_a_bad_one(qtbot, window):
    window.panel.latent.setValue(2)
    window.panel.epochs.setValue(1)
    window.runs_dock.show()
    view, state = window.runs_view, window.runs
    view.betas.clear()
    qtbot.keyClicks(view.betas, "0.5, 2")
    qtbot.keyClicks(view.rates, "1e-3, abc")
    qtbot.mouseClick(view.beta_button, Qt.MouseButton.LeftButton)
    assert "learning rates" in view.status.text() and not state.sweeping
    view.rates.clear()
    qtbot.keyClicks(view.rates, "1e-3, 2e-3, 3e-3")
    qtbot.mouseClick(view.beta_button, Qt.MouseButton.LeftButton)
    assert "one for each of the 2 runs" in view.status.text() and not state.sweeping
    view.rates.clear()
    qtbot.keyClicks(view.rates, "1e-3, 2e-3")
    qtbot.mouseClick(view.beta_button, Qt.MouseButton.LeftButton)
    assert state.sweeping
    qtbot.waitUntil(lambda: not state.sweeping, timeout=TIMEOUT_MS)
    assert "Saved the runs to" in view.status.text()
    saved = {run.name: load_checkpoint(run.path) for run in state.runs}
    assert {name: ckpt.train_config.lr for name, ckpt in saved.items()} == {"vae-beta0.5-z2": 1e-3,
                                                                           "vae-beta2-z2": 2e-3}
