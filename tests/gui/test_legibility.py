"""What a new user sees at the default window size (1280x800): legends off the data, log
axes that can be read, texts that are not cut off, square manifold tiles, images large
enough to recognise, a marker that does not look like a class, the lattice size in
words, the left button moving the code and the right one panning, and views that follow
the model that is open now."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QPainter
from PySide6.QtWidgets import QApplication

from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.latent_plane import CLASS_COLOURS, class_colour
from explorer.gui.widgets.image_pane import LEGIBLE_TILE_PX
from explorer.gui.widgets.plot_legibility import LegibleAxis

DEFAULT_SIZE = (1280, 800)
MAX_LOG_LABELS = 12
TILE_SLACK = 0.9  # drawn tiles may come out a little under the legible height (rounding, padding)


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)


def at_default_size(qtbot, window: MainWindow) -> None:
    window.resize(*DEFAULT_SIZE)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == DEFAULT_SIZE, timeout=5000)
    settle(qtbot, window)


def settle(qtbot, window: MainWindow) -> None:
    """Wait until the docks stop moving (views that have just drawn ask for their room)."""
    last = None
    for _ in range(20):
        qtbot.wait(60)
        now = (window.plane.box.width(), window.plane.box.height())
        if now == last:
            return
        last = now


def raise_dock(qtbot, window: MainWindow, name: str) -> None:
    dock = window.docks[name]
    dock.show()
    dock.raise_()
    qtbot.waitUntil(dock.widget().isVisible, timeout=5000)
    qtbot.wait(50)


def drawn_labels(axis: LegibleAxis) -> list:
    """The (rect, text) of every tick label the axis would paint now."""
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    if axis.style["tickFont"]:
        painter.setFont(axis.style["tickFont"])
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _, text in texts if text]



def assert_readable(labels: list) -> None:
    assert 1 <= len(labels) <= MAX_LOG_LABELS, [t for _, t in labels]
    for (a, ta), (b, tb) in itertools.combinations(labels, 2):
        assert not a.intersects(b), f"tick labels {ta!r} and {tb!r} overlap"


def apart(a, b) -> bool:
    """Whether two scene rects share no more than a pixel's sliver (layout cells abut)."""
    overlap = a.intersected(b)
    return overlap.isEmpty() or min(overlap.width(), overlap.height()) <= 1.0


def mouse_drag(qtbot, view, start: QPointF, end: QPointF, button: Qt.MouseButton, steps: int = 10) -> None:
    """Press ``button`` at ``start`` (viewport pixels), move in steps a real mouse's time
    apart (pyqtgraph drops moves under 10 ms apart), release at ``end``."""
    viewport = view.viewport()

    def send(kind, pos, changed, held) -> None:
        event = QMouseEvent(kind, QPointF(pos), viewport.mapToGlobal(QPointF(pos)), changed, held,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)

    none = Qt.MouseButton.NoButton
    send(QEvent.Type.MouseMove, start, none, none)
    send(QEvent.Type.MouseButtonPress, start, button, button)
    for i in range(1, steps + 1):
        qtbot.wait(12)
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), none, button)
    send(QEvent.Type.MouseButtonRelease, end, button, none)


def to_pixels(window: MainWindow, x: float, y: float) -> QPointF:
    return QPointF(window.plane.plot.mapFromScene(window.plane.box.mapViewToScene(QPointF(x, y))))


# -- 1. legends ------------------------------------------------------------------------------


