"""The latent plane: the test set's codes as a scatter by class, a marker to drag, and the
decoded manifold under them.

Dragging the marker, or pressing and dragging anywhere on empty space (a near miss of the
marker must not move the view), or the arrow keys move the shared code along the plane;
clicking a dot loads that test image's code; right-drag pans and the wheel zooms. With
more than two latent dimensions the plane is the codes' two principal axes, or two raw
dimensions on request. The manifold lattice is decoded in one batch for a region that
covers the view and is shaped so each tile is drawn with its image's own aspect (a
lattice stretched over a wide view turns an upright 0 into an oval), so it follows pan and
zoom; redraws are coalesced by a short timer, so a fast pan costs one decode per frame at
most, and the decode runs in the task runner: a 15 x 15 lattice of a 64x64 colour conv-VAE
held the GUI thread for a second on a busy machine (the picture on screen stays until the
new one lands). The class legend sits beside the plot, never over the codes, and hides with them.

Hovering a test dot, or picking one, outlines that image's posterior (VAE family) as the
2-sigma ellipse of N(mean, diag(var)) seen on the plane, as the user's own input's is; the dot's
tooltip says when there is none (a plain autoencoder, a replayed epoch). **Prior** draws the
prior N(0, I)'s 1- and 2-sigma contours: exact ellipses through a linear plane, through the
neighbour map the contours of the pushed prior's density holding the same shares. The plane's
context menu (right click) decodes draws from the picked image's posterior into the Your
input view.

There is one scatter (and legend entry) per class present or named, never one per number
up to the largest label: a single dot labelled 999,999 once built a million items and froze
the window for minutes. Past :data:`MAX_CLASS_GROUPS` classes the rest share one scatter.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.analysis.manifold import manifold_codes, manifold_image
from explorer.analysis.maps import MapAxes, PushedDensity
from explorer.analysis.projection import PlaneAxes
from explorer.gui.state.latent_state import (
    INPUT_SIGMAS,
    MAP_POSTERIOR_SAMPLES,
    PRIOR_MAP_SAMPLES,
    LatentState,
    PriorOnPlane,
    ellipse_outline,
)
from explorer.gui.state.settings import read_flag, read_int
from explorer.gui.views.plane_selection import PlaneSelection
from explorer.gui.views.timeline_bar import TimelineBar
from explorer.gui.widgets.plot_legibility import add_outside_legend, legible_axes
from explorer.gui.widgets.redraw import Coalescer
from explorer.models import Autoencoder
from explorer.runtime.threads import ModelCopy

# Colour-blind-friendly categorical colours (Tableau 10), then pyqtgraph's hue wheel.
CLASS_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
DEFAULT_GRID = 15
NUDGE = 0.02  # arrow keys move the marker by this share of the visible range
MARKER_COLOUR = "#d62728"
# Hovering the marker turns it white: no class colour is white, so it never looks like a dot.
MARKER_HOVER_COLOUR = "#ffffff"
INPUT_COLOUR = "#17becf"  # the user's own input (the "Your input" view): no class colour, not the marker's
FOCUS_COLOUR = "#f2f2f2"  # the hovered or picked test image's posterior: no class colour either
PRIOR_COLOUR = (200, 200, 200, 200)
DOT_SIZE = 5  # screen pixels
HOVER_PX = 4.0  # the pointer is over a dot within this many pixels of its centre
LEGEND_ROWS = 12  # more classes than this go into further legend columns
# Scatters (and legend entries) at most: each costs about half a millisecond to build and a
# legend row; classes past this many are drawn together as "other classes".
MAX_CLASS_GROUPS = 100


MANIFOLD_TASK = "manifold"


class BuiltOnce:
    """A model copy built at its first use, in the task that needs it, and reused by the
    next decodes of the same weights (one manifold task runs at a time; the lock is for
    safety): a pan asks for a decode every frame, and rebuilding the model each time would
    cost more than the decode."""

    def __init__(self, copy: ModelCopy) -> None:
        self._copy = copy
        self._model: Autoencoder | None = None
        self._lock = threading.Lock()

    def get(self) -> Autoencoder:
        with self._lock:
            if self._model is None:
                self._model = self._copy.build()
            return self._model


@dataclass(frozen=True)
class ManifoldJob:
    """One manifold picture's inputs, taken on the GUI thread and decoded in a task."""

    model: BuiltOnce
    axes: PlaneAxes | MapAxes
    reference: np.ndarray  # the current code: the lattice's values off the plane
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    n: int
    label: int | None


    def asks_the_same_as(self, other: ManifoldJob) -> bool:
        """Whether ``other`` would decode the same picture (same weights, axes, code and lattice)."""
        return (self.model is other.model and self.axes is other.axes and self.n == other.n
                and self.label == other.label and self.x_range == other.x_range and self.y_range == other.y_range
                and np.array_equal(self.reference, other.reference))


