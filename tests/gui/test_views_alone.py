"""Every declared view builds alone, from its state object only, and draws a model."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QWidget

from explorer.gui.state.latent_state import LatentState
from explorer.gui.state.runs import RunsState
from explorer.gui.state.session import TrainingSession
from explorer.gui.views.registry import VIEWS, Reads, ViewSpec

TIMEOUT_MS = 60_000


@pytest.mark.parametrize("spec", VIEWS, ids=[s.name for s in VIEWS])
def test_each_view_builds_alone_and_exports_only_what_it_has(qtbot, spec: ViewSpec, trained_checkpoint, tmp_path):
    session = TrainingSession()
    latent = LatentState(session)
    runs = RunsState(session)
    state = {Reads.SESSION: (session,), Reads.LATENT: (latent,), Reads.RUNS: (runs,), Reads.NOTHING: ()}[spec.reads]
    view: QWidget = spec.widget(*state)
    qtbot.addWidget(view)
    view.resize(700, 450)
    view.show()
    try:
        for export in spec.exports:  # before any model: a clear refusal, no file
            with pytest.raises(ValueError):
                getattr(view, export.method)(str(tmp_path / f"early-{export.filename}"))
            assert not (tmp_path / f"early-{export.filename}").exists()
        with qtbot.waitSignal(latent.stats_changed, timeout=TIMEOUT_MS):
            # The anomaly view needs normal classes: a model trained on digit 1 alone.
            session.open(trained_checkpoint("vae", classes=(1,) if spec.name == "anomaly_view" else None))
        if spec.name == "evaluation_view":  # its table fills when asked: evaluate the test loss alone
            qtbot.waitUntil(lambda: session.data is not None, timeout=TIMEOUT_MS)
            for box in (view.likelihood, view.samples, view.latent, view.recon):
                box.setChecked(False)
            view.evaluate_current()
        if spec.name == "directions_view":  # it exports the directions made: make one from two classes
            view.add_from_classes()
            qtbot.waitUntil(lambda: len(session.directions) == 1, timeout=TIMEOUT_MS)
        for export in spec.exports:
            target = tmp_path / export.filename
            try:
                qtbot.waitUntil(lambda e=export, t=target: _exported(view, e, t), timeout=TIMEOUT_MS)
            except AssertionError:
                pytest.fail(f"{spec.title} could not export {export.what} once a model was open")
    finally:
        latent.shutdown()
        runs.shutdown()
        session.shutdown()


def _exported(view: QWidget, export, target) -> bool:
    try:
        getattr(view, export.method)(str(target))
    except ValueError:
        return False
    return target.exists() and target.stat().st_size > 0
