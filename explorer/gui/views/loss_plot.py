"""Live loss curves.

Losses arrive at the step rate; drawing happens at most ~30 times a second from a timer,
and only when something new arrived. Points live in growable numpy buffers (no Python
lists re-converted each frame), and pyqtgraph's peak downsampling and clip-to-view keep a
long run as cheap to draw as a short one. The legend sits under the x axis, where it
cannot hide a curve, and the log scale labels only the ticks that fit.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.gui.state.session import TrainingSession
from explorer.gui.widgets.plot_legibility import add_outside_legend, legible_axes
from explorer.training.events import EpochEnd, StepLoss
from explorer.training.history import History

REDRAW_MS = 33
SMOOTHING = 0.9  # exponential moving average of the step loss
PART_COLOURS = {"recon": (31, 119, 180), "kl": (214, 39, 40), "sparsity": (44, 160, 44)}
LOSS_COLOUR = (255, 127, 14)
LEGEND_COLUMNS = 3  # seven curves in three short rows under the chart (four columns overflow a dock)
LEGEND_ROW_SPACING = -4  # pyqtgraph's rows are taller than an 8 pt label needs


MAX_POINTS = 8192  # per curve; far more than a plot is wide, and a fixed cost however long the run


class SeriesBuffer:
    """An (x, y) series in a fixed numpy array that never grows past ``max_points``.

    When it fills, neighbouring pairs are merged into their means and every later point
    is averaged over twice as many reports as before, so a run of any length keeps an
    evenly spaced outline of its whole history (the loss curves' memory and redraw cost
    stay flat over a week-long run).
    """

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        if max_points < 2 or max_points % 2:
            raise ValueError("max_points must be an even number of at least 2")
        self._data = np.empty((max_points, 2), dtype=np.float64)
        self.n = 0
        self.stride = 1  # reports averaged into one stored point
        self._pending = np.zeros(2)
        self._pending_count = 0

    def append(self, x: float, y: float) -> None:
        self._pending += (x, y)
        self._pending_count += 1
        if self._pending_count < self.stride:
            return
        if self.n == len(self._data):
            half = self.n // 2
            self._data[:half] = (self._data[0:self.n:2] + self._data[1:self.n:2]) / 2
            self.n = half
            self.stride *= 2
            if self._pending_count < self.stride:
                return
        self._data[self.n] = self._pending / self._pending_count
        self.n += 1
        self._pending[:] = 0
        self._pending_count = 0

    def clear(self) -> None:
        self.n = 0
        self.stride = 1
        self._pending[:] = 0
        self._pending_count = 0

    def _points(self) -> np.ndarray:
        """The stored points, plus the mean of the reports not yet merged into one, so the
        curve always reaches the latest step."""
        if not self._pending_count:
            return self._data[: self.n]
        return np.vstack([self._data[: self.n], self._pending / self._pending_count])

    def __len__(self) -> int:
        return self.n + (1 if self._pending_count else 0)

    @property
    def x(self) -> np.ndarray:
        return self._points()[:, 0]

    @property
    def y(self) -> np.ndarray:
        return self._points()[:, 1]


class LossPlot(QWidget):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.plot = pg.PlotWidget(background=self.palette().color(QPalette.ColorRole.Base),
                                  axisItems=legible_axes())
        self.plot.setObjectName("lossPlot")
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "training step")
        item.setLabel("left", "loss per image")
        item.showGrid(x=True, y=True, alpha=0.25)
        text = self.palette().color(QPalette.ColorRole.Text)
        for axis in ("bottom", "left"):
            item.getAxis(axis).setPen(text)
            item.getAxis(axis).setTextPen(text)
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        self.legend = add_outside_legend(item, "below", columns=LEGEND_COLUMNS, labelTextColor=text,
                                         labelTextSize="8pt", frame=False,
                                         verSpacing=LEGEND_ROW_SPACING)
        self.series: dict[str, SeriesBuffer] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._ema: dict[str, float] = {}
        self._ema_count = 0
        self._last_step: float | None = None
        self._dirty = False

        self.log_toggle = QCheckBox("Log scale")
        self.log_toggle.setObjectName("logScale")
        self.log_toggle.toggled.connect(lambda on: item.setLogMode(y=on))
        self.readout = QLabel("")
        self.readout.setObjectName("lossReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.addWidget(self.log_toggle)
        bar.addStretch(1)
        bar.addWidget(self.readout)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)

        self._hover = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

        session.history_reset.connect(self._reload_history)
        session.step.connect(self._on_step)
        session.epoch.connect(self._on_epoch)

    # -- data in ---------------------------------------------------------------------------

    def _curve(self, key: str) -> SeriesBuffer:
        if key not in self.series:
            self.series[key] = SeriesBuffer()
            self.curves[key] = self._make_curve(key)
        return self.series[key]

    def _make_curve(self, key: str) -> pg.PlotDataItem:
        split, _, term = key.partition(" ")
        colour = LOSS_COLOUR if term == "loss" else PART_COLOURS.get(term, (128, 128, 128))
        item = self.plot.getPlotItem()
        if key == "train loss (raw)":
            return item.plot(pen=pg.mkPen((*LOSS_COLOUR, 110), width=1), name=key)
        if split == "test":
            return item.plot(pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine), symbol="o",
                             symbolSize=7, symbolBrush=colour, symbolPen=None, name=key)
        return item.plot(pen=pg.mkPen(colour, width=2), name=key)

    def _add_step(self, step: float, loss: float, parts: dict[str, float]) -> None:
        self._last_step = step
        self._curve("train loss (raw)").append(step, loss)
        self._ema_count += 1
        correction = 1.0 - SMOOTHING ** self._ema_count  # debiased, as in Adam: no lag from a zero start
        for name, value in (("loss", loss), *parts.items()):
            ema = SMOOTHING * self._ema.get(name, 0.0) + (1 - SMOOTHING) * value
            self._ema[name] = ema
            self._curve(f"train {name}").append(step, ema / correction)
        self._dirty = True

    def _add_epoch(self, step: float, test: dict[str, float]) -> None:
        for name, value in test.items():
            self._curve(f"test {name}").append(step, value)
        self._dirty = True

    def _on_step(self, event: StepLoss) -> None:
        self._add_step(event.global_step, event.loss, event.parts)

    def _on_epoch(self, event: EpochEnd) -> None:
        # The step just reported, not the last stored point (which may average several).
        step = self._last_step if self._last_step is not None else event.epoch
        self._add_epoch(float(step), event.test)

    def _reload_history(self) -> None:
        """A new run or an opened checkpoint: draw its history from scratch."""
        self.clear()
        history: History = self.session.history
        for row in history.steps:
            self._add_step(row[0], row[1], dict(zip(history.part_names, row[2:], strict=False)))
        steps_per_epoch = None
        for record in history.epochs:
            step = record.get("global_step")
            if step is None and history.steps and history.last_epoch:
                steps_per_epoch = steps_per_epoch or history.last_step / history.last_epoch
                step = record["epoch"] * steps_per_epoch
            self._add_epoch(float(step if step is not None else record["epoch"]), record.get("test", {}))
        self._redraw(force=True)

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.getPlotItem().removeItem(curve)
            self.legend.removeItem(curve)
        self.series.clear()
        self.curves.clear()
        self._ema.clear()
        self._ema_count = 0
        self._last_step = None
        self._dirty = True

    # -- drawing ---------------------------------------------------------------------------

    def _redraw(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._dirty = False
        for key, buffer in self.series.items():
            # Copies: pyqtgraph keeps the arrays it is given, and the buffers are rewritten.
            points = buffer._points().copy()
            self.curves[key].setData(points[:, 0], points[:, 1])

    def point_count(self, key: str = "train loss (raw)") -> int:
        return len(self.series[key]) if key in self.series else 0

    def _on_mouse_moved(self, event: tuple) -> None:
        pos = event[0]
        vb = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(pos) or not self.series:
            return
        point = vb.mapSceneToView(pos)
        self.readout.setText(self.describe_step(point.x()))

    def describe_step(self, x: float) -> str:
        """The values of every curve at the step nearest to ``x``."""
        parts = []
        for key, buffer in self.series.items():
            if len(buffer) == 0 or key == "train loss (raw)":
                continue
            xs, ys = buffer.x, buffer.y
            i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
            if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
                i -= 1
            parts.append(f"{key} {ys[i]:.2f}")
        return f"step {x:,.0f}: " + ", ".join(parts) if parts else ""

    def export_png(self, path: str) -> None:
        from explorer.gui.widgets.plot_export import export_plot_png

        if not any(len(buffer) for buffer in self.series.values()):
            raise ValueError("there are no loss curves to export yet: train a model or open one")
        export_plot_png(self.plot.getPlotItem(), path, max(800, self.plot.width()))
