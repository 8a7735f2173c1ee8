"""The latent views, driven as a person would: drag the marker, click dots, move sliders,
pick a class, choose interpolation ends, and check what is drawn against the model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt

from explorer.analysis.grids import tile
from explorer.analysis.manifold import decode_codes, lattice
from explorer.data import to_float
from explorer.gui.app.main_window import MainWindow
from explorer.gui.widgets.image_pane import chw_to_display

RUN_TIMEOUT_MS = 90_000


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)


def to_pixels(window: MainWindow, x: float, y: float) -> QPoint:
    """Viewport pixel of plane coordinates (x, y)."""
    scene = window.plane.box.mapViewToScene(QPointF(x, y))
    return window.plane.plot.mapFromScene(scene)


def marker_xy(window: MainWindow) -> np.ndarray:
    pos = window.plane.marker.pos()
    return np.array([pos.x(), pos.y()])


def decoded_now(window: MainWindow) -> np.ndarray:
    return window.code_view.decoded.array


def expected_image(window: MainWindow, code: np.ndarray) -> np.ndarray:
    return chw_to_display(decode_codes(window.session.view_model, code[None], window.latent.label)[0])


def raise_dock(qtbot, window: MainWindow, dock) -> None:
    dock.show()
    dock.raise_()
    qtbot.waitUntil(dock.widget().isVisible, timeout=5000)


def test_dragging_the_marker_redraws_the_decoded_image_for_its_code(qtbot, window, trained_checkpoint, drag):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    state = window.latent
    assert state.dim == 2 and state.axes.names == ("z0", "z1"), "a 2-D code is its own plane"
    assert sum(len(s.data) for s in window.plane.scatters) == state.stats.codes.shape[0]
    assert [s.name() for s in window.plane.scatters] == [str(d) for d in range(10)]
    before = decoded_now(window).copy()
    start = marker_xy(window)
    (x0, x1), (y0, y1) = window.plane.visible_region()
    target = np.array([x0 + 0.8 * (x1 - x0), y0 + 0.25 * (y1 - y0)])
    moves = []
    state.code_changed.connect(lambda source: moves.append(source))
    drag(window.plane.plot, to_pixels(window, *start), to_pixels(window, *target), steps=12)

    assert moves.count("plane") >= 5, "the image should follow the drag, not only its end"
    end = marker_xy(window)
    assert np.linalg.norm(end - target) < 0.05 * (x1 - x0), "the marker did not follow the mouse"
    np.testing.assert_allclose(state.axes.project(state.code), end, atol=1e-4)
    after = decoded_now(window)
    assert np.abs(after - before).mean() > 0.01, "the decoded image did not change"
    np.testing.assert_allclose(after, expected_image(window, state.code), atol=1e-6)


def isolated_dot(window: MainWindow) -> tuple[float, float, int]:
    """The dot farthest (in screen pixels) from every other dot and from the marker, among
    those well inside the visible region: a click on it can only hit that dot. (The first
    dot of a class was clicked once, and under load another dot on top of it took the click.)"""
    xs = np.concatenate([s.data["x"] for s in window.plane.scatters])
    ys = np.concatenate([s.data["y"] for s in window.plane.scatters])
    index = np.concatenate([np.asarray([int(d) for d in s.data["data"]], dtype=np.int64)
                            for s in window.plane.scatters])
    pixels = np.array([[p.x(), p.y()] for p in (to_pixels(window, x, y) for x, y in zip(xs, ys))], dtype=float)
    (x0, x1), (y0, y1) = window.plane.visible_region()
    inside = (xs > x0 + 0.1 * (x1 - x0)) & (xs < x1 - 0.1 * (x1 - x0)) & (ys > y0 + 0.1 * (y1 - y0)) \
        & (ys < y1 - 0.1 * (y1 - y0))
    marker = to_pixels(window, *marker_xy(window))
    room = np.full(len(xs), -1.0)
    for i in np.flatnonzero(inside):
        gaps = np.hypot(pixels[:, 0] - pixels[i, 0], pixels[:, 1] - pixels[i, 1])
        gaps[i] = np.inf
        room[i] = min(gaps.min(), np.hypot(pixels[i, 0] - marker.x(), pixels[i, 1] - marker.y()))
    best = int(np.argmax(room))  # argmax takes the first of equals: the same dot every run
    assert room[best] > 6, f"no dot stands clear of the others (best gap {room[best]:.1f} px)"
    return float(xs[best]), float(ys[best]), int(index[best])


def test_clicking_a_dot_loads_that_test_image(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    state, data = window.latent, window.session.data
    window.plane.show_codes.setChecked(True)
    x, y, wanted = isolated_dot(window)
    qtbot.mouseClick(window.plane.plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixels(window, x, y))
    qtbot.waitUntil(lambda: state.picked is not None, timeout=3000)
    picked = state.picked
    assert picked == wanted, "the click loaded another test image than the dot clicked"
    (x0, x1), _ = window.plane.visible_region()
    assert np.linalg.norm(state.stats.codes[state.stats.indices == picked][0] - [x, y]) < 0.01 * (x1 - x0)
    with torch.no_grad():
        mean = window.session.view_model.encode(to_float(data.test_images[picked:picked + 1])).mean[0].numpy()
    np.testing.assert_allclose(state.code, mean, atol=1e-5)
    assert window.code_view.picked.isVisible()
    assert f"#{picked}" in window.code_view.caption.text()
    np.testing.assert_allclose(marker_xy(window), mean, atol=1e-4)


def test_clicking_empty_space_moves_the_marker_there(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    window.plane.show_codes.setChecked(False)  # no dot can take the click
    (x0, x1), (y0, y1) = window.plane.visible_region()
    target = (x0 + 0.1 * (x1 - x0), y0 + 0.9 * (y1 - y0))
    qtbot.mouseClick(window.plane.plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixels(window, *target))
    assert np.linalg.norm(window.latent.code - np.array(target)) < 0.02 * (x1 - x0)


def test_pca_plane_keeps_off_plane_coordinates_and_follows_sliders(qtbot, window, trained_checkpoint, drag):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    state, plane = window.latent, window.plane
    assert state.axes.names == ("PC1", "PC2") and plane.axes_mode.isEnabled()
    assert "% of variance" in plane.plot.getPlotItem().getAxis("bottom").labelText
    off_plane = (state.code - state.axes.origin) @ state.axes.basis[2:].T
    start = marker_xy(window)
    drag(plane.plot, to_pixels(window, *start), to_pixels(window, *(start + [0.5, -0.5])))
    assert np.linalg.norm(marker_xy(window) - start) > 0.3
    np.testing.assert_allclose((state.code - state.axes.origin) @ state.axes.basis[2:].T, off_plane, atol=1e-4)

    # A slider moves the code, and the marker to the new code's projection.
    row = window.code_view.rows[int(state.stats.order[0])]
    before = marker_xy(window)
    row.slider.setFocus()
    for _ in range(60):
        qtbot.keyClick(row.slider, Qt.Key.Key_PageUp)
    assert abs(float(state.code[row.d]) - row.hi) < 1e-3 or row.slider.value() == row.slider.maximum()
    moved = marker_xy(window)
    assert np.linalg.norm(moved - before) > 0.1, "the marker did not follow the slider"
    np.testing.assert_allclose(moved, state.axes.project(state.code), atol=1e-4)
    np.testing.assert_allclose(decoded_now(window), expected_image(window, state.code), atol=1e-6)


def test_two_raw_dimensions_as_axes(qtbot, window, trained_checkpoint, drag):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    state, plane = window.latent, window.plane
    plane.axes_mode.setCurrentIndex(plane.axes_mode.findData("raw"))
    assert plane.dim_x.isVisible() and plane.dim_y.isVisible()
    plane.dim_x.setValue(3)
    plane.dim_y.setValue(5)
    assert state.axes.names == ("z3", "z5")
    assert plane.plot.getPlotItem().getAxis("left").labelText == "z5"
    before = state.code.copy()
    start = marker_xy(window)
    np.testing.assert_allclose(start, before[[3, 5]], atol=1e-5)
    drag(plane.plot, to_pixels(window, *start), to_pixels(window, *(start + [0.4, 0.4])))
    changed = np.flatnonzero(np.abs(state.code - before) > 1e-6)
    assert set(changed.tolist()) == {3, 5}


def test_manifold_decodes_the_visible_region_and_follows_zoom(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    plane, state = window.plane, window.latent
    plane.grid_size.setValue(10)
    qtbot.mouseClick(plane.show_manifold, Qt.MouseButton.LeftButton)
    assert plane.show_manifold.isChecked() and plane.manifold.isVisible()
    # Decoded in a task: wait for the picture of the view as it settled.
    qtbot.waitUntil(lambda: plane.manifold_array is not None and not plane.manifold_redraws.stale
                    and window.session.tasks.idle, timeout=10_000)
    assert plane.manifold_array.shape == (280, 280)
    x_range, y_range = plane.manifold_region()  # the view, widened so the tiles come out square
    (vx0, vx1), (vy0, vy1) = plane.visible_region()
    slack = 1e-9 * (vx1 - vx0 + vy1 - vy0)  # widened by a factor of 1 on the other axis: rounding only
    assert x_range[0] <= vx0 + slack and x_range[1] >= vx1 - slack
    assert y_range[0] <= vy0 + slack and y_range[1] >= vy1 - slack
    codes = state.axes.lift(lattice(x_range, y_range, 10), state.code)
    expected = tile(decode_codes(state.model, codes), 10, 10)[::-1]
    np.testing.assert_allclose(plane.manifold_array, expected, atol=1e-6)
    first = plane.manifold_array.copy()

    plane.box.scaleBy((0.3, 0.3))  # zoom in, as the mouse wheel does
    qtbot.waitUntil(lambda: not np.array_equal(plane.manifold_array, first), timeout=3000)
    rect = plane.manifold.mapRectToParent(plane.manifold.boundingRect())
    (x0, x1), (y0, y1) = plane.manifold_region()
    assert rect.left() == pytest.approx(x0, abs=1e-6) and rect.right() == pytest.approx(x1, abs=1e-6)
    assert rect.top() == pytest.approx(y0, abs=1e-6) and rect.bottom() == pytest.approx(y1, abs=1e-6)


def test_sliders_are_ordered_by_kl_and_mark_inactive_dimensions(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=20))
    stats, view = window.latent.stats, window.code_view
    shown = [view.slider_grid.itemAtPosition(r, 1).widget() for r in range(stats.dim)]
    assert [s.objectName() for s in shown] == [f"slider_z{int(d)}" for d in stats.order]
    kls = [stats.kl[int(d)] for d in stats.order]
    assert kls == sorted(kls, reverse=True)
    for row in view.rows:
        lo, hi = row.lo, row.hi
        assert lo < stats.codes[:, row.d].mean() < hi
        assert hi - lo == pytest.approx(6 * max(float(stats.std[row.d]), 1e-3), rel=1e-4)
        assert ("inactive" in row.name.text()) == (not stats.active[row.d])
    # After one epoch of the 20-D VAE on 2000 images some dimensions are unused: the point of the marks.
    assert not stats.active.all() and stats.active.any()

    qtbot.mouseClick(view.random_button, Qt.MouseButton.LeftButton)
    assert not np.allclose(window.latent.code, stats.mean)
    qtbot.mouseClick(view.reset_button, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(window.latent.code, stats.mean)
    np.testing.assert_allclose(decoded_now(window), expected_image(window, stats.mean), atol=1e-6)


def test_arrow_keys_nudge_the_marker(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    window.plane.plot.setFocus()
    before = marker_xy(window)
    qtbot.keyClick(window.plane.plot, Qt.Key.Key_Right)
    qtbot.keyClick(window.plane.plot, Qt.Key.Key_Up)
    after = marker_xy(window)
    assert after[0] > before[0] and after[1] > before[1]


def test_conditional_model_draws_the_chosen_class_and_keeps_the_style(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("cvae", epochs=2, limit=10000))
    plane, state = window.plane, window.latent
    assert plane.class_picker.isVisible() and plane.class_picker.count() == 10
    raise_dock(qtbot, window, window.samples_dock)
    samples = window.samples_view
    grids = {}
    for k in (1, 8):
        plane.class_picker.setCurrentIndex(k)
        assert state.label == k
        qtbot.waitUntil(lambda k=k: f"class {k}" in samples.source.text(), timeout=3000)
        grids[k] = samples.images.copy()
    assert np.abs(grids[1] - grids[8]).mean() > 0.05, "the samples do not depend on the class"
    # Same code, other class: the decoded image changes, the code does not.
    code = state.code.copy()
    plane.class_picker.setCurrentIndex(3)
    three = decoded_now(window).copy()
    plane.class_picker.setCurrentIndex(5)
    np.testing.assert_array_equal(state.code, code)
    assert np.abs(decoded_now(window) - three).mean() > 0.02
    np.testing.assert_allclose(decoded_now(window), expected_image(window, code), atol=1e-6)


def test_unconditional_model_hides_the_class_picker(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    assert not window.plane.class_picker.isVisible()
    assert window.latent.label is None


def test_samples_follow_the_seed_and_plain_autoencoders_sample_a_fitted_gaussian(qtbot, window,
                                                                              trained_checkpoint, tmp_path):
    open_model(qtbot, window, trained_checkpoint("ae"))
    raise_dock(qtbot, window, window.samples_dock)
    view = window.samples_view
    qtbot.waitUntil(lambda: view.images is not None, timeout=3000)
    assert "Gaussian fitted" in view.source.text()
    first = view.images.copy()
    qtbot.mouseClick(view.resample, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.seed.value() == 1 and not np.array_equal(view.images, first), timeout=3000)
    view.seed.setValue(0)
    qtbot.waitUntil(lambda: np.array_equal(view.images, first), timeout=3000)
    assert window.exports.export_to(str(tmp_path / "samples.png"), "samples", view.export_png)
    assert (tmp_path / "samples.png").stat().st_size > 0


def test_interpolation_between_picked_test_images(qtbot, window, trained_checkpoint, tmp_path):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    raise_dock(qtbot, window, window.interpolation_dock)
    view, data = window.interpolation_view, window.session.data
    window.latent.pick(3)
    qtbot.mouseClick(view.use_picked_start, Qt.MouseButton.LeftButton)
    window.latent.pick(11)
    qtbot.mouseClick(view.use_picked_end, Qt.MouseButton.LeftButton)
    view.steps.setValue(6)
    qtbot.waitUntil(lambda: view.strip is not None and len(view.strip) == 8 and "#11" in view.caption.text(),
                    timeout=3000)
    np.testing.assert_allclose(view.strip[0], to_float(data.test_images[3]).numpy())
    np.testing.assert_allclose(view.strip[-1], to_float(data.test_images[11]).numpy())
    with torch.no_grad():
        ends = window.session.view_model.encode(to_float(data.test_images[[3, 11]])).mean.numpy()
    np.testing.assert_allclose(view.codes[[0, -1]], ends, atol=1e-5)
    linear = view.codes.copy()
    view.mode.setCurrentIndex(view.mode.findData("spherical"))
    qtbot.waitUntil(lambda: not np.allclose(view.codes, linear), timeout=3000)
    np.testing.assert_allclose(view.codes[[0, -1]], ends, atol=1e-4)

    assert window.exports.export_to(str(tmp_path / "interp.csv"), "interpolation codes", view.export_codes)
    rows = list(csv.reader(open(tmp_path / "interp.csv")))
    assert rows[0] == [f"z{i}" for i in range(8)] and len(rows) == 7
    assert window.exports.export_to(str(tmp_path / "interp.png"), "interpolation", view.export_png)


def test_traversal_has_a_row_per_active_dimension(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    raise_dock(qtbot, window, window.traversal_dock)
    view, stats = window.traversal_view, window.latent.stats
    qtbot.waitUntil(lambda: view.images is not None, timeout=3000)
    active = [int(d) for d in stats.order if stats.active[d]]
    assert view.dims == active
    assert view.images.shape[0] == len(active) * view.steps.value()
    view.include_inactive.setChecked(True)
    qtbot.waitUntil(lambda: len(view.dims) == 8, timeout=3000)
    # Each row varies its own dimension only: the middle column is the current code's decode
    # when the sweep is centred on it (reset puts the code at the mean, the sweep's centre).
    window.latent.reset_code()
    qtbot.waitUntil(lambda: view.images is not None and not view.redraws.stale, timeout=3000)
    middle = view.images[view.steps.value() // 2::view.steps.value()]
    centre = decode_codes(window.session.view_model, window.latent.code[None])[0]
    for image in middle:
        np.testing.assert_allclose(image, centre, atol=1e-5)


def test_exports_of_the_plane_and_the_test_codes(qtbot, window, trained_checkpoint, tmp_path):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    assert window.exports.export_to(str(tmp_path / "plane.png"), "latent plane", window.plane.export_png)
    assert window.exports.export_to(str(tmp_path / "manifold.png"), "manifold grid", window.plane.export_manifold_png)
    assert window.exports.export_to(str(tmp_path / "codes.csv"), "test codes", window.exports.export_test_codes)
    rows = list(csv.reader(open(tmp_path / "codes.csv")))
    assert rows[0] == ["label", "z0", "z1"] and len(rows) == 1 + window.latent.stats.codes.shape[0]
    assert window.exports.export_to(str(tmp_path / "codes.npy"), "test codes", window.exports.export_test_codes)
    np.testing.assert_allclose(np.load(tmp_path / "codes.npy"), window.latent.stats.codes)
    from PIL import Image

    assert Image.open(tmp_path / "plane.png").size[0] >= 1000
    assert not window.exports.export_to(str(tmp_path / "codes.txt"), "test codes", window.exports.export_test_codes)
    assert window.message_box is not None


def test_plane_keeps_updating_while_training_continues(qtbot, click, window):
    window.panel.epochs.setValue(5000)  # stopped below
    with qtbot.waitSignal(window.latent.stats_changed, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    first = window.latent.stats.codes.copy()
    decoded = decoded_now(window).copy()
    with qtbot.waitSignal(window.latent.stats_changed, timeout=RUN_TIMEOUT_MS):
        pass
    with qtbot.waitSignal(window.latent.stats_changed, timeout=RUN_TIMEOUT_MS):
        pass
    assert window.session.state == "training"
    assert not np.allclose(window.latent.stats.codes, first), "the scatter did not move with training"
    points = np.concatenate([np.stack([s.data["x"], s.data["y"]], 1) for s in window.plane.scatters])
    assert len(points) == first.shape[0]
    assert np.abs(decoded_now(window) - decoded).mean() > 1e-4, "the decoded image did not follow the weights"
    np.testing.assert_allclose(decoded_now(window), expected_image(window, window.latent.code), atol=1e-6)
    window.session.stop()
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=RUN_TIMEOUT_MS)


def test_plane_options_are_remembered(qtbot, settings, window):
    window.plane.show_manifold.setChecked(True)
    window.plane.grid_size.setValue(12)
    window.plane.show_codes.setChecked(False)
    window.close()
    other = MainWindow(settings=settings)
    qtbot.addWidget(other)
    assert other.plane.show_manifold.isChecked() and not other.plane.show_codes.isChecked()
    assert other.plane.grid_size.value() == 12
    other.session.shutdown()


def test_background_threads_yield_to_the_gui_thread():
    import os
    import sys
    import threading

    from explorer.runtime.threads import lower_this_thread_priority

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread priorities are a Linux feature; elsewhere the call does nothing")
    seen = {}
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def work() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        seen["lowered"] = lower_this_thread_priority()
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["lowered"] and seen["delta"] > 0
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before, "the GUI thread kept its own"


def test_a_one_dimensional_code_gets_a_line_and_a_slider(qtbot, window, trained_checkpoint, drag):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=1))
    state = window.latent
    assert state.dim == 1 and len(window.code_view.rows) == 1
    start = marker_xy(window)
    assert start[1] == 0.0
    drag(window.plane.plot, to_pixels(window, *start), to_pixels(window, start[0] + 1.0, 0.5))
    assert abs(float(state.code[0]) - marker_xy(window)[0]) < 1e-5 and abs(state.code[0] - start[0]) > 0.5
    np.testing.assert_allclose(decoded_now(window), expected_image(window, state.code), atol=1e-6)


def test_opening_another_model_replaces_codes_axes_and_interpolation_ends(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    plane = window.plane
    plane.axes_mode.setCurrentIndex(plane.axes_mode.findData("raw"))
    plane.dim_x.setValue(5)
    plane.dim_y.setValue(7)
    window.latent.pick(4)
    old_stats = window.latent.stats
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    qtbot.waitUntil(lambda: window.latent.stats is not old_stats and window.latent.stats is not None, timeout=10_000)
    assert window.latent.axes.names == ("z0", "z1"), "a 2-D code is always its own plane"
    assert window.latent.picked is None and not window.interpolation_view.use_picked_start.isEnabled()
    view = window.interpolation_view
    assert view.start.value() != view.end.value(), "an interpolation from an image to itself shows nothing"


def test_exporting_the_plane_to_an_unwritable_place_says_so(qtbot, window, trained_checkpoint, tmp_path):
    assert not window.exports.export_to(str(tmp_path / "plane.png"), "latent plane", window.plane.export_png)
    assert "no latent plane" in window.message_box.text()
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    missing = str(tmp_path / "missing" / "plane.png")
    assert not window.exports.export_to(missing, "latent plane", window.plane.export_png)
    assert "could not write" in window.message_box.text()
