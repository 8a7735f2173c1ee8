"""The plane's neighbour map (UMAP-style, explorer.analysis.maps) in the window: chosen from
the Axes box, fitted in the background, drawn from its cache, dragged through its inverse,
and an extrapolated decode says so."""

from __future__ import annotations

import numpy as np

from explorer.analysis.maps import EXTRAPOLATED, MapAxes


def open_model(qtbot, window, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)


def test_the_neighbour_map_is_drawn_dragged_and_flags_extrapolation(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    state, plane = window.latent, window.plane
    combo = plane.axes_mode
    combo.setCurrentIndex(combo.findData("map"))
    qtbot.waitUntil(lambda: isinstance(state.axes, MapAxes), timeout=60_000)
    axes = state.axes
    assert axes.names == ("map 1", "map 2") and axes.latent_map.method == "umap"
    drawn = np.concatenate([np.column_stack([s.data["x"], s.data["y"]]) for s in plane.scatters])
    assert len(drawn) == len(state.stats.codes)
    np.testing.assert_allclose(np.sort(drawn, axis=0), np.sort(axes.known_points, axis=0), atol=1e-4)

    # A point among the data: the code comes from the map's inverse and the decode is trusted.
    inside = axes.known_points[0]
    state.set_plane_point(float(inside[0]), float(inside[1]))
    np.testing.assert_allclose(state.code, axes.latent_map.inverse(inside[None])[0], atol=1e-5)
    assert not state.is_extrapolated()
    assert "Extrapolated" not in window.code_view.caption.text()

    # Far from every code: said in the caption.
    far = axes.known_points.max(0) + 40 * axes.latent_map.scale
    state.set_plane_point(float(far[0]), float(far[1]))
    assert state.extrapolation() > EXTRAPOLATED
    assert "Extrapolated" in window.code_view.caption.text()

    # Back to PCA: a linear plane again.
    combo.setCurrentIndex(combo.findData("pca"))
    assert not isinstance(state.axes, MapAxes) and state.axes.names == ("PC1", "PC2")
