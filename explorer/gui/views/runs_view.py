"""Side by side: 2 to 4 runs, each with its own plane and decoded image, one linked cursor,
and their test losses overlaid, one colour per run.

Train a beta sweep or the lecture's comparison (reconstruction only, KL only, both) here,
together in one batched step, or add saved checkpoints, or open a sweep's folder. Click or
drag in any plane and every model decodes that code; click a dot and that test image is
ringed in every plane.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from explorer.config import replace
from explorer.display import one_line, plural
from explorer.errors import UserError
from explorer.gui.state.runs import MAX_RUNS, Run, RunsState
from explorer.gui.views.latent_plane import CLASS_COLOURS, PlaneViewBox
from explorer.gui.widgets.image_pane import ImagePane, chw_to_display
from explorer.gui.widgets.plot_legibility import legible_axes

RUN_COLOURS = ("#f28e2b", "#59a14f", "#4e79a7", "#e15759")
PANE_MIN_PX = 160
# The panes and the loss overlay scroll inside the view: four panes asked the dock for
# ~600 px, and the window took them from the latent plane, for good (the layout is saved).
SCROLL_MIN_HEIGHT_PX = 80


class RunPane(QWidget):
    """One run: its name, its plane (codes by class, the shared cursor, the picked ring) and
    the shared code decoded by its model."""

    def __init__(self, state: RunsState, slot: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.slot = state, slot
        self.run: Run | None = None
        self._brush_key: bytes | None | object = object()  # the labels the cached brushes were built for
        self._brush_cache: object = None
        self.title = QLabel("", objectName=f"runTitle{slot}")
        self.title.setStyleSheet(f"color: {RUN_COLOURS[slot]}; font-weight: bold")
        self.box = PlaneViewBox()
        self.plot = pg.PlotWidget(viewBox=self.box, objectName=f"runPlane{slot}", axisItems=legible_axes())
        self.plot.setMinimumSize(PANE_MIN_PX, PANE_MIN_PX)
        self.scatter = pg.ScatterPlotItem(size=4, pen=None, hoverable=True)
        self.ring = pg.ScatterPlotItem(size=14, pen=pg.mkPen("#ffffff", width=2), brush=None)
        self.cursor = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("#d62728", width=3))
        for item in (self.scatter, self.ring, self.cursor):
            self.plot.addItem(item)
        self.image = ImagePane(f"runImage{slot}")
        self.image.setMinimumSize(72, 72)
        row = QHBoxLayout()
        row.addWidget(self.plot, 3)
        row.addWidget(self.image, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addLayout(row, 1)
        self.box.clicked_at.connect(self._on_clicked)
        self.scatter.sigClicked.connect(self._on_dot)
        self.scatter.sigHovered.connect(self._on_hover)

    def set_run(self, run: Run | None) -> None:
        self.run = run
        self.setVisible(run is not None)
        self.draw_codes()
        self.draw_cursor()

    def draw_title(self) -> None:
        run = self.run
        if run is None:
            return
        extra = f" · {run.status}" if run.status else ""
        last = f" · test loss {run.epochs[-1][1]:.2f}" if run.epochs else ""
        self.title.setText(one_line(run.name, 60) + last + extra)

    def draw_codes(self) -> None:
        run = self.run
        self.draw_title()
        if run is None:
            return
        if run.coords is None or self.state.indices is None:
            self.scatter.setData([], [])
            return
        self.scatter.setData(x=run.coords[:, 0], y=run.coords[:, 1], brush=self._brushes(), data=self.state.indices)
        self.draw_pick()

    def _brushes(self):
        """One brush per point by class, built once per subset (2,000 mkBrush calls took ~50 ms)."""
        labels = self.state.labels
        key = None if labels is None else labels.tobytes()
        if self._brush_key != key:
            palette = [pg.mkBrush(c) for c in CLASS_COLOURS]
            self._brush_cache = [palette[int(k) % len(palette)] for k in labels] if labels is not None \
                else pg.mkBrush("#bbbbbb")
            self._brush_key = key
        return self._brush_cache

    def draw_cursor(self) -> None:
        run, code = self.run, self.state.code
        if run is None or run.axes is None or code is None or code.shape[0] != run.latent_dim:
            self.cursor.setData([], [])
            self.image.clear()
            return
        point = run.axes.project(code)
        self.cursor.setData([point[0]], [point[1]])
        image = self.state.decode(run)
        if image is not None:
            self.image.set_array(chw_to_display(image))

    def draw_pick(self) -> None:
        run, index = self.run, self.state.picked
        if run is None or run.coords is None or index is None or self.state.indices is None:
            self.ring.setData([], [])
            return
        rows = np.flatnonzero(self.state.indices == index)
        if rows.size:
            self.ring.setData([run.coords[rows[0], 0]], [run.coords[rows[0], 1]])
        else:
            self.ring.setData([], [])

    def cursor_point(self) -> np.ndarray | None:
        x, y = self.cursor.getData()
        return None if len(x) == 0 else np.array([x[0], y[0]])

    def _on_clicked(self, x: float, y: float) -> None:
        if self.run is not None:
            self.state.set_point(self.run, x, y)

    def _on_dot(self, _item, points, _ev=None) -> None:
        if len(points):
            self.state.pick(int(points[0].data()))

    def _on_hover(self, _item, points, _ev=None) -> None:
        if len(points):
            self.state.pick(int(points[0].data()))


class RunsView(QWidget):
    def __init__(self, state: RunsState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.session = state.session
        self.betas = QLineEdit("0.5, 1, 4", objectName="sweepBetas")
        self.betas.setToolTip("The KL weights of a beta sweep (2 to 4 values)")
        self.rates = QLineEdit("", objectName="sweepRates")
        self.rates.setPlaceholderText("as in the settings")
        self.rates.setToolTip("Learning rates: one for every run, or one per run in order (a beta's, or the "
                              "lecture's three); empty: the training settings' rate. Runs that differ in it "
                              "still train together, each with its own.")
        self.beta_button = QPushButton("Train beta sweep", objectName="trainBetaSweep")
        self.beta_button.setToolTip("Train one run per beta, together, with the training settings' model, data "
                                    "and epochs")
        self.lecture_button = QPushButton("Lecture comparison", objectName="trainLecture")
        self.lecture_button.setToolTip("Three runs: reconstruction only (beta 0), KL only (no reconstruction "
                                       "term) and both, trained together: separated clusters, a space that "
                                       "describes nothing, and a smooth, sampleable one")
        self.stop_button = QPushButton("Stop", objectName="stopSweep", enabled=False)
        self.add_button = QPushButton("Add checkpoints...", objectName="addRuns")
        self.folder_button = QPushButton("Open sweep folder...", objectName="openSweepFolder")
        self.clear_button = QPushButton("Clear", objectName="clearRuns")
        self.status = QLabel("Train a sweep or add 2 to 4 checkpoints.", objectName="runsStatus")
        self.status.setWordWrap(True)
        # Three narrow rows: the dock shares the window's bottom with another group of views.
        controls = QGridLayout()
        betas = QHBoxLayout()
        betas.addWidget(QLabel("Betas:"))
        betas.addWidget(self.betas, 1)
        controls.addLayout(betas, 0, 0)
        controls.addWidget(self.beta_button, 0, 1)
        controls.addWidget(self.lecture_button, 0, 2)
        rates = QHBoxLayout()
        rates.addWidget(QLabel("Learning rates:"))
        rates.addWidget(self.rates, 1)
        controls.addLayout(rates, 1, 2)
        controls.addWidget(self.add_button, 1, 0)
        controls.addWidget(self.folder_button, 1, 1)
        controls.addWidget(self.stop_button, 2, 0)
        controls.addWidget(self.clear_button, 2, 1)
        self.panes = [RunPane(state, slot) for slot in range(MAX_RUNS)]
        grid = QGridLayout()
        for slot, pane in enumerate(self.panes):
            grid.addWidget(pane, slot // 2, slot % 2)
            pane.set_run(None)
        self.losses = pg.PlotWidget(objectName="runsLosses", axisItems=legible_axes())
        self.losses.setLabel("bottom", "epoch")
        self.losses.setLabel("left", "test loss (nats)")
        self.losses.setMinimumHeight(110)
        self.legend = self.losses.addLegend(offset=(-10, 10))
        self.curves: list[pg.PlotDataItem] = []
        shown = QWidget(objectName="runsShown")
        column = QVBoxLayout(shown)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(grid, 4)
        column.addWidget(self.losses, 1)
        self.scroll = QScrollArea(objectName="runsScroll")
        self.scroll.setWidget(shown)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setMinimumHeight(SCROLL_MIN_HEIGHT_PX)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addWidget(self.scroll, 1)

        self.beta_button.clicked.connect(self.train_beta_sweep)
        self.lecture_button.clicked.connect(self.train_lecture)
        self.stop_button.clicked.connect(state.stop_sweep)
        self.add_button.clicked.connect(self._ask_checkpoints)
        self.folder_button.clicked.connect(self._ask_folder)
        self.clear_button.clicked.connect(self._clear)
        state.runs_changed.connect(self._on_runs)
        state.coords_changed.connect(self._on_coords)
        state.code_changed.connect(self._on_code)
        state.picked_changed.connect(lambda _i: [p.draw_pick() for p in self.panes])
        state.losses_changed.connect(self._draw_losses)
        state.sweep_changed.connect(self._on_sweep)

    # -- starting --------------------------------------------------------------------------

    def _configs(self):
        if self.state.settings_source is None:
            raise UserError("the training settings are not available")
        return self.state.settings_source()

    def train_beta_sweep(self) -> None:
        try:
            betas = tuple(dict.fromkeys(float(v) for v in self.betas.text().split(",") if v.strip()))
        except ValueError:
            betas = ()
        if not 2 <= len(betas) <= MAX_RUNS or not all(0 <= b < 1e6 for b in betas):
            self.status.setText(f"Give 2 to {MAX_RUNS} different betas of 0 or more, like 0.5, 1, 4.")
            return
        self._start(betas=betas)

    def train_lecture(self) -> None:
        self._start(lecture=True)

    def _rates(self) -> tuple[float, ...] | None:
        """The learning rates typed in (empty: none), or None after saying what is wrong."""
        try:
            rates = tuple(float(v) for v in self.rates.text().split(",") if v.strip())
        except ValueError:
            rates = (-1.0,)
        if not all(0 < r <= 10 for r in rates):
            self.status.setText("Give learning rates above 0 and up to 10, like 1e-3, 3e-3 (or leave it empty).")
            return None
        return rates

    def _start(self, betas: tuple[float, ...] = (), lecture: bool = False) -> None:
        rates = self._rates()
        if rates is None:
            return
        try:
            model, data, train = self._configs()
            train = replace(train, min_steps=0)
            folder = self.state.train_sweep(model.preset, data, train, betas=betas, lecture=lecture,
                                            latent_dim=model.latent_dim, rates=rates)
        except UserError as exc:
            self.status.setText(one_line(exc, 300))
            return
        self.status.setText(f"Training together; the checkpoints are saved to {one_line(folder, 200)}")
        self._set_busy(True)

    def _set_busy(self, busy: bool) -> None:
        for button in (self.beta_button, self.lecture_button, self.add_button, self.folder_button,
                       self.clear_button):
            button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    def _ask_checkpoints(self) -> None:
        dialog = QFileDialog(self, "Add checkpoints side by side")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setNameFilter("Latent Explorer checkpoints (*.safetensors)")
        dialog.filesSelected.connect(self.state.add_checkpoints)
        dialog.open()

    def _ask_folder(self) -> None:
        dialog = QFileDialog(self, "Open a sweep's folder side by side")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(self.open_folder)
        dialog.open()

    def open_folder(self, folder: str) -> None:
        try:
            n = self.state.open_folder(folder)
        except UserError as exc:
            self.status.setText(one_line(exc, 300))
            return
        self.status.setText(f"Opening {plural(n, 'run')} from {one_line(folder, 200)}")

    def _clear(self) -> None:
        try:
            self.state.clear()
        except UserError as exc:
            self.status.setText(one_line(exc, 300))

    # -- drawing ---------------------------------------------------------------------------

    def _on_runs(self) -> None:
        for slot, pane in enumerate(self.panes):
            pane.set_run(self.state.runs[slot] if slot < len(self.state.runs) else None)
        self._draw_losses()

    def _on_coords(self, name: str) -> None:
        for pane in self.panes:
            if pane.run is not None and pane.run.name == name:
                pane.draw_codes()
                pane.draw_cursor()
                pane.plot.getPlotItem().enableAutoRange()

    def _on_code(self) -> None:
        for pane in self.panes:
            pane.draw_cursor()

    def _draw_losses(self) -> None:
        self.losses.clear()
        self.legend.clear()
        self.curves = []
        for slot, run in enumerate(self.state.runs):
            epochs = [e for e, _ in run.epochs]
            values = [v for _, v in run.epochs]
            curve = self.losses.plot(epochs, values, pen=pg.mkPen(RUN_COLOURS[slot], width=2), symbol="o",
                                     symbolSize=5, symbolBrush=RUN_COLOURS[slot], name=one_line(run.name, 40))
            self.curves.append(curve)
        for pane in self.panes:
            pane.draw_title()

    def _on_sweep(self, text: str) -> None:
        self.status.setText(one_line(text, 300))
        self._set_busy(self.state.sweeping)
