"""Posteriors on the latent plane: hovering or picking a test dot outlines that image's
posterior (the exact PCA ellipse holds the 2-D chi-square share of its samples), the Prior
toggle draws the prior's contours, a plain autoencoder says it has neither, and "draw from
this posterior" decodes the mean and samples side by side."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QPolygonF

from explorer.analysis.latents import encode_images
from explorer.analysis.manifold import decode_codes
from explorer.analysis.maps import MapAxes
from explorer.gui.app.main_window import MainWindow
from explorer.gui.state.latent_state import POSTERIOR_DRAWS, ellipse_outline, plane_covariance

TIMEOUT_MS = 60_000
CHI2_2D_TWO_SIGMA = 1 - np.exp(-2.0)  # 0.8647: the share of a 2-D Gaussian within 2 sigma


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=TIMEOUT_MS)


def to_pixels(window: MainWindow, x: float, y: float) -> QPoint:
    return window.plane.plot.mapFromScene(window.plane.box.mapViewToScene(QPointF(x, y)))


def isolated_dots(window: MainWindow, count: int) -> list[tuple[float, float, int]]:
    """``count`` dots well inside the view, each at least 8 pixels from every other dot and
    from the marker (a hover or click there can only find that dot), farthest first."""
    scatters = window.plane.scatters
    xs = np.concatenate([s.data["x"] for s in scatters])
    ys = np.concatenate([s.data["y"] for s in scatters])
    index = np.concatenate([np.asarray([int(d) for d in s.data["data"]], dtype=np.int64) for s in scatters])
    origin, unit_x, unit_y = (to_pixels(window, *p) for p in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))
    pixels = np.column_stack([origin.x() + xs * (unit_x.x() - origin.x()) + ys * (unit_y.x() - origin.x()),
                              origin.y() + xs * (unit_x.y() - origin.y()) + ys * (unit_y.y() - origin.y())])
    marker = window.plane.marker.pos()
    marker_px = to_pixels(window, marker.x(), marker.y())
    (x0, x1), (y0, y1) = window.plane.visible_region()
    inside = (xs > x0 + 0.1 * (x1 - x0)) & (xs < x1 - 0.1 * (x1 - x0)) & (ys > y0 + 0.1 * (y1 - y0)) \
        & (ys < y1 - 0.1 * (y1 - y0))
    room = np.full(len(xs), -1.0)
    for i in np.flatnonzero(inside):
        gaps = np.hypot(*(pixels - pixels[i]).T)
        gaps[i] = np.inf
        room[i] = min(gaps.min(), np.hypot(pixels[i, 0] - marker_px.x(), pixels[i, 1] - marker_px.y()))
    best = np.argsort(-room, kind="stable")[:count]
    assert room[best[-1]] > 8, f"too few dots stand clear of the others ({room[best]})"
    return [(float(xs[i]), float(ys[i]), int(index[i])) for i in best]


def hover(qtbot, window: MainWindow, x: float, y: float) -> None:
    """Move the pointer onto plane point (x, y). Qt sends no move to where the pointer already
    is, and pyqtgraph drops moves under 16 ms apart: come from a pixel aside, 20 ms apart."""
    target = to_pixels(window, x, y)
    viewport = window.plane.plot.viewport()
    qtbot.wait(20)
    qtbot.mouseMove(viewport, target + QPoint(3, 0))
    qtbot.wait(20)
    qtbot.mouseMove(viewport, target)


def posterior_of(window: MainWindow, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Test image ``index``'s posterior mean and log-variance, encoded here independently."""
    data = window.session.data
    labels = data.test_labels[index:index + 1] if data.test_labels is not None else None
    mean, logvar = encode_images(window.latent.model, data.test_images[index:index + 1], labels)
    return mean[0].numpy().astype(np.float64), logvar[0].numpy().astype(np.float64)


def drawn(curve) -> np.ndarray:
    x, y = curve.getData()
    return np.column_stack([x, y])


def expected_outline(window: MainWindow, index: int) -> np.ndarray:
    mean, logvar = posterior_of(window, index)
    centre, covariance, _ = plane_covariance(window.latent.axes, mean, logvar)
    return ellipse_outline(centre, covariance)


def test_a_hovered_dots_exact_pca_ellipse_holds_the_chi_square_share_of_its_samples(
        qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=16))
    state, plane = window.latent, window.plane
    assert state.axes.names == ("PC1", "PC2")
    (x, y, index), = isolated_dots(window, 1)
    hover(qtbot, window, x, y)
    qtbot.waitUntil(lambda: state.hovered == index and plane.focus_ellipse.isVisible(), timeout=5000)
    outline = drawn(plane.focus_ellipse)
    np.testing.assert_allclose(outline, expected_outline(window, index), atol=1e-4)
    assert "approximate" not in plane.focus_ellipse.toolTip()

    # Monte Carlo: sample the posterior, project with the plane's own axes, count the samples
    # inside the drawn outline. With n = 20,000 the share's standard error is
    # sqrt(0.8647 * 0.1353 / n) = 0.0024; the 97-point polygon inside the true ellipse loses
    # under 0.001 of the mass; 0.012 is five standard errors.
    mean, logvar = posterior_of(window, index)
    samples = mean + np.exp(0.5 * logvar) * np.random.default_rng(11).standard_normal((20_000, mean.shape[0]))
    points = state.axes.project(samples)
    polygon = QPolygonF([QPointF(float(px), float(py)) for px, py in outline])
    inside = np.mean([polygon.containsPoint(QPointF(float(px), float(py)), Qt.FillRule.OddEvenFill)
                      for px, py in points])
    assert abs(inside - CHI2_2D_TWO_SIGMA) < 0.012, inside


