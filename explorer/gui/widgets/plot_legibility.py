"""Plot furniture that stays readable at small sizes: legends beside the data, not on it,
log axes whose labels never pile up, and axis labels inside their plot.

pyqtgraph's own legend floats over the view box, so at a dock's size it hides the very
curves and dots it names; and its log axes label every 2..9 x 10^k tick, which at a
few hundred pixels overlap into a smear. These replacements are what every plot in the
views uses, so the whole window behaves the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QGraphicsItem, QSizePolicy

LABEL_PAD_PX = 6.0  # free space between neighbouring tick labels
MINOR_TICK_PX = 4.0  # unlabelled minor ticks closer than this are left out
MAX_LINEAR_TICKS = 200  # candidate sets larger than this are not even considered
MAX_LABELS = 10  # more labels than this on one axis read as a ruler, not as values
NICE_MANTISSAS = (1.0, 2.0, 5.0)
DECADE_STEPS = (1, 2, 3, 5, 10, 20, 50, 100)
LABEL_UNRESERVED = 0.2  # the share of an axis label's height pyqtgraph leaves out of the axis
LEGEND_ROW = 4  # below the bottom axis of a PlotItem's layout (rows 0-3 are title, axes, view)
LEGEND_COLUMN = 3  # right of the right axis (columns 0-2 are left axis, view, right axis)


def format_log_value(value: float) -> str:
    """A tick value in plain digits where that is short, else as mantissa and power of ten."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10 ** exponent
    sup = str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{sup}" if round(mantissa, 6) == 1 else f"{mantissa:.3g}·10{sup}"


class LegibleAxis(pg.AxisItem):
    """An axis whose log mode labels only as many ticks as fit without touching.

    Linear mode is pyqtgraph's own. In log mode, the candidates run from dense (every
    1..9 x 10^k, or fine linear steps when less than a decade is in view) to sparse (every
    second, fifth... decade); the densest set whose labels, measured in the axis font,
    leave a gap between them is labelled, and a denser set is drawn as bare minor ticks.
    """

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self._labelled: np.ndarray = np.array([])
        # Kept as a pixmap between changes of its range: pyqtgraph replays the axis's
        # recorded text on every paint of its plot, and with every dock shown those
        # replays took about 7% of the GUI thread while a run trained (py-spy).
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    # -- drawing: straight onto the painter -----------------------------------------------
    # pyqtgraph records the axis into a QPicture and replays it. The first replay of each
    # new recording cost 20-30 ms (a QPicture's fonts are laid out at its own 1200 dpi and
    # scaled back), and the plane's and the loss plot's axes are recorded afresh each time
    # their range moves: while a run trained, that was most of every repaint of the plane.
    # Drawing the same specs directly costs about 1 ms. ``self.picture`` keeps pyqtgraph's
    # meaning (None: out of date) and holds the specs.

    def paint(self, p, opt, widget) -> None:  # noqa: D102 - Qt's virtual
        p.save()
        try:
            if self.style["tickFont"]:
                p.setFont(self.style["tickFont"])
            if self.picture is None:
                self.picture = self.generateDrawSpecs(p) or ()
            if self.picture:
                # Clipped, Qt's raster engine draws the translucent grid lines about 50x
                # faster (15 ms to 0.3 ms for the plane's 51 lines, measured); nothing
                # is drawn outside the axis's rectangle either way.
                p.setClipRect(self.boundingRect(), Qt.ClipOperation.IntersectClip)
                self.drawPicture(p, *self.picture)
        finally:
            p.restore()

    # -- the axis label: inside the axis's own rectangle -------------------------------------
    # pyqtgraph reserves 0.8 of the label's height and nudges the label 5 px past the axis's
    # outer edge, so on a plot at a widget's edge the label's last pixels were cut ("PC1"
    # on the latent plane). The axis reserves the label's whole height and keeps it inside.

    def _updateHeight(self) -> None:  # noqa: N802 - pyqtgraph's name
        super()._updateHeight()
        self._reserve_whole_label(horizontal=True)

    def _updateWidth(self) -> None:  # noqa: N802 - pyqtgraph's name
        super()._updateWidth()
        self._reserve_whole_label(horizontal=False)

    def _reserve_whole_label(self, horizontal: bool) -> None:
        fixed = self.fixedHeight if horizontal else self.fixedWidth
        if fixed is not None or not self.isVisible() or not self.label.isVisible():
            return
        extra = LABEL_UNRESERVED * self.label.boundingRect().height()
        if horizontal:
            size = self.maximumHeight() + extra
            self.setMaximumHeight(size)
            self.setMinimumHeight(size)
        else:
            size = self.maximumWidth() + extra
            self.setMaximumWidth(size)
            self.setMinimumWidth(size)

    def resizeEvent(self, ev=None) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(ev)
        if self.label is None:
            return
        rect, pos = self.label.boundingRect(), self.label.pos()
        if self.orientation == "bottom":
            pos.setY(self.size().height() - rect.height())
        elif self.orientation == "top":
            pos.setY(0)
        elif self.orientation == "left":
            pos.setX(0)
        else:
            pos.setX(self.size().width() - rect.height())
        self.label.setPos(pos)

    def _extent(self, text: str) -> float:
        """How much of the axis's length a label takes: its height on a vertical axis, its
        width on a horizontal one."""
        metrics = QFontMetricsF(self.style["tickFont"] or self.font())
        if self.orientation in ("left", "right"):
            return metrics.height()
        return metrics.horizontalAdvance(text)

    def _fits(self, exponents: np.ndarray, px_per_decade: float) -> bool:
        if len(exponents) < 2:
            return True
        extents = np.array([self._extent(format_log_value(10.0 ** e)) for e in exponents])
        gaps = np.diff(exponents) * px_per_decade
        return bool(np.all(gaps >= (extents[:-1] + extents[1:]) / 2 + LABEL_PAD_PX))

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802 - pyqtgraph's name
        lo, hi = sorted((float(minVal), float(maxVal)))
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 0 or size <= 0:
            self._labelled = np.array([])
            return [(None, [])]
        px_per_decade = size / (hi - lo)
        candidates = sorted((c for c in _candidates(lo, hi) if len(c)), key=len, reverse=True)
        labelled = next((c for c in candidates if 2 <= len(c) <= MAX_LABELS and self._fits(c, px_per_decade)),
                        None)
        if labelled is None:  # not even two labels fit: the sparsest non-empty set, or one tick
            fitting = [c for c in candidates if self._fits(c, px_per_decade)]
            labelled = fitting[-1] if fitting else np.array([(lo + hi) / 2])
        minor = next((c for c in candidates if len(c) > len(labelled)
                      and (len(c) < 2 or np.min(np.diff(c)) * px_per_decade >= MINOR_TICK_PX)), labelled)
        minor = minor[~np.isclose(minor[:, None], labelled[None, :], atol=1e-9).any(1)]
        self._labelled = labelled
        return [(None, labelled.tolist()), (None, minor.tolist())]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        strings = []
        for v in values:
            chosen = len(self._labelled) and np.isclose(self._labelled, v, atol=1e-9).any()
            strings.append(format_log_value(10.0 ** v * scale) if chosen else "")
        return strings