@dataclass(frozen=True)
class ManifoldPicture:
    """A decoded lattice flipped for the y-up view, and what it was decoded from."""

    image: np.ndarray
    job: ManifoldJob

    def save_png(self, path: str) -> None:
        """The lattice in reading order (top row first), one pixel per decoded pixel."""
        import torch

        from explorer.analysis.grids import save_png

        upright = torch.from_numpy(np.ascontiguousarray(self.image[::-1]))
        save_png(upright[None] if upright.ndim == 2 else upright.permute(2, 0, 1), path)


def decode_manifold(job: ManifoldJob, model: Autoencoder | None = None) -> ManifoldPicture:
    """Lift, decode and tile the lattice: in the task runner with the job's own copy of the
    model, or with ``model`` (the view's, on the GUI thread) where nothing else will do."""
    model = model if model is not None else job.model.get()
    picture = manifold_image(model, job.axes, job.reference, job.x_range, job.y_range, job.n, job.label)
    # The view's y axis points up and the picture's rows point down: flip it so each image
    # stands upright and the top row sits at the top of the view.
    return ManifoldPicture(np.ascontiguousarray(picture[::-1]), job)


class GridSizeBox(QSpinBox):
    """The manifold's images per side, shown as the lattice it makes: "15 x 15"."""

    def textFromValue(self, value: int) -> str:  # noqa: N802 - Qt's name
        return f"{value} x {value}"

    def valueFromText(self, text: str) -> int:  # noqa: N802 - Qt's name
        first = text.split("x")[0].strip()
        return int(first) if first.isdigit() else self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        first = text.split("x")[0].strip()
        if not first:
            return QValidator.State.Intermediate, text, pos
        if not first.isdigit():
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= int(first) <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos


def class_groups(labels: np.ndarray | None, names: tuple[str, ...],
                 limit: int = MAX_CLASS_GROUPS) -> list[tuple[str, np.ndarray]]:
    """The plane's scatters: (name, rows) for every named class (when there are at most
    ``limit`` names, so the legend stays the same from frame to frame) and every class
    present, in class order; whatever is past ``limit`` goes into one "other classes".
    Work grows with the points, never with the size of a label."""
    n = 0 if labels is None else len(labels)
    if labels is None or not names:
        return [("test images", np.arange(n))]
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")  # rows of each class stay in test-set order
    present, starts = np.unique(labels[order], return_index=True)
    ends = np.append(starts[1:], n)
    rows = {int(k): order[a:b] for k, a, b in zip(present, starts, ends, strict=True)}
    named = range(len(names)) if len(names) <= limit else range(0)
    classes = sorted(set(named) | set(rows))
    empty = np.zeros(0, dtype=np.int64)
    own = classes if len(classes) <= limit else classes[:limit - 1]
    groups = [(names[k] if k < len(names) else str(k), rows.get(k, empty)) for k in own]
    if len(own) < len(classes):
        groups.append(("other classes", np.sort(np.concatenate([rows.get(k, empty) for k in classes[len(own):]]))))
    return groups


def class_colour(i: int, n: int) -> pg.Qt.QtGui.QColor:
    if n <= len(CLASS_COLOURS):
        return pg.mkColor(CLASS_COLOURS[i])
    return pg.intColor(i, hues=n)


class PlaneViewBox(pg.ViewBox):
    """A ViewBox that reports left clicks and left drags on empty space (the marker and the
    dots take their own first), so a press that misses the marker still moves the code
    instead of the view; the right button pans, the middle button and the wheel as usual."""

    clicked_at = Signal(float, float)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            point = self.mapSceneToView(ev.scenePos())
            self.clicked_at.emit(point.x(), point.y())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - pyqtgraph's name
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            point = self.mapSceneToView(ev.scenePos())
            self.clicked_at.emit(point.x(), point.y())
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.pan_by(ev.pos() - ev.lastPos())
        else:
            super().mouseDragEvent(ev, axis)

    def pan_by(self, pixels) -> None:
        """Move the view so its content follows a drag of ``pixels`` (item coordinates)."""
        inverse = pg.functions.invertQTransform(self.childGroup.transform())
        shift = inverse.map(-pixels) - inverse.map(pg.Point(0, 0))
        self._resetTarget()
        self.translateBy(x=shift.x(), y=shift.y())
        self.sigRangeChangedManually.emit(self.state["mouseEnabled"])