def test_hovering_and_picking_show_that_images_ellipse_and_hide_the_previous_one(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=16))
    state, plane = window.latent, window.plane
    (xa, ya, a), (xb, yb, b), (xc, yc, c) = isolated_dots(window, 3)
    assert not plane.focus_ellipse.isVisible(), "nothing hovered or picked: no ellipse"

    hover(qtbot, window, xa, ya)
    qtbot.waitUntil(lambda: state.hovered == a, timeout=5000)
    assert "Test image" in plane.box.toolTip() and "2-sigma ellipse" in plane.box.toolTip()
    np.testing.assert_allclose(drawn(plane.focus_ellipse), expected_outline(window, a), atol=1e-4)
    hover(qtbot, window, xb, yb)
    qtbot.waitUntil(lambda: state.hovered == b, timeout=5000)
    np.testing.assert_allclose(drawn(plane.focus_ellipse), expected_outline(window, b), atol=1e-4)

    # Off every dot: the hover ends and, nothing being picked, so does the ellipse.
    (x0, x1), (y0, y1) = plane.visible_region()
    hover(qtbot, window, x0 + 0.02 * (x1 - x0), y1 - 0.02 * (y1 - y0))
    qtbot.waitUntil(lambda: state.hovered is None, timeout=5000)
    assert not plane.focus_ellipse.isVisible()

    # A picked dot keeps its ellipse; hovering another shows that one's, leaving it brings the pick's back.
    qtbot.mouseClick(plane.plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixels(window, xc, yc))
    qtbot.waitUntil(lambda: state.picked == c, timeout=5000)
    hover(qtbot, window, x0 + 0.02 * (x1 - x0), y1 - 0.02 * (y1 - y0))
    qtbot.waitUntil(lambda: state.hovered is None, timeout=5000)
    assert plane.focus_ellipse.isVisible()
    np.testing.assert_allclose(drawn(plane.focus_ellipse), expected_outline(window, c), atol=1e-4)
    hover(qtbot, window, xa, ya)
    qtbot.waitUntil(lambda: state.hovered == a, timeout=5000)
    np.testing.assert_allclose(drawn(plane.focus_ellipse), expected_outline(window, a), atol=1e-4)
    hover(qtbot, window, x0 + 0.02 * (x1 - x0), y1 - 0.02 * (y1 - y0))
    qtbot.waitUntil(lambda: state.hovered is None, timeout=5000)
    np.testing.assert_allclose(drawn(plane.focus_ellipse), expected_outline(window, c), atol=1e-4)


def test_the_prior_toggle_draws_exact_circles_on_pca_and_pushed_contours_on_the_map(
        qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=16))
    state, plane = window.latent, window.plane
    assert plane.show_prior.isEnabled() and not any(c.isVisible() for c in plane.prior_curves)
    qtbot.mouseClick(plane.show_prior, Qt.MouseButton.LeftButton)
    assert plane.show_prior.isChecked()
    # N(0, I) through orthonormal principal axes is N(project(0), I): circles of radius 1 and 2.
    centre = state.axes.project(np.zeros(state.dim))
    for sigma, curve in zip((1.0, 2.0), plane.prior_curves, strict=True):
        assert curve.isVisible()
        np.testing.assert_allclose(np.linalg.norm(drawn(curve) - centre, axis=1), sigma, rtol=1e-6)

    # Raw axes: the same circles about the origin.
    plane.axes_mode.setCurrentIndex(plane.axes_mode.findData("raw"))
    plane.dim_y.setValue(3)
    np.testing.assert_allclose(np.linalg.norm(drawn(plane.prior_curves[1]), axis=1), 2.0, rtol=1e-6)

    # The neighbour map: the pushed prior's density contours, estimated in the background.
    plane.axes_mode.setCurrentIndex(plane.axes_mode.findData("map"))
    qtbot.waitUntil(lambda: isinstance(state.axes, MapAxes), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: all(c.isVisible() for c in plane.prior_curves), timeout=TIMEOUT_MS)
    prior = state.prior_on_plane()
    assert prior is not None and prior.density is not None and prior.density.levels[0] > prior.density.levels[1]
    inner, outer = (drawn(c) for c in plane.prior_curves)
    inner, outer = inner[np.isfinite(inner).all(1)], outer[np.isfinite(outer).all(1)]
    assert len(inner) >= 3 and len(outer) >= 3
    assert np.all(inner.min(0) >= outer.min(0)) and np.all(inner.max(0) <= outer.max(0)), \
        "the 1-sigma region lies inside the 2-sigma one"
    assert "pushed through it" in plane.show_prior.toolTip()
    # A hovered dot's posterior on the map: estimated from samples, and said to be.
    (x, y, index), = isolated_dots(window, 1)
    hover(qtbot, window, x, y)
    qtbot.waitUntil(lambda: state.hovered == index and plane.focus_ellipse.isVisible(), timeout=5000)
    assert "approximate" in plane.focus_ellipse.toolTip()
    assert np.all(np.isfinite(drawn(plane.focus_ellipse)))

    qtbot.mouseClick(plane.show_prior, Qt.MouseButton.LeftButton)
    assert not any(c.isVisible() for c in plane.prior_curves)