def test_legends_sit_beside_the_data_and_the_class_legend_hides_with_the_codes(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    at_default_size(qtbot, window)
    plane = window.plane
    assert plane.legend.isVisible() and len(plane.legend.items) == 10
    assert apart(plane.legend.sceneBoundingRect(), plane.box.sceneBoundingRect()), \
        "the class legend covers the codes"
    loss = window.loss_plot
    loss_box = loss.plot.getPlotItem().vb
    assert len(loss.legend.items) >= 3
    assert apart(loss.legend.sceneBoundingRect(), loss_box.sceneBoundingRect()), \
        "the loss legend covers the curves"
    for view, chart in ((window.anomaly_view, window.anomaly_view.histogram),
                        (window.compression_view, window.compression_view.plot)):
        box = chart.getPlotItem().vb
        assert apart(view.legend.sceneBoundingRect(), box.sceneBoundingRect())

    qtbot.mouseClick(plane.show_codes, Qt.MouseButton.LeftButton)
    assert not plane.show_codes.isChecked()
    assert not plane.legend.isVisible(), "a legend for hidden codes names nothing"
    qtbot.mouseClick(plane.show_codes, Qt.MouseButton.LeftButton)
    assert plane.legend.isVisible()


# -- 2. log axes ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", ["left", "bottom"])
@pytest.mark.parametrize(("lo", "hi", "size"), [(0.7, 2.7, 150), (0.0, 2.3, 300), (-6, 6, 200),
                                                (2.25, 2.35, 180), (0.0, 0.01, 120), (0, 9, 60)])
def test_a_log_axis_labels_few_ticks_that_do_not_overlap(qtbot, orientation, lo, hi, size):
    import pyqtgraph as pg

    plot = pg.PlotWidget(axisItems={orientation: LegibleAxis(orientation)})
    qtbot.addWidget(plot)
    plot.resize(size + 80 if orientation == "bottom" else 300, size + 60 if orientation == "left" else 200)
    plot.setLogMode(x=orientation == "bottom", y=orientation == "left")
    plot.show()
    qtbot.waitExposed(plot)
    if orientation == "left":
        plot.setYRange(lo, hi, padding=0)
    else:
        plot.setXRange(lo, hi, padding=0)
    qtbot.wait(20)
    assert_readable(drawn_labels(plot.getPlotItem().getAxis(orientation)))


def test_the_loss_and_compression_log_axes_are_readable(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    at_default_size(qtbot, window)
    loss = window.loss_plot
    qtbot.mouseClick(loss.log_toggle, Qt.MouseButton.LeftButton)
    assert loss.log_toggle.isChecked()
    loss.plot.getPlotItem().vb.autoRange()
    qtbot.wait(50)
    assert_readable(drawn_labels(loss.plot.getPlotItem().getAxis("left")))

    raise_dock(qtbot, window, "compression_view")
    view = window.compression_view
    view.pca_curve.setData([1, 2, 3, 5, 10, 20, 32, 50, 100, 200], np.linspace(45, 2, 10))
    view.plot.getPlotItem().vb.autoRange()
    qtbot.wait(50)
    assert_readable(drawn_labels(view.plot.getPlotItem().getAxis("bottom")))


# -- 3. texts ------------------------------------------------------------------------------


def test_anomaly_and_compression_texts_wrap_and_are_not_cut_off(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    at_default_size(qtbot, window)
    anomaly = window.anomaly_view
    anomaly.normal_edit.setText("1")
    raise_dock(qtbot, window, "anomaly_view")
    anomaly.score()
    qtbot.waitUntil(lambda: anomaly.detection is not None, timeout=60_000)
    raise_dock(qtbot, window, "compression_view")
    window.compression_view.summary.setText("k = 2: 392.0:1 compression. Test squared error per image: "
                                            "model 40.12, PCA 42.31 (model 1.05x lower).")
    for name, labels in (("anomaly_view", (anomaly.status, anomaly.readout, anomaly.worst_label)),
                         ("compression_view", (window.compression_view.summary,))):
        raise_dock(qtbot, window, name)
        for label in labels:
            assert label.text() and label.wordWrap(), label.objectName()
            assert label.height() >= label.heightForWidth(label.width()), f"{label.objectName()} is cut off"
            assert label.width() <= window.docks[name].width(), f"{label.objectName()} runs out of its dock"
    assert (window.width(), window.height()) == DEFAULT_SIZE, "long texts widened the window"


# -- 4. manifold ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [DEFAULT_SIZE, (1600, 700)])
def test_manifold_tiles_keep_the_image_aspect(qtbot, window, trained_checkpoint, size):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    window.resize(*size)
    qtbot.wait(100)
    plane = window.plane
    plane.grid_size.setValue(12)
    qtbot.mouseClick(plane.show_manifold, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plane.manifold_array is not None, timeout=5000)
    first = plane.manifold_array
    plane.redraw_manifold()
    qtbot.waitUntil(lambda: plane.manifold_array is not first, timeout=5000)  # decoded in a task
    tile = plane.manifold.sceneBoundingRect()
    tile_w, tile_h = tile.width() / 12, tile.height() / 12
    _, h, w = window.session.view_model.config.image_shape
    assert tile_w / tile_h == pytest.approx(w / h, rel=0.1), "manifold tiles are stretched"
    assert tile.contains(plane.box.sceneBoundingRect().adjusted(1, 1, -1, -1)), "the lattice leaves gaps"


# -- 5. image sizes ------------------------------------------------------------------------


def test_images_are_drawn_at_a_legible_size_at_the_default_window_size(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    at_default_size(qtbot, window)
    legible = TILE_SLACK * LEGIBLE_TILE_PX

    raise_dock(qtbot, window, "traversal_view")
    traversal = window.traversal_view
    qtbot.waitUntil(lambda: traversal.images is not None, timeout=5000)
    qtbot.wait(50)
    assert len(traversal.dims) >= 2
    assert traversal.tile_height_px() >= legible, f"traversal tiles are {traversal.tile_height_px():.0f} px"

    raise_dock(qtbot, window, "samples_view")
    samples = window.samples_view
    qtbot.waitUntil(lambda: samples.images is not None, timeout=5000)
    qtbot.wait(50)
    height = samples.pane.tile_height_px(samples.images.shape[2])
    assert height >= legible, f"samples are {height:.0f} px"

    anomaly = window.anomaly_view
    anomaly.normal_edit.setText("1")
    raise_dock(qtbot, window, "anomaly_view")
    anomaly.score()
    qtbot.waitUntil(lambda: anomaly.worst_rows is not None, timeout=60_000)
    qtbot.wait(50)
    height = anomaly.worst.tile_height_px(anomaly.worst_rows.shape[2])
    assert height >= legible, f"anomaly thumbnails are {height:.0f} px"
    assert (window.width(), window.height()) == DEFAULT_SIZE, "the views' minimum sizes outgrew the window"


# -- 6. hover colour -----------------------------------------------------------------------


MIN_COLOUR_DISTANCE = 80  # RGB distance below which two colours read as the same at a glance


def test_the_marker_hover_colour_is_no_class_colour(qtbot, window):
    def rgb(colour) -> np.ndarray:
        return np.array(colour.getRgb()[:3], dtype=float)

    hover = rgb(window.plane.marker.hoverPen.color())
    plain = rgb(window.plane.marker.pen.color())
    classes = [rgb(class_colour(i, len(CLASS_COLOURS))) for i in range(len(CLASS_COLOURS))]
    for k, colour in enumerate(classes):
        assert np.linalg.norm(hover - colour) > MIN_COLOUR_DISTANCE, f"hovering looks like class {k}"
    assert np.linalg.norm(hover - plain) > MIN_COLOUR_DISTANCE, "hovering should show"


# -- 7. grid size --------------------------------------------------------------------------


def test_the_grid_size_reads_as_a_lattice(qtbot, window):
    spin = window.plane.grid_size
    spin.setValue(15)
    assert spin.text() == "15 x 15"
    spin.setValue(7)
    assert spin.lineEdit().text() == "7 x 7"
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "12")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert spin.value() == 12 and spin.text() == "12 x 12"


# -- 8. mouse buttons ----------------------------------------------------------------------


def test_left_drag_on_empty_space_moves_the_code_and_right_drag_pans(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    at_default_size(qtbot, window)
    plane, state = window.plane, window.latent
    (x0, x1), (y0, y1) = plane.box.viewRange()
    start = np.array([x0 + 0.15 * (x1 - x0), y0 + 0.85 * (y1 - y0)])  # far from the marker
    end = np.array([x0 + 0.3 * (x1 - x0), y0 + 0.7 * (y1 - y0)])
    assert np.linalg.norm(state.plane_point() - start) > 0.2 * (x1 - x0)
    before_range = plane.box.viewRange()
    mouse_drag(qtbot, plane.plot, to_pixels(window, *start), to_pixels(window, *end), Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(plane.box.viewRange(), before_range, atol=1e-9, err_msg="a left drag panned")
    assert np.linalg.norm(state.plane_point() - end) < 0.03 * (x1 - x0), "the marker did not follow the drag"

    code = state.code.copy()
    mouse_drag(qtbot, plane.plot, to_pixels(window, *end), to_pixels(window, *start), Qt.MouseButton.RightButton)
    (nx0, nx1), (ny0, ny1) = plane.box.viewRange()
    assert abs(nx0 - x0) > 0.05 * (x1 - x0) and nx1 - nx0 == pytest.approx(x1 - x0, rel=1e-6), "no pan"
    np.testing.assert_array_equal(state.code, code)


# -- 9. following the model ----------------------------------------------------------------


def test_the_code_caption_follows_new_axes(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    state, caption = window.latent, window.code_view.caption
    state.randomise(seed=3)
    pca_text = caption.text()
    window.plane.axes_mode.setCurrentIndex(window.plane.axes_mode.findData("raw"))
    assert state.axes_mode == "raw"
    x, y = state.plane_point()
    assert f"({x:+.2f}, {y:+.2f})" in caption.text() and caption.text() != pca_text


def test_a_new_model_is_framed_afresh(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    plane = window.plane
    plane.box.scaleBy((0.05, 0.05), center=(50.0, 50.0))  # the user zooms far from the codes
    qtbot.wait(50)
    old_stats = window.latent.stats
    assert window.files.open_checkpoint(str(trained_checkpoint("ae")))
    qtbot.waitUntil(lambda: window.latent.stats is not None and window.latent.stats is not old_stats
                    and window.latent.ready, timeout=30_000)
    qtbot.wait(50)
    (x0, x1), (y0, y1) = plane.box.viewRange()
    x, y = window.latent.plane_point()
    assert x0 <= x <= x1 and y0 <= y <= y1, "the marker is off screen"
    points = window.latent.axes.project(window.latent.stats.codes)
    inside = ((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)).mean()
    assert inside > 0.9, f"only {inside:.0%} of the new codes are in view"


def test_results_of_the_previous_model_are_dropped(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    for name in ("samples_view", "interpolation_view", "denoise_view"):
        raise_dock(qtbot, window, name)
    qtbot.waitUntil(lambda: window.samples_view.images is not None and window.interpolation_view.strip is not None
                    and window.denoise_view.rows is not None and window.recon_view.grid is not None,
                    timeout=30_000)  # every picture is decoded off the GUI thread
    old_grid = window.recon_view.grid

    with qtbot.waitSignal(window.session.opened, timeout=30_000):  # the file is read in the background
        assert window.files.open_checkpoint(str(trained_checkpoint("ae")))
    # Straight after the switch, nothing computed from the old model is still shown.
    assert window.samples_view.images is None and window.samples_view.pane.array is None
    assert window.interpolation_view.strip is None and window.interpolation_view.pane.array is None
    assert window.denoise_view.rows is None and window.anomaly_view.scored is None
    assert window.recon_view.grid is not old_grid
