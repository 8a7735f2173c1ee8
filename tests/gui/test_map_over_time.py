"""The neighbour map over a run: while training with the plane on the map, each epoch's
placement is recorded and the timeline replays it; an epoch without one says it shows its
PCA plane; and a refit starts from the last map, so clusters stay put."""

from __future__ import annotations

import numpy as np

from explorer.analysis.maps import MapAxes
from explorer.gui.state.latent_state import MAP_REFRESH_EPOCHS, MAP_REFRESH_S, map_refit_due

RUN_TIMEOUT_MS = 90_000


def drawn_points(window) -> dict[int, tuple[float, float]]:
    out = {}
    for item in window.plane.scatters:
        for x, y, index in zip(item.data["x"], item.data["y"], item.data["data"], strict=True):
            out[int(index)] = (float(x), float(y))
    return out


def test_the_timeline_replays_the_map_as_recorded_and_a_refit_starts_from_the_last_map(click, qtbot, window):
    state, plane, session = window.latent, window.plane, window.session
    bar = plane.timeline_bar
    window.panel.latent.setValue(8)
    window.panel.epochs.setValue(500)
    fitted = []  # every neighbour map the plane showed, in order (one encode runs at a time)

    def note_map() -> None:
        if isinstance(state.axes, MapAxes) and (not fitted or fitted[-1] is not state.axes.latent_map):
            fitted.append(state.axes.latent_map)

    state.stats_changed.connect(note_map)
    with qtbot.waitSignal(session.data_changed, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    # One epoch on principal axes first: it has no map to record.
    qtbot.waitUntil(lambda: session.timeline is not None and len(session.timeline.frames) >= 1, timeout=RUN_TIMEOUT_MS)
    plane.axes_mode.setCurrentIndex(plane.axes_mode.findData("map"))
    qtbot.waitUntil(lambda: isinstance(state.axes, MapAxes), timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: sum(state.map_moment(f.epoch) is not None for f in session.timeline.frames) >= 2,
                    timeout=RUN_TIMEOUT_MS)
    shown = len(fitted)
    with qtbot.waitSignal(session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.stop_action)

    # The run over: the map is fitted again, starting from the one on screen.
    qtbot.waitUntil(lambda: len(fitted) > shown and session.tasks.idle, timeout=RUN_TIMEOUT_MS)
    # Each refit began where the map before it put these codes and was turned and shifted back
    # onto that start: the same centre (to 1e-4: a fit from PCA lands on its own centre), and
    # the best-agreeing turn (orthogonal Procrustes leaves the cross-covariance symmetric, with
    # a non-negative trace).
    for before, refit in zip(fitted, fitted[1:]):
        start = before.transform(refit.codes)
        np.testing.assert_allclose(refit.points.mean(0), start.mean(0), atol=1e-4)
        agreement = (start - start.mean(0)).T @ (refit.points - refit.points.mean(0))
        assert np.trace(agreement) >= 0 and np.allclose(agreement, agreement.T, atol=1e-3 * np.abs(agreement).max())

    frames = session.timeline.frames
    recorded = [k for k, f in enumerate(frames) if state.map_moment(f.epoch) is not None]
    assert state.map_moment(frames[0].epoch) is None, "the first epoch ended before the map was chosen"

    # A recorded epoch replays on its map: each dot where the map put that image then.
    bar.slider.setValue(recorded[-1])
    assert state.moment == recorded[-1] and isinstance(state.axes, MapAxes)
    moment = state.map_moment(frames[recorded[-1]].epoch)
    dots = drawn_points(window)
    placed = {int(i): p for i, p in zip(session.timeline.indices, moment.points.astype(np.float64), strict=True)}
    assert dots.keys() == placed.keys()
    np.testing.assert_allclose([dots[i] for i in placed], [placed[i] for i in placed], atol=1e-6)
    assert "· map" in bar.readout.text()
    # Dragging onto an image's point decodes that epoch's code of it (a point no other shares).
    gaps = np.linalg.norm(moment.points[:, None] - moment.points[None], axis=-1) + np.eye(len(moment.points))
    row = int(np.argmax(gaps.min(1)))
    state.set_plane_point(*moment.points[row].astype(np.float64))
    np.testing.assert_allclose(state.code, state.stats.codes[row], atol=1e-4)

    # The first epoch has no map: its own principal axes, and the readout says so.
    bar.slider.setValue(0)
    assert state.moment == 0 and not isinstance(state.axes, MapAxes)
    assert "PCA (no map recorded)" in bar.readout.text()

    # Live again: the live map.
    bar.slider.setValue(bar.slider.maximum())
    assert state.moment is None and state.axes.latent_map is fitted[-1]


def test_while_training_the_map_is_refitted_at_most_every_few_epochs_and_seconds():
    assert map_refit_due(False, 0.0, 0), "no run: every encode fits the map of the model shown"
    assert not map_refit_due(True, MAP_REFRESH_S - 1, MAP_REFRESH_EPOCHS + 5), "too soon"
    assert not map_refit_due(True, 10 * MAP_REFRESH_S, MAP_REFRESH_EPOCHS - 1), "too few epochs"
    assert map_refit_due(True, MAP_REFRESH_S, MAP_REFRESH_EPOCHS)