class LatentPlane(QWidget):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._moving_marker = False
        self._ranged_for: tuple | None = None  # what the view was last framed for
        self._user_framed = False  # the user panned or zoomed since: leave the view alone
        self.scatters: list[pg.ScatterPlotItem] = []
        self.manifold_array: np.ndarray | None = None
        self.manifold_picture: ManifoldPicture | None = None  # the one on screen
        self._decoder: tuple[Autoencoder, BuiltOnce] | None = None  # the weights the manifold decodes with

        # -- controls ---------------------------------------------------------------------
        self.axes_mode = QComboBox(objectName="planeAxes")
        self.axes_mode.addItem("Principal axes (PCA)", "pca")
        self.axes_mode.addItem("Two latent dimensions", "raw")
        self.axes_mode.addItem("Neighbour map (UMAP-style)", "map")
        self.axes_mode.setToolTip("With more than two latent dimensions, the plane shows the codes' two main "
                                  "directions, two dimensions of your choice, or a neighbour map that keeps "
                                  "similar codes together (fitted in the background; dragging decodes through "
                                  "its inverse, and far from the data the decode is marked extrapolated)")
        self.dim_x = QSpinBox(objectName="planeDimX", prefix="x = z")
        self.dim_y = QSpinBox(objectName="planeDimY", prefix="y = z")
        self.show_codes = QCheckBox("&Codes", objectName="showCodes", checked=True)
        self.show_codes.setToolTip("The test images' codes, coloured by class")
        self.show_manifold = QCheckBox("&Manifold", objectName="showManifold")
        self.show_manifold.setToolTip("Decode a lattice of codes across the visible region")
        self.grid_size = GridSizeBox(objectName="manifoldSize", minimum=3, maximum=40, value=DEFAULT_GRID)
        self.grid_size.setToolTip("Images per side of the manifold lattice")
        self.show_prior = QCheckBox("P&rior", objectName="showPrior")
        self.class_label = QLabel("Class:")
        self.class_picker = QComboBox(objectName="classPicker")
        self.class_picker.setToolTip("The class a conditional model draws; the code (the style) is kept")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Axes:"))
        bar.addWidget(self.axes_mode)
        bar.addWidget(self.dim_x)
        bar.addWidget(self.dim_y)
        bar.addSpacing(12)
        bar.addWidget(self.show_codes)
        bar.addWidget(self.show_manifold)
        bar.addWidget(self.grid_size)
        bar.addWidget(self.show_prior)
        bar.addSpacing(12)
        bar.addWidget(self.class_label)
        bar.addWidget(self.class_picker)
        bar.addStretch(1)

        # -- the plot ---------------------------------------------------------------------
        self.box = PlaneViewBox()
        self.plot = pg.PlotWidget(viewBox=self.box, axisItems=legible_axes())
        self.plot.setObjectName("latentPlane")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.legend = add_outside_legend(self.plot.getPlotItem(), "right", labelTextSize="8pt", frame=False,
                                         labelTextColor=(230, 230, 230))
        self.manifold = pg.ImageItem(axisOrder="row-major")
        self.manifold.setZValue(-10)
        self.manifold.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # redrawn only when it changes
        self.manifold.setVisible(False)
        self.box.addItem(self.manifold, ignoreBounds=True)
        self.marker = pg.TargetItem(pos=(0, 0), size=18, movable=True, pen=pg.mkPen(MARKER_COLOUR, width=3),
                                    hoverPen=pg.mkPen(MARKER_HOVER_COLOUR, width=3))
        self.marker.setZValue(20)
        self.marker.setVisible(False)
        self.box.addItem(self.marker, ignoreBounds=True)
        # The user's own input (the "Your input" view): its code, and for the VAE family the
        # 2-sigma outline of its posterior. Neither can be dragged: "Set as current code" moves the marker there.
        self.input_marker = pg.TargetItem(pos=(0, 0), size=14, symbol="star", movable=False,
                                          pen=pg.mkPen(INPUT_COLOUR, width=2), brush=pg.mkBrush(INPUT_COLOUR),
                                          hoverPen=pg.mkPen(INPUT_COLOUR, width=2), hoverBrush=pg.mkBrush(INPUT_COLOUR))
        self.input_marker.setToolTip("Your input: the code the encoder gives the image in the Your input view")
        self.input_ellipse = pg.PlotCurveItem(pen=pg.mkPen(INPUT_COLOUR, width=2, style=Qt.PenStyle.DashLine))
        for item in (self.input_marker, self.input_ellipse):
            item.setZValue(19)
            item.setVisible(False)
            self.box.addItem(item, ignoreBounds=True)
        # The hovered or picked test image's posterior, and the prior's 1- and 2-sigma contours
        # (each curve one or more closed outlines, separated by NaN).
        self.focus_ellipse = pg.PlotCurveItem(pen=pg.mkPen(FOCUS_COLOUR, width=2))
        self.prior_curves = [pg.PlotCurveItem(pen=pg.mkPen(PRIOR_COLOUR, width=1.5, style=style), connect="finite")
                             for style in (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine)]
        for item in (self.focus_ellipse, *self.prior_curves):
            item.setZValue(18)
            item.setVisible(False)
            self.box.addItem(item, ignoreBounds=True)
        self._dots: tuple[np.ndarray, np.ndarray] | None = None  # the drawn (N, 2) positions and their test indices
        self._prior_traced: PushedDensity | None = None  # the pushed density whose contours are drawn
        self.draw_posterior_action = self.box.menu.addAction("Draw from the picked image's posterior")
        self.draw_posterior_action.setObjectName("drawFromPickedPosterior")
        self.draw_posterior_action.setToolTip("Decode the picked test image's mean and samples of its posterior "
                                              "side by side (shown in the Your input view)")
        self.draw_posterior_action.triggered.connect(self._draw_from_picked)
        self.placeholder = QLabel("The latent plane appears here once a model is training or opened.\n"
                                  "Drag the red marker to decode any point; click a dot to load a test image.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setEnabled(False)
        self.plot.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.plot, 1)
        self.timeline_bar = TimelineBar(state)
        layout.addWidget(self.timeline_bar)

        self.manifold_redraws = Coalescer(self.redraw_manifold, self.show_manifold.isChecked, parent=self)
        for key, dx, dy in ((Qt.Key.Key_Left, -1, 0), (Qt.Key.Key_Right, 1, 0),
                            (Qt.Key.Key_Up, 0, 1), (Qt.Key.Key_Down, 0, -1)):
            shortcut = QShortcut(QKeySequence(key), self.plot, context=Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(lambda dx=dx, dy=dy: self.nudge(dx, dy))

        # -- wiring -----------------------------------------------------------------------
        self.marker.sigPositionChanged.connect(self._on_marker_moved)
        self.box.clicked_at.connect(self._on_plane_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_pointer_moved)
        self.plot.viewport().installEventFilter(self)
        self.box.sigRangeChanged.connect(lambda *_: self._schedule_manifold())
        self.box.sigResized.connect(lambda *_: self._schedule_manifold())  # the tiles' shape follows the box's
        self.box.sigRangeChangedManually.connect(lambda *_: setattr(self, "_user_framed", True))
        self.axes_mode.currentIndexChanged.connect(self._on_axes_choice)
        self.dim_x.valueChanged.connect(self._on_axes_choice)
        self.dim_y.valueChanged.connect(self._on_axes_choice)
        self.show_codes.toggled.connect(self._on_show_codes)
        self.show_manifold.toggled.connect(self._on_show_manifold)
        self.grid_size.valueChanged.connect(lambda _: self._schedule_manifold())
        self.class_picker.currentIndexChanged.connect(self._on_class_picked)
        state.stats_changed.connect(self._on_stats)
        state.axes_changed.connect(self._on_axes)
        state.code_changed.connect(self._on_code)
        state.label_changed.connect(self._on_label)
        state.decoder_changed.connect(self._on_decoder)
        state.input_changed.connect(self.place_input)
        state.focus_changed.connect(self.place_focus)
        state.prior_changed.connect(self.place_prior)
        state.picked_changed.connect(lambda _: self._update_posterior_controls())
        self.show_prior.toggled.connect(lambda _: self.place_prior())
        self._update_axis_controls()
        self._update_posterior_controls()
        self._update_class_picker()
        self._add_lasso()

    def _add_lasso(self) -> None:
        """The lasso (views/plane_selection.py), its button and count over the plot's top-right corner.
        Made after the wiring above, so on a new encode or axes it rings the dots just drawn."""
        self.lasso = PlaneSelection(self.state, self.plot, self.box, lambda: self._dots, host=self)
        self.lasso.set_rings_visible(self.show_codes.isChecked())
        self.show_codes.toggled.connect(self.lasso.set_rings_visible)

    # -- what the state says ----------------------------------------------------------------

    def _on_stats(self) -> None:
        self._update_axis_controls()
        self._update_class_picker()  # the data's class names may have arrived since the model
        self._on_axes()

    def _on_axes(self) -> None:
        axes = self.state.axes
        if axes is None:
            return
        names = list(axes.names)
        if axes.explained is not None:
            names = [f"{n} ({100 * e:.0f}% of variance)" for n, e in zip(names, axes.explained, strict=True)]
        self.plot.setLabel("bottom", names[0])
        self.plot.setLabel("left", names[1])
        self._draw_scatter()
        self._place_marker()
        self.place_input()
        self.place_posteriors()
        self._schedule_manifold()

    def _on_code(self, source: str) -> None:
        self._place_marker()
        if source != "plane":  # off-plane coordinates may have changed the lattice
            self._schedule_manifold()

    def _on_label(self, label) -> None:
        self._update_class_picker()
        self._schedule_manifold()

    def _on_decoder(self) -> None:
        self._decoder = None  # new weights: the next decode takes a fresh copy
        self._update_posterior_controls()
        self._update_class_picker()
        self._schedule_manifold()

    # -- drawing ----------------------------------------------------------------------------

    def _draw_scatter(self) -> None:
        stats, axes = self.state.stats, self.state.axes
        if stats is None or axes is None:
            self._dots = None
            return
        points = axes.project(stats.codes)
        groups = class_groups(stats.labels, self.state.class_names)
        if [s.name() for s in self.scatters] != [name for name, _ in groups]:
            for item in self.scatters:
                self.plot.removeItem(item)
            self.legend.clear()
            self.legend.setColumnCount(max(1, -(-len(groups) // LEGEND_ROWS)))
            self.scatters = []
            for k, (name, _) in enumerate(groups):
                colour = class_colour(k, len(groups))
                colour.setAlpha(170)
                # Small dots need no antialiasing (it doubles their paint time), and a cached
                # picture of them means dragging the marker repaints only the marker.
                item = pg.ScatterPlotItem(size=DOT_SIZE, pen=None, brush=pg.mkBrush(colour), name=name,
                                          hoverable=False, antialias=False)
                item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
                item.sigClicked.connect(self._on_dot_clicked)
                item.setVisible(self.show_codes.isChecked())
                self.plot.addItem(item)
                self.scatters.append(item)
        for item, (_, rows) in zip(self.scatters, groups, strict=True):
            item.setData(x=points[rows, 0], y=points[rows, 1], data=stats.indices[rows])
        self._dots = (points, stats.indices)
        # Follow the codes as training spreads them out, until the user pans or zooms;
        # a new model, new data or new axes frame them afresh.
        framing = (self.state.generation, self.state.axes_mode, self.state.raw_dims, self.state.moment is None,
                   self.state.moment_on_map)
        if self.state.moment is not None:
            # Replaying: one frame for the whole run, so the clusters are seen forming and
            # spreading instead of the view zooming with them.
            if framing != self._ranged_for:
                self._ranged_for = framing
                self._user_framed = False
                self._range_to(self.state.replay_points())
        elif framing != self._ranged_for or not self._user_framed:
            self._ranged_for = framing
            self._user_framed = False
            self._range_to(points)
        if self.placeholder.isVisible() or not self.plot.isVisible():
            self.placeholder.hide()
            self.plot.show()
        self.marker.setVisible(True)

    def _range_to(self, points: np.ndarray) -> None:
        """Frame the bulk of the codes (a few far outliers should not shrink the clusters)."""
        lo = np.percentile(points, 0.5, axis=0)
        hi = np.percentile(points, 99.5, axis=0)
        span = np.maximum(hi - lo, 1e-3)
        self.box.setRange(xRange=(lo[0] - 0.05 * span[0], hi[0] + 0.05 * span[0]),
                          yRange=(lo[1] - 0.05 * span[1], hi[1] + 0.05 * span[1]), padding=0)

    def _place_marker(self) -> None:
        point = self.state.plane_point()
        if point is None:
            return
        self._moving_marker = True
        try:
            self.marker.setPos(float(point[0]), float(point[1]))
        finally:
            self._moving_marker = False

    def place_input(self) -> None:
        """Put the input's star at its code on the plane and outline its posterior (VAE family)."""
        point = self.state.input_point()
        self.input_marker.setVisible(point is not None)
        posterior = self.state.input_posterior() if point is not None else None
        self.input_ellipse.setVisible(posterior is not None)
        if point is not None:
            self.input_marker.setPos(float(point[0]), float(point[1]))
        if posterior is not None:
            centre, covariance, exact = posterior
            outline = ellipse_outline(centre, covariance)
            self.input_ellipse.setData(outline[:, 0], outline[:, 1])
            self.input_ellipse.setToolTip(
                "Your input's posterior: the 2-sigma ellipse of N(mean, diag(var)) seen on this plane"
                + ("" if exact else f" (approximate: {MAP_POSTERIOR_SAMPLES} samples pushed through the "
                                    "neighbour map)"))

    def place_posteriors(self) -> None:
        """Redraw what follows the plane's axes and codes: the focused image's ellipse and the prior."""
        self.place_focus()
        self.place_prior()

    def place_focus(self) -> None:
        """Outline the hovered (else the picked) test image's posterior, as the input's is."""
        posterior = self.state.focus_posterior()
        self.focus_ellipse.setVisible(posterior is not None)
        if posterior is None:
            return
        centre, covariance, exact = posterior
        outline = ellipse_outline(centre, covariance, INPUT_SIGMAS)
        self.focus_ellipse.setData(outline[:, 0], outline[:, 1])
        self.focus_ellipse.setToolTip(
            f"Test image {self.state.focus}'s posterior: the 2-sigma ellipse of N(mean, diag(var)) seen on this plane"
            + ("" if exact else f" (approximate: {MAP_POSTERIOR_SAMPLES} samples pushed through the neighbour map)"))

    def place_prior(self) -> None:
        """The prior's 1- and 2-sigma contours, when Prior is on (a neighbour map's are
        estimated in the background first)."""
        prior = self.state.prior_on_plane() if self.show_prior.isChecked() else None
        if self.show_prior.isChecked() and prior is None:
            self.state.want_prior()
        density = prior.density if prior is not None else None
        if density is not None and density is self._prior_traced:
            return  # these contours are drawn already: a new snapshot or encode changes nothing here
        self._prior_traced = density
        for k, curve in enumerate(self.prior_curves):
            outline = _prior_outline(prior, k) if prior is not None else None
            curve.setVisible(outline is not None)
            if outline is not None:
                curve.setData(outline[:, 0], outline[:, 1])

    def _update_posterior_controls(self) -> None:
        variational = self.state.is_variational
        self.show_prior.setEnabled(variational or self.state.model is None)
        self.show_prior.setToolTip(
            "The prior N(0, I)'s 1- and 2-sigma contours seen on the plane: exact ellipses on the principal axes or "
            "two dimensions; on the neighbour map the contours of the density of "
            f"{PRIOR_MAP_SAMPLES:,} prior samples pushed through it, holding the same shares (39% and 86%; "
            "the map places a code far from the data by its nearest test codes, so the prior may gather where a "
            "few of them lie)"
            if variational or self.state.model is None else
            "A plain autoencoder has no prior: its codes are points, not distributions")
        self.draw_posterior_action.setEnabled(variational and self.state.picked is not None)
        self.place_prior()  # another model may have no prior (the ellipse follows focus_changed)

    def _schedule_manifold(self) -> None:
        if self.show_manifold.isChecked():
            self.manifold_redraws.request()

    def visible_region(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (x0, x1), (y0, y1) = self.box.viewRange()
        return (x0, x1), (y0, y1)

    def manifold_region(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The region the lattice covers: the visible region, widened or heightened about its
        centre until its shape on screen is the image's, so each of the n x n tiles is drawn
        with the image's aspect; the part outside the view is clipped away."""
        (x0, x1), (y0, y1) = self.visible_region()
        width_px, height_px = self.box.width(), self.box.height()
        model = self.state.model
        if width_px <= 0 or height_px <= 0 or model is None:
            return (x0, x1), (y0, y1)
        _, image_h, image_w = model.config.image_shape
        target = image_w / image_h  # wanted width / height of the whole lattice, in pixels
        if width_px / height_px > target:
            grow_x, grow_y = 1.0, (width_px / target) / height_px
        else:
            grow_x, grow_y = (height_px * target) / width_px, 1.0
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * grow_x, (y1 - y0) / 2 * grow_y
        return (cx - hx, cx + hx), (cy - hy, cy + hy)

    def manifold_codes(self) -> np.ndarray:
        """The lattice the plane draws (over manifold_region) as full codes, top row first."""
        assert self.state.axes is not None and self.state.code is not None
        n = self.grid_size.value()
        return manifold_codes(self.state.axes, self.state.code, *self.manifold_region(), n)

    def redraw_manifold(self) -> None:
        """Ask for the lattice over the visible region, decoded in one batch in the task
        runner; :meth:`show_manifold_picture` lays it under the dots (latest request wins)."""
        state = self.state
        if not (self.show_manifold.isChecked() and state.ready):
            return
        assert state.model is not None and state.axes is not None and state.code is not None
        job = self.manifold_job()
        state.session.tasks.submit(MANIFOLD_TASK, lambda _: decode_manifold(job), label="Decoding the manifold",
                                   on_done=self.show_manifold_picture)

    def manifold_job(self) -> ManifoldJob:
        """What the lattice over the visible region is decoded from now (the state is ready)."""
        state = self.state
        assert state.model is not None and state.axes is not None and state.code is not None
        if self._decoder is None or self._decoder[0] is not state.model:
            self._decoder = (state.model, BuiltOnce(ModelCopy.of(state.model)))
        x_range, y_range = self.manifold_region()
        return ManifoldJob(self._decoder[1], state.axes, state.code.copy(), x_range, y_range,
                           self.grid_size.value(), state.label)

    def show_manifold_picture(self, picture: ManifoldPicture) -> None:
        (x0, x1), (y0, y1) = picture.job.x_range, picture.job.y_range
        self.manifold_picture = picture
        self.manifold_array = picture.image
        self.manifold.setImage(picture.image, autoLevels=False, levels=(0, 1))
        self.manifold.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    # -- what the user does -----------------------------------------------------------------

    def _on_marker_moved(self) -> None:
        if self._moving_marker:
            return
        pos = self.marker.pos()
        self.state.set_plane_point(pos.x(), pos.y())

    def _on_plane_clicked(self, x: float, y: float) -> None:
        if self.state.ready:
            self.state.set_plane_point(x, y)

    def _on_pointer_moved(self, scene_pos) -> None:
        """Which dot the pointer is over: the nearest within HOVER_PX screen pixels, found in
        one vectorised pass over the drawn positions. (pyqtgraph's own hover asks each class's
        scatter in turn and builds an object per dot: about 20 ms a move with ten classes on a
        busy 2-core machine, against well under a millisecond here.)"""
        index = None
        dots = self._dots
        if dots is not None and self.show_codes.isChecked() and len(dots[1]) \
                and self.box.sceneBoundingRect().contains(scene_pos):
            where = self.box.mapSceneToView(scene_pos)
            per_px = self.box.viewPixelSize()
            points, indices = dots
            dx = (points[:, 0] - where.x()) / max(per_px[0], 1e-12)
            dy = (points[:, 1] - where.y()) / max(per_px[1], 1e-12)
            gaps = dx * dx + dy * dy
            nearest = int(np.argmin(gaps))
            if gaps[nearest] <= HOVER_PX * HOVER_PX:
                index = int(indices[nearest])
        if index != self.state.hovered:
            self.box.setToolTip("" if index is None else self._dot_tip(index))
        self.state.set_hovered(index)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if watched is self.plot.viewport() and event.type() == QEvent.Type.Leave:
            self.box.setToolTip("")
            self.state.set_hovered(None)  # the pointer left the plot
        return super().eventFilter(watched, event)

    def _dot_tip(self, index: int) -> str:
        """The hovered dot's tooltip: which test image, and whether its posterior is outlined."""
        images = self.state.session.data
        what = f"Test image {index}"
        if images is not None and images.test_labels is not None and 0 <= index < len(images.test_labels):
            label, names = int(images.test_labels[index]), self.state.class_names
            what += f" (class {names[label] if label < len(names) else label})"
        return f"{what}: {self.state.posterior_note()}; click to load its code"

    def _draw_from_picked(self) -> None:
        if self.state.picked is not None:
            self.state.draw_from_posterior(self.state.picked)

    def _on_dot_clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.state.pick(int(points[0].data()))

    def nudge(self, dx: int, dy: int) -> None:
        point = self.state.plane_point()
        if point is None:
            return
        (x0, x1), (y0, y1) = self.visible_region()
        self.state.set_plane_point(point[0] + dx * NUDGE * (x1 - x0), point[1] + dy * NUDGE * (y1 - y0))

    def _on_axes_choice(self) -> None:
        raw = self.axes_mode.currentData() == "raw"
        self.dim_x.setVisible(raw)
        self.dim_y.setVisible(raw)
        if raw:
            if self.dim_x.value() == self.dim_y.value():
                return  # half-way through choosing; keep the current axes
            self.state.use_raw_axes(self.dim_x.value(), self.dim_y.value())
        elif self.axes_mode.currentData() == "map":
            self.state.use_map_axes()
        else:
            self.state.use_pca_axes()

    def _on_show_codes(self, on: bool) -> None:
        for item in self.scatters:
            item.setVisible(on)
        self.legend.setVisible(on)  # a legend for hidden dots would name nothing

    def _on_show_manifold(self, on: bool) -> None:
        self.manifold.setVisible(on)
        if on:
            self.redraw_manifold()
        else:
            self.state.session.tasks.cancel(MANIFOLD_TASK)

    def _on_class_picked(self, index: int) -> None:
        if index >= 0 and self.state.is_conditional:
            self.state.set_label(int(self.class_picker.itemData(index)))

    # -- keeping controls in step -----------------------------------------------------------

    def _update_axis_controls(self) -> None:
        dim = self.state.dim
        many = dim > 2
        self.axes_mode.setEnabled(many)
        for spin, value in ((self.dim_x, self.state.raw_dims[0]), (self.dim_y, self.state.raw_dims[1])):
            spin.blockSignals(True)
            spin.setRange(0, max(dim - 1, 1))
            spin.setValue(value)
            spin.blockSignals(False)
            spin.setVisible(many and self.axes_mode.currentData() == "raw")

    def _update_class_picker(self) -> None:
        conditional = self.state.is_conditional
        self.class_label.setVisible(conditional)
        self.class_picker.setVisible(conditional)
        if not conditional:
            return
        names = self.state.class_names
        self.class_picker.blockSignals(True)
        if self.class_picker.count() != len(names) or any(
                self.class_picker.itemText(i) != n for i, n in enumerate(names)):
            self.class_picker.clear()
            for i, name in enumerate(names):
                self.class_picker.addItem(name, i)
        if self.state.label is not None:
            self.class_picker.setCurrentIndex(self.state.label)
        self.class_picker.blockSignals(False)

    # -- settings ---------------------------------------------------------------------------

    def save_settings(self, settings) -> None:
        settings.setValue("plane/codes", self.show_codes.isChecked())
        settings.setValue("plane/prior", self.show_prior.isChecked())
        settings.setValue("plane/manifold", self.show_manifold.isChecked())
        settings.setValue("plane/grid", self.grid_size.value())

    def restore_settings(self, settings) -> None:
        self.show_codes.setChecked(read_flag(settings, "plane/codes", True))
        self.show_prior.setChecked(read_flag(settings, "plane/prior", False))
        self.show_manifold.setChecked(read_flag(settings, "plane/manifold", False))
        self.grid_size.setValue(read_int(settings, "plane/grid", DEFAULT_GRID, self.grid_size.minimum(),
                                         self.grid_size.maximum()))

    # -- files ------------------------------------------------------------------------------

    def export_manifold_png(self, path: str) -> None:
        """The lattice over the visible region at full resolution, in reading order: the
        picture on screen when it is the current one (no decode on the GUI thread), else
        decoded here (the manifold is off, or its newest picture has not landed yet)."""
        if not self.state.ready:
            raise ValueError("there is no model to decode yet")
        job, shown = self.manifold_job(), self.manifold_picture
        current = shown is not None and shown.job.asks_the_same_as(job)
        picture = shown if current else decode_manifold(job, self.state.model)
        picture.save_png(path)

    def export_png(self, path: str) -> None:
        from explorer.gui.widgets.plot_export import export_plot_png

        if self.state.stats is None:
            raise ValueError("there is no latent plane to export yet: train a model or open one")
        export_plot_png(self.plot.getPlotItem(), path, max(1000, self.plot.width()))


def _prior_outline(prior: PriorOnPlane, k: int) -> np.ndarray | None:
    """The ``k``-th contour of the prior as (points, 2), outlines separated by NaN rows:
    an exact ellipse, or the density's level traced by pyqtgraph's isocurve on its grid."""
    if prior.outlines is not None:
        return prior.outlines[k] if k < len(prior.outlines) else None
    density = prior.density
    if density is None or k >= len(density.levels):
        return None
    bins_x, bins_y = density.density.shape
    (x0, x1), (y0, y1) = density.x_range, density.y_range
    pieces = []
    for path in pg.functions.isocurve(density.density, density.levels[k], connected=True, extendToEdge=True):
        xy = np.asarray(path, dtype=np.float64)
        if len(xy) < 2:
            continue
        # isocurve puts grid value i at i + 0.5, as the density has bin i's centre there.
        xs = x0 + xy[:, 0] * (x1 - x0) / bins_x
        ys = y0 + xy[:, 1] * (y1 - y0) / bins_y
        pieces.append(np.column_stack([xs, ys]))
        pieces.append(np.full((1, 2), np.nan))
    return np.concatenate(pieces[:-1]) if pieces else None