def _candidates(lo: float, hi: float) -> Iterable[np.ndarray]:
    """Tick positions (log10 of the value) in [lo, hi]: decades, 1-2-5, 1..9 per decade,
    and, for narrow ranges, evenly spaced values."""
    first, last = math.floor(lo), math.ceil(hi)

    def inside(exponents: Iterable[float]) -> np.ndarray:
        e = np.unique(np.asarray(list(exponents), dtype=np.float64))
        return e[(e >= lo - 1e-9) & (e <= hi + 1e-9)]

    for step in DECADE_STEPS:
        yield inside(k for k in range(first, last + 1) if k % step == 0)
    for mantissas in (NICE_MANTISSAS, tuple(range(1, 10))):
        yield inside(k + math.log10(m) for k in range(first, last + 1) for m in mantissas)
    v_lo, v_hi = 10.0 ** lo, 10.0 ** hi
    finest = math.floor(math.log10(v_hi - v_lo)) - 1  # steps finer than a tenth of the span never fit
    for k in range(finest, last + 1):
        for m in NICE_MANTISSAS:
            d = m * 10.0 ** k
            if (v_hi - v_lo) / d > MAX_LINEAR_TICKS:
                continue
            values = np.arange(math.ceil(v_lo / d), math.floor(v_hi / d) + 1) * d
            values = values[values > 0]
            if len(values):
                yield inside(np.log10(values))


def legible_axes(sides: Iterable[str] = ("left", "bottom")) -> dict[str, LegibleAxis]:
    """Axes for a new PlotWidget/PlotItem (``axisItems=legible_axes()``)."""
    return {side: LegibleAxis(side) for side in sides}


class OutsideLegend(pg.LegendItem):
    """A legend that is a cell of its plot's layout, beside or below the view box, so it
    takes its own room instead of covering data; the layout sizes and places it."""

    def __init__(self, columns: int = 1, **kwargs) -> None:
        super().__init__(offset=None, colCount=columns, **kwargs)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, False)
        # No bigger than its entries: stretched to the view box's height, its rows spread
        # apart and each class's dot sat half a row below its name.
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)

    def updateSize(self) -> None:  # noqa: N802 - pyqtgraph's name
        # pyqtgraph moves the legend to (0, 0) here; in a layout, asking it to re-lay out is enough.
        self.layout.invalidate()
        self.updateGeometry()


def add_outside_legend(plot_item: pg.PlotItem, where: str = "below", columns: int = 1,
                       **kwargs) -> OutsideLegend:
    """Give a plot an OutsideLegend ("below" the x axis or "right" of the view box) that
    picks up every item plotted with a name, as ``addLegend`` would."""
    legend = OutsideLegend(columns, **kwargs)
    if where == "right":
        plot_item.layout.addItem(legend, 2, LEGEND_COLUMN)
        plot_item.layout.setColumnStretchFactor(LEGEND_COLUMN, 0)
    else:
        plot_item.layout.addItem(legend, LEGEND_ROW, 1)
        plot_item.layout.setRowStretchFactor(LEGEND_ROW, 0)
    plot_item.layout.setAlignment(legend, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
    plot_item.legend = legend
    return legend