def test_a_plain_autoencoder_says_it_has_no_posterior_and_no_prior(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("ae", latent_dim=8))
    state, plane, view = window.latent, window.plane, window.draw_view
    assert not plane.show_prior.isEnabled() and "no prior" in plane.show_prior.toolTip()
    (x, y, index), = isolated_dots(window, 1)
    hover(qtbot, window, x, y)
    qtbot.waitUntil(lambda: state.hovered == index, timeout=5000)
    assert "plain autoencoder" in plane.box.toolTip() and "no posterior" in plane.box.toolTip()
    assert not plane.focus_ellipse.isVisible()
    qtbot.mouseClick(plane.plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixels(window, x, y))
    qtbot.waitUntil(lambda: state.picked == index, timeout=5000)
    assert not plane.focus_ellipse.isVisible()
    assert not plane.draw_posterior_action.isEnabled()
    assert not view.picked_posterior_button.isEnabled() and "no posterior" in view.picked_posterior_button.toolTip()
    assert not state.draw_from_posterior(index)


def test_drawing_from_a_posterior_decodes_the_mean_then_distinct_samples(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=16))
    state, plane, view = window.latent, window.plane, window.draw_view
    dock = window.docks["draw_view"]
    dock.show()
    dock.raise_()
    (x, y, index), = isolated_dots(window, 1)
    assert not view.picked_posterior_button.isEnabled(), "nothing picked yet"
    qtbot.mouseClick(plane.plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixels(window, x, y))
    qtbot.waitUntil(lambda: state.picked == index, timeout=5000)
    assert view.picked_posterior_button.isEnabled() and plane.draw_posterior_action.isEnabled()

    with qtbot.waitSignal(state.draws_changed, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.picked_posterior_button, Qt.MouseButton.LeftButton)
    draws = state.posterior_draws
    assert draws.source == f"test image {index}" and draws.images.shape[0] == 1 + POSTERIOR_DRAWS
    mean, logvar = posterior_of(window, index)
    np.testing.assert_allclose(draws.codes[0], mean, atol=1e-5)
    np.testing.assert_allclose(draws.images[0], decode_codes(state.model, mean[None].astype(np.float32))[0],
                               atol=1e-5)
    flat = draws.images.reshape(len(draws.images), -1)
    gaps = np.abs(flat[:, None] - flat[None]).mean(-1)
    assert np.all(gaps[~np.eye(len(flat), dtype=bool)] > 1e-4), "the draws are not distinct"
    # The samples' average matches the mean's decode roughly (the decoder is not linear, so
    # not exactly): closely correlated, within 0.05 a pixel, and nearer to it than the decodes
    # of other test images typically are.
    average = flat[1:].mean(0)
    assert np.corrcoef(average, flat[0])[0, 1] > 0.9
    assert np.abs(average - flat[0]).mean() < 0.05
    others = state.stats.codes[np.flatnonzero(state.stats.indices != index)[:30]]
    other_decodes = decode_codes(state.model, others).reshape(len(others), -1)
    assert np.abs(average - flat[0]).mean() < np.median(np.abs(other_decodes - flat[0]).mean(1))
    # The codes are samples of that posterior: standardised, about N(0, 1).
    z = (draws.codes[1:] - mean) / np.exp(0.5 * logvar)
    assert abs(z.mean()) < 0.5 and 0.6 < z.std() < 1.4
    assert view.draws.isVisible() and view.draws.array is not None
    assert f"test image {index}" in view.draws_caption.text()

    # The plane's context action draws again, with new samples.
    with qtbot.waitSignal(state.draws_changed, timeout=TIMEOUT_MS):
        plane.draw_posterior_action.trigger()
    again = state.posterior_draws
    np.testing.assert_allclose(again.codes[0], draws.codes[0])
    assert not np.allclose(again.codes[1:], draws.codes[1:])

    # The user's input: drawn on the canvas, its posterior drawn from with the view's button.
    from test_draw_view import draw  # tests/gui is on sys.path

    assert not view.posterior_button.isEnabled(), "no input yet"
    draw(qtbot, view.canvas, [(8, 6), (14, 12), (14, 22)])
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    with qtbot.waitSignal(state.draws_changed, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.posterior_button, Qt.MouseButton.LeftButton)
    assert state.posterior_draws.source == "your input"
    np.testing.assert_allclose(state.posterior_draws.codes[0], state.input.mean, atol=1e-6)
