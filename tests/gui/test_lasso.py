"""The latent plane's lasso, driven as a person would: turn on Lasso and draw around a group
of dots with the mouse (or Shift+drag with it off), see them ringed and counted, clear them
with Esc or a click, keep dragging the marker with the lasso off, and make a direction from
the selection against the rest in the Directions view."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from explorer.analysis.directions import Made
from explorer.analysis.polygon import points_in_polygon
from explorer.gui.app.main_window import MainWindow
from explorer.gui.state.latent_state import LatentState
from explorer.gui.state.session import TrainingSession

TIMEOUT_MS = 30_000
LEFT = Qt.MouseButton.LeftButton


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=TIMEOUT_MS)
    settle_layout(qtbot, window)


def settle_layout(qtbot, window: MainWindow) -> None:
    """Wait until the plot stops moving on screen: its axes take their width from their tick
    labels a few events after the codes land, which shifts every dot sideways."""
    box = window.plane.box

    def where() -> tuple:
        return box.sceneBoundingRect().getRect(), tuple(map(tuple, box.viewRange()))

    for _ in range(100):
        before = where()
        qtbot.wait(60)
        if where() == before:
            return
    raise AssertionError("the plot kept moving")


def to_pixels(window: MainWindow, x: float, y: float) -> QPointF:
    """Viewport pixel (whole, as a mouse gives) of plane coordinates (x, y)."""
    return QPointF(window.plane.plot.mapFromScene(window.plane.box.mapViewToScene(QPointF(x, y))))


def to_plane(window: MainWindow, pixel: QPointF) -> tuple[float, float]:
    point = window.plane.box.mapSceneToView(window.plane.plot.mapToScene(pixel.toPoint()))
    return point.x(), point.y()


def mouse(widget, kind, pos: QPointF, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    QApplication.sendEvent(widget, QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, modifiers))


def draw_outline(qtbot, window: MainWindow, pixels: list[QPointF], shift: bool = False) -> None:
    """Press at the first pixel, move through the rest with the button held (spaced like a
    real mouse: pyqtgraph drops moves closer than 10 ms apart) and let go at the last."""
    viewport = window.plane.plot.viewport()
    mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    mouse(viewport, QEvent.Type.MouseMove, pixels[0], Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, mods)
    mouse(viewport, QEvent.Type.MouseButtonPress, pixels[0], LEFT, LEFT, mods)
    for p in pixels[1:]:
        qtbot.wait(12)
        mouse(viewport, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, LEFT, mods)
    mouse(viewport, QEvent.Type.MouseButtonRelease, pixels[-1], LEFT, Qt.MouseButton.NoButton, mods)


def circle_pixels(window: MainWindow, centre: tuple[float, float], radius_px: float, n: int = 48) -> list[QPointF]:
    c = to_pixels(window, *centre)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    # Whole pixels, as a mouse reports them; vertices far more than the lasso's 3 px apart.
    return [QPointF(round(c.x() + radius_px * np.cos(a)), round(c.y() + radius_px * np.sin(a))) for a in angles]


def dots(window: MainWindow) -> tuple[np.ndarray, np.ndarray]:
    state = window.latent
    return state.axes.project(state.stats.codes), state.stats.indices


def busiest_spot(window: MainWindow) -> tuple[float, float]:
    """The plane point (a dot) with the most dots within 40 px: a group worth drawing around."""
    points, _ = dots(window)
    pixels = np.array([[p.x(), p.y()] for p in (to_pixels(window, x, y) for x, y in points)])
    (x0, x1), (y0, y1) = window.plane.visible_region()
    inside = (points[:, 0] > x0 + 0.25 * (x1 - x0)) & (points[:, 0] < x1 - 0.25 * (x1 - x0)) \
        & (points[:, 1] > y0 + 0.25 * (y1 - y0)) & (points[:, 1] < y1 - 0.25 * (y1 - y0))
    near = [(np.hypot(*(pixels - pixels[i]).T) < 40).sum() if inside[i] else -1 for i in range(len(points))]
    best = int(np.argmax(near))
    return float(points[best, 0]), float(points[best, 1])


def lasso_around(qtbot, window: MainWindow, centre, radius_px: float = 40, shift: bool = False) -> np.ndarray:
    """Draw a circle of ``radius_px`` around ``centre``; returns the test images it should
    select: the NumPy point-in-polygon test on the dots' plane coordinates against the
    outline as drawn (its pixels taken back to the plane)."""
    pixels = circle_pixels(window, centre, radius_px)
    outline = np.array([to_plane(window, p) for p in pixels])
    points, indices = dots(window)
    draw_outline(qtbot, window, pixels, shift=shift)
    return indices[points_in_polygon(points, outline)]


def test_a_lasso_selects_exactly_the_dots_inside_and_esc_clears_them(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    plane, state = window.plane, window.latent
    changes = []
    state.selection_changed.connect(lambda: changes.append(state.selection.copy()))
    assert plane.lasso.count.text() == "" and state.selection.size == 0
    # The controls float over the data area's top-right corner, inside it.
    data_area = plane.plot.mapFromScene(plane.box.sceneBoundingRect()).boundingRect()
    assert plane.lasso.isVisible() and data_area.contains(plane.lasso.geometry())
    assert plane.lasso.x() > data_area.center().x() and plane.lasso.y() < data_area.center().y()

    qtbot.mouseClick(plane.lasso.button, LEFT)
    assert plane.lasso.button.isChecked()
    centre = busiest_spot(window)
    code_before = state.code.copy()
    expected = lasso_around(qtbot, window, centre)

    assert len(expected) >= 5, "the circle should hold a group of dots"
    np.testing.assert_array_equal(state.selection, np.sort(expected))
    # The same group, judged independently on screen: dots well inside the 40 px circle are in,
    # dots well outside it are out.
    points, indices = dots(window)
    middle = to_pixels(window, *centre)
    gap = np.array([np.hypot(p.x() - middle.x(), p.y() - middle.y())
                    for p in (to_pixels(window, x, y) for x, y in points)])
    chosen = np.isin(indices, state.selection)
    assert chosen[gap < 36].all() and not chosen[gap > 44].any()
    np.testing.assert_array_equal(state.code, code_before)  # drawing a lasso does not move the code
    assert plane.lasso.count.text() == f"{len(expected):,} test images selected"
    assert plane.lasso.count.isVisible() and data_area.contains(plane.lasso.geometry())
    ringed = np.column_stack(plane.lasso.rings.getData())
    np.testing.assert_allclose(np.sort(ringed, axis=0), np.sort(points[np.isin(indices, expected)], axis=0))
    assert len(changes) == 1
    assert not plane.lasso.overlay.path.isVisible(), "the outline goes once the dots are selected"

    plane.plot.setFocus()
    qtbot.keyClick(plane.plot, Qt.Key.Key_Escape)
    assert state.selection.size == 0 and plane.lasso.count.text() == ""
    assert len(plane.lasso.rings.getData()[0]) == 0

    # A click (no drag) with Lasso on clears a selection too, and leaves the code alone.
    lasso_around(qtbot, window, centre)
    assert state.selection.size > 0
    qtbot.mouseClick(plane.plot.viewport(), LEFT, pos=to_pixels(window, *centre).toPoint())
    assert state.selection.size == 0
    np.testing.assert_array_equal(state.code, code_before)

    # Another model (the file opened again): the numbers the selection held belong to the old one.
    lasso_around(qtbot, window, centre)
    assert state.selection.size > 0
    old_model = window.session.view_model
    assert window.files.open_checkpoint(str(trained_checkpoint("vae", latent_dim=2)))
    qtbot.waitUntil(lambda: window.session.view_model is not old_model and state.ready, timeout=TIMEOUT_MS)
    assert state.selection.size == 0 and plane.lasso.count.text() == ""


def test_with_the_lasso_off_the_marker_drags_and_shift_drag_draws_a_lasso(qtbot, window, trained_checkpoint, drag):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    plane, state = window.plane, window.latent
    assert not plane.lasso.button.isChecked()
    pos = plane.marker.pos()
    start = np.array([pos.x(), pos.y()])
    (x0, x1), (y0, y1) = plane.visible_region()
    target = np.array([x0 + 0.8 * (x1 - x0), y0 + 0.25 * (y1 - y0)])
    drag(plane.plot, to_pixels(window, *start).toPoint(), to_pixels(window, *target).toPoint(), steps=12)
    assert np.linalg.norm(state.axes.project(state.code) - target) < 0.05 * (x1 - x0), "the marker did not follow"
    assert state.selection.size == 0, "a plain drag selects nothing"

    # Lasso on: the same drag from the marker draws instead of moving it.
    qtbot.mouseClick(plane.lasso.button, LEFT)
    moved = state.code.copy()
    marker = plane.marker.pos()
    drag(plane.plot, to_pixels(window, marker.x(), marker.y()).toPoint(), to_pixels(window, *start).toPoint(),
         steps=12)
    np.testing.assert_array_equal(state.code, moved)

    # Lasso off again (the selection stays), then Shift+drag draws one without the button.
    qtbot.mouseClick(plane.lasso.button, LEFT)
    assert not plane.lasso.button.isChecked()
    centre = busiest_spot(window)
    expected = lasso_around(qtbot, window, centre, shift=True)
    assert len(expected) >= 5
    np.testing.assert_array_equal(state.selection, np.sort(expected))
    np.testing.assert_array_equal(state.code, moved)


def test_a_direction_from_the_selection_against_the_rest(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=16))
    plane, state, session = window.plane, window.latent, window.session
    dock = window.directions_dock
    dock.show()
    dock.raise_()
    view = window.directions_view
    qtbot.waitUntil(view.isVisible, timeout=5000)
    assert not view.add_selection.isEnabled()
    assert "Lasso" in view.add_selection.toolTip(), "the tooltip says how to get a selection"

    qtbot.mouseClick(plane.lasso.button, LEFT)
    selected = np.sort(lasso_around(qtbot, window, busiest_spot(window)))
    assert len(selected) >= 5 and np.array_equal(state.selection, selected)
    assert view.add_selection.isEnabled()
    assert f"{len(selected):,} test images selected" in view.add_selection.toolTip()

    qtbot.mouseClick(view.add_selection, LEFT)
    qtbot.waitUntil(lambda: len(session.directions) == 1, timeout=TIMEOUT_MS)
    direction = session.directions[0]
    chosen = np.isin(state.stats.indices, selected)
    codes = state.stats.codes.astype(np.float64)
    gap = codes[chosen].mean(0) - codes[~chosen].mean(0)
    np.testing.assert_allclose(direction.vector, gap / np.linalg.norm(gap), atol=1e-6)
    assert direction.made is Made.SELECTION and direction.name == f"selection ({len(selected)})"
    assert sorted(direction.defined_by) == selected.tolist()
    assert abs(direction.position(codes[~chosen].mean(0))) < 1e-6
    assert abs(direction.position(codes[chosen].mean(0)) - 1.0) < 1e-6
    assert view.table.item(0, 0).text() == direction.name
    assert view.table.item(0, 1).text() == "selection vs rest"
    assert window.isWindowModified()
    # Renamable like the others.
    view.table.item(0, 0).setText("round ones")
    assert session.directions[0].name == "round ones"


def test_the_selection_is_kept_sorted_and_dropped_with_other_data(qtbot):
    session = TrainingSession()
    try:
        state = LatentState(session)
        changes = []
        state.selection_changed.connect(lambda: changes.append(state.selection.copy()))
        state.set_selection(np.array([7, 3, 3, 12]))
        assert state.selection.tolist() == [3, 7, 12] and len(changes) == 1
        state.set_selection(np.array([12, 7, 3]))
        assert len(changes) == 1, "the same selection again says nothing"
        session.data_changed.emit()  # another dataset or test subset arrived
        assert state.selection.size == 0 and len(changes) == 2
    finally:
        session.shutdown()
