"""The state objects built without a window: the document, the task queue, the session
and the latent state, driven through their own methods and signals."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from explorer.analysis.projection import pca_axes
from explorer.gui.state.document import Document, Origin
from explorer.gui.state.latent_state import LatentState
from explorer.gui.state.session import TrainingSession
from explorer.gui.state.tasks import Tasks

TIMEOUT_MS = 60_000


def test_the_document_follows_runs_opens_restores_and_saves(qtbot, tmp_path: Path):
    doc = Document()
    assert doc.name == "" and not doc.has_unsaved_work
    doc.mark_modified()
    assert not doc.has_unsaved_work, "no model yet: nothing to lose"
    with qtbot.waitSignal(doc.changed):
        doc.new_run()
    assert (doc.name, doc.untitled, doc.modified) == ("Untitled", True, False)
    doc.mark_modified()
    assert doc.has_unsaved_work
    doc.saved(tmp_path / "a.safetensors")
    assert (doc.name, doc.modified, doc.origin) == ("a.safetensors", False, Origin.NEW_RUN)
    doc.new_run()
    assert doc.path is None, "a new run never keeps the previous model's file"
    doc.restored()
    assert doc.untitled and doc.has_unsaved_work and doc.name == "Restored run"
    doc.opened(tmp_path / "b.safetensors")
    assert doc.name == "b.safetensors" and not doc.modified


def test_tasks_deliver_on_the_gui_thread_and_report_busy_and_failures(qtbot):
    tasks = Tasks()
    gui = threading.get_ident()
    seen: list = []
    busy: list = []
    tasks.busy_changed.connect(busy.append)
    tasks.submit("a", lambda h: threading.get_ident(), label="Adding", on_done=seen.append)
    with qtbot.waitSignal(tasks.failed, timeout=10_000) as failed:
        tasks.submit("b", lambda h: 1 / 0, label="Dividing")
    qtbot.waitUntil(lambda: tasks.idle and bool(seen), timeout=10_000)
    assert seen[0] != gui, "the work ran off the GUI thread"
    assert failed.args[0] == "Dividing" and "ZeroDivisionError" in failed.args[1]
    assert any("Adding" in labels for labels in busy) and busy[-1] == []
    tasks.shutdown()


@pytest.fixture
def session(qtbot):
    s = TrainingSession()
    yield s
    s.shutdown()


def open_and_encode(qtbot, session: TrainingSession, latent: LatentState, path) -> None:
    with qtbot.waitSignal(latent.stats_changed, timeout=TIMEOUT_MS):
        session.open(path)


def test_the_session_opens_a_checkpoint_and_loads_its_data_in_the_background(qtbot, session, trained_checkpoint):
    path = trained_checkpoint("vae")
    with qtbot.waitSignal(session.data_changed, timeout=TIMEOUT_MS):
        session.open(path)
    assert session.document.path == Path(path) and not session.dirty
    assert session.data is not None and session.view_model is not None
    assert session.history.part_names == ("recon", "kl")


def test_the_latent_state_fits_axes_off_thread_and_starts_each_model_afresh(qtbot, session, trained_checkpoint):
    latent = LatentState(session)
    open_and_encode(qtbot, session, latent, trained_checkpoint("vae", latent_dim=6))
    assert latent.dim == 6 and latent.axes.names == ("PC1", "PC2")
    np.testing.assert_allclose(latent.code, latent.stats.mean)
    latent.use_raw_axes(0, 1)
    assert latent.axes.names == ("z0", "z1")
    latent.set_plane_point(1.5, -0.5)
    assert latent.code[0] == pytest.approx(1.5) and latent.code[1] == pytest.approx(-0.5)

    open_and_encode(qtbot, session, latent, trained_checkpoint("vae", latent_dim=5))
    assert latent.dim == 5
    np.testing.assert_allclose(latent.code, latent.stats.mean, err_msg="the old model's code must not carry over")
    busiest = tuple(sorted(int(d) for d in latent.stats.order[:2]))
    assert latent.raw_dims == busiest, "raw axes go to the new model's two busiest dimensions"
    latent.shutdown()


def test_a_refit_of_mirrored_codes_keeps_the_plane_the_way_it_was(qtbot, session, trained_checkpoint):
    """The live PCA plane mirror-flipped while a run trained: each re-encode refits the axes,
    and a principal axis's sign is arbitrary. Here the model's next weights give exactly
    mirrored codes (as a sign-flipped refit would show them): the plane keeps its picture."""
    import torch

    latent = LatentState(session)
    open_and_encode(qtbot, session, latent, trained_checkpoint("vae", latent_dim=6))
    before, codes = latent.axes.project(latent.stats.codes), latent.stats.codes.copy()
    code = latent.code.copy()
    model = session.view_model
    with torch.no_grad():  # z -> -z: new weights in the same model, as a training snapshot brings
        model.mean_head.weight.neg_()
        model.mean_head.bias.neg_()
    with qtbot.waitSignal(latent.stats_changed, timeout=TIMEOUT_MS):
        session.model_changed.emit()
    np.testing.assert_allclose(latent.stats.codes, -codes, atol=1e-5)  # the same images' codes, mirrored
    refit = pca_axes(latent.stats.codes)
    np.testing.assert_allclose(refit.project(latent.stats.codes), -before, atol=1e-4)  # what a bare refit shows
    after = latent.axes.project(latent.stats.codes)
    np.testing.assert_allclose(after, before, atol=1e-4, err_msg="the plane flipped over")
    np.testing.assert_allclose(latent.code, code)  # the marker's code stays; the view does not jump
    latent.shutdown()


def test_class_names_from_files_are_shown_on_one_line_escaped(qtbot, session):
    import torch

    from explorer.data.dataset import ImageData

    latent = LatentState(session)
    images = torch.zeros((4, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    session.data = ImageData(name="x", train_images=images, train_labels=labels, test_images=images,
                             test_labels=labels, class_names=("ok", "\x1b[31mred\nline" + "x" * 100))
    names = latent.class_names
    assert names[0] == "ok"
    assert "\x1b" not in names[1] and "\n" not in names[1] and len(names[1]) <= 40
    latent.shutdown()
