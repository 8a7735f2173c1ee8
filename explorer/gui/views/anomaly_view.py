"""Anomaly detection: the test split's scores, normal classes against the rest.

Train on the "normal" classes only (Classes in the training settings, or `train
--classes`), then this view scores the whole test split, every class, off the GUI
thread: a histogram per group with a draggable threshold (precision, recall and F1 at
it), the ROC curve with its AUC, and the most anomalous test images with their
reconstructions and per-pixel error maps (reconstructed in the same task, through
``BackgroundPicture``: nothing model-sized runs on the GUI thread).

Every text wraps and the whole view scrolls when its dock is shorter than it needs, so
at the default window size nothing is cut off; results belong to one model object and
are cleared when another one arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from explorer.analysis.anomaly import anomaly_scores, error_maps
from explorer.analysis.grids import image_grid, save_png
from explorer.analysis.metrics import Detection, detection_at, roc_auc, roc_curve
from explorer.config import DataConfig, ModelConfig, parse_classes, replace
from explorer.data import ImageData, to_float
from explorer.display import one_line
from explorer.errors import ConfigError
from explorer.gui.state.session import TrainingSession
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.image_pane import ImagePane
from explorer.gui.widgets.plot_legibility import add_outside_legend, legible_axes

TOP = 8
BINS = 60
CHART_MIN_HEIGHT = 130  # below this the histogram's bars and the ROC curve are unreadable
NORMAL_EDIT_WIDTH = 80
WORST_ROWS = 3  # each image, its reconstruction and its error map


class CompactChart(pg.PlotWidget):
    """A chart that asks its layout for only its minimum height: in the scroll area, the
    view then takes the dock's height when it fits and scrolls only when it does not."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(super().sizeHint().width(), self.minimumHeight())


class CompactPane(ImagePane):
    """An ImagePane that, like CompactChart, asks for no more than its legible height."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(super().sizeHint().width(), self.minimumHeight())


@dataclass(frozen=True)
class Scored:
    """What the background pass hands back: the data it scored, the scores, and the most
    anomalous images (``top``) with their reconstructions and error maps."""

    config: ModelConfig
    data: ImageData
    scores: np.ndarray
    top: np.ndarray  # test-image numbers, most anomalous first
    worst_rows: np.ndarray  # (3 * len(top), 3, H, W): images, reconstructions, error maps
    worst_grid: np.ndarray  # the rows tiled, ready for the pane


def score_test_set(model, data_config: DataConfig, data: ImageData | None) -> Scored:
    """In the task: score every test image, then reconstruct the most anomalous ones."""
    from explorer.data import load_dataset

    if data is None:
        data = load_dataset(replace(data_config, classes=None))
    scores = anomaly_scores(model, data.test_images, data.test_labels)
    top = np.argsort(-scores)[:TOP]
    index = torch.from_numpy(top.copy())
    labels = data.test_labels[index] if data.test_labels is not None else None
    recon, errors = error_maps(model, data.test_images[index], labels)
    images = to_float(data.test_images[index]).numpy()
    if images.shape[1] == 1:
        images, recon = np.repeat(images, 3, 1), np.repeat(recon, 3, 1)
    rows = np.concatenate([images, recon, heat(errors)])
    grid = image_grid(torch.from_numpy(rows), nrow=len(top)).numpy()
    return Scored(model.config, data, scores, top, rows, np.ascontiguousarray(grid.transpose(1, 2, 0)))


def heat(errors: np.ndarray) -> np.ndarray:
    """(N, H, W) errors to (N, 3, H, W) colours, each map scaled to its own maximum."""
    peak = errors.reshape(errors.shape[0], -1).max(1).clip(min=1e-12)[:, None, None]
    rgba = pg.colormap.get("inferno").map((errors / peak).ravel(), mode="float")
    return rgba[:, :3].reshape(*errors.shape, 3).transpose(0, 3, 1, 2).astype(np.float32)


class AnomalyView(QWidget):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.scored: Scored | None = None
        self.is_anomaly: np.ndarray | None = None
        self.normal: tuple[int, ...] = ()
        self.auc = float("nan")
        self.detection: Detection | None = None
        self.top: np.ndarray | None = None
        self.worst_rows: np.ndarray | None = None
        self._stale = True
        self._model: object = None  # the model object the results above belong to

        self.normal_edit = QLineEdit(objectName="normalClasses")
        self.normal_edit.setPlaceholderText("e.g. 1")
        self.normal_edit.setToolTip("The classes the model should find normal; by default those it was trained on")
        self.normal_edit.setMaximumWidth(NORMAL_EDIT_WIDTH)
        self.score_button = QPushButton("Score test set", objectName="scoreTestSet")
        self.status = QLabel("", objectName="anomalyStatus")
        self.status.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Normal classes:"))
        bar.addWidget(self.normal_edit)
        bar.addWidget(self.score_button)
        bar.addStretch(1)

        self.histogram = CompactChart(objectName="anomalyHistogram", axisItems=legible_axes())
        self.histogram.setLabel("bottom", "anomaly score")
        self.histogram.setLabel("left", "test images")
        self.legend = add_outside_legend(self.histogram.getPlotItem(), "below", columns=2)
        self.normal_curve = self.histogram.plot(stepMode="center", fillLevel=0, name="normal",
                                                pen=pg.mkPen("#4e79a7", width=2), brush=(78, 121, 167, 90))
        self.other_curve = self.histogram.plot(stepMode="center", fillLevel=0, name="other classes",
                                               pen=pg.mkPen("#e15759", width=2), brush=(225, 87, 89, 90))
        self.threshold = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#f0f0f0", width=2),
                                         hoverPen=pg.mkPen("#ffbf00", width=3),
                                         label="threshold", labelOpts={"position": 0.92, "color": "#f0f0f0"})
        self.threshold.setVisible(False)
        self.histogram.addItem(self.threshold, ignoreBounds=True)
        self.roc = CompactChart(objectName="anomalyRoc", axisItems=legible_axes())
        self.roc.setLabel("bottom", "false positive rate")
        self.roc.setLabel("left", "true positive rate")
        self.roc.setXRange(0, 1)
        self.roc.setYRange(0, 1)
        self.roc.plot([0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), style=pg.QtCore.Qt.PenStyle.DashLine))
        self.roc_curve = self.roc.plot(pen=pg.mkPen("#f28e2b", width=2))
        self.roc_point = self.roc.plot(pen=None, symbol="o", symbolBrush="#f0f0f0", symbolSize=8)
        self.readout = QLabel("", objectName="anomalyReadout")
        self.readout.setWordWrap(True)
        self.worst = CompactPane("anomalyWorst")
        self.worst.set_rows(WORST_ROWS)
        self.histogram.setMinimumHeight(CHART_MIN_HEIGHT)
        self.roc.setMinimumHeight(CHART_MIN_HEIGHT)
        self.worst_label = QLabel("Most anomalous test images: image, reconstruction, per-pixel error",
                                  objectName="anomalyWorstLabel")
        self.worst_label.setWordWrap(True)

        grid = QGridLayout()
        grid.addWidget(self.histogram, 0, 0)
        grid.addWidget(self.roc, 0, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        content = QWidget(objectName="anomalyContent")
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addLayout(grid, 3)
        layout.addWidget(self.readout)
        layout.addWidget(self.worst_label)
        layout.addWidget(self.worst, 2)
        # A short dock scrolls rather than squeezing the texts and pictures out of sight.
        self.scroll = QScrollArea(objectName="anomalyScroll")
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)

        self.score_button.clicked.connect(self.score)
        self.normal_edit.editingFinished.connect(self._apply_normal)
        self.threshold.sigPositionChanged.connect(self._on_threshold)
        self.pictures: BackgroundPicture[Scored] = BackgroundPicture(
            session.tasks, "anomaly", "Scoring anomalies", self._on_scored, lambda: self.session.view_model,
            session.model_changed, on_failed=self._on_failed, copy_at_request=True)
        session.model_changed.connect(self._on_model_changed)
        session.data_changed.connect(self._on_data_changed)

    # -- scoring -----------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._stale and not self.session.is_running:
            self.score()

    def _on_data_changed(self) -> None:
        config = self.session.data_config
        if config is not None and config.classes:
            self.normal_edit.setText(",".join(str(k) for k in config.classes))
        self._on_model_changed()

    def _on_model_changed(self) -> None:
        if self.session.view_model is not self._model:
            self._model = self.session.view_model
            self.clear_results()
        self._stale = True
        if self.isVisible() and not self.session.is_running:
            self.score()

    def clear_results(self) -> None:
        """Another model: the scores, charts and pictures were the old one's."""
        self.scored = self.is_anomaly = self.detection = self.top = self.worst_rows = None
        self.auc = float("nan")
        self.normal_curve.setData([], [])
        self.other_curve.setData([], [])
        self.roc_curve.setData([], [])
        self.roc_point.setData([], [])
        self.roc.setTitle(None)
        self.threshold.setVisible(False)
        self.readout.setText("")
        self.status.setText("")
        self.worst.clear()

    def score(self) -> None:
        """Score the whole test split (all classes) in the background."""
        session, model = self.session, self.session.view_model
        if model is None or session.data is None or session.data_config is None:
            return
        if session.data.test_labels is None:
            self.status.setText("This dataset has no classes, so nothing can be called normal.")
            return
        config = session.data_config
        full = None if config.classes else session.data  # trained on a subset: load every class
        self._stale = False
        self.status.setText("Scoring the test set...")
        self.pictures.request(model, lambda copy: score_test_set(copy, config, full))

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Could not score the test set: {message}")

    def _on_scored(self, scored: Scored) -> None:
        current = self.session.view_model
        if current is None or scored.config != current.config:
            return  # scores of a model no longer shown
        self.scored = scored
        self._apply_normal()

    def normal_classes(self) -> tuple[int, ...]:
        text = self.normal_edit.text().strip()
        if not text:
            config = self.session.data_config
            return tuple(config.classes) if config is not None and config.classes else ()
        return parse_classes(text)

    def _apply_normal(self) -> None:
        if self.scored is None:
            return
        try:
            normal = self.normal_classes()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return
        labels = self.scored.data.test_labels.numpy()
        is_anomaly = ~np.isin(labels, normal)
        if not normal or is_anomaly.all() or not is_anomaly.any():
            self.status.setText("Say which classes are normal (this model was trained on all of them), "
                                "e.g. 1; the others are the anomalies.")
            return
        self.normal, self.is_anomaly = normal, is_anomaly
        self._draw()

    # -- drawing -----------------------------------------------------------------------

    def _draw(self) -> None:
        assert self.scored is not None and self.is_anomaly is not None
        scores, anomalous = self.scored.scores, self.is_anomaly
        names = tuple(one_line(name, limit=40) for name in self.scored.data.class_names)
        edges = np.histogram_bin_edges(scores[np.isfinite(scores)], bins=BINS)
        self.normal_curve.setData(edges, np.histogram(scores[~anomalous], edges)[0])
        self.other_curve.setData(edges, np.histogram(scores[anomalous], edges)[0])
        fpr, tpr, _ = roc_curve(scores, anomalous)
        self.auc = roc_auc(scores, anomalous)
        self.roc_curve.setData(fpr, tpr)
        self.roc.setTitle(f"ROC AUC {self.auc:.4f}")
        # Start at the threshold with the best F1 (the user drags from there).
        candidates = np.quantile(scores, np.linspace(0.01, 0.99, 99))
        best = max(candidates, key=lambda t: detection_at(scores, anomalous, t).f1)
        self.threshold.setBounds((float(edges[0]), float(edges[-1])))
        self.threshold.setVisible(True)
        self.threshold.setValue(float(best))
        self._on_threshold()
        label = ", ".join(names[k] if k < len(names) else str(k) for k in self.normal)
        self.status.setText(f"Normal: {label}. Score: "
                            f"{'negative ELBO (nats)' if self.scored.config.variational else 'reconstruction loss'}"
                            f" on {len(scores)} test images.")
        self._draw_worst()

    def _on_threshold(self) -> None:
        if self.scored is None or self.is_anomaly is None:
            return
        t = float(self.threshold.value())
        d = detection_at(self.scored.scores, self.is_anomaly, t)
        self.detection = d
        self.threshold.label.setFormat(f"{t:.1f}")
        fpr = float(((self.scored.scores > t) & ~self.is_anomaly).sum() / max(1, (~self.is_anomaly).sum()))
        self.roc_point.setData([fpr], [d.recall])
        self.readout.setText(f"Threshold {t:.2f}: precision {d.precision:.3f}, recall {d.recall:.3f}, "
                             f"F1 {d.f1:.3f} ({d.flagged} of {len(self.scored.scores)} test images flagged)")

    def _draw_worst(self) -> None:
        if self.scored is None:
            return
        self.top, self.worst_rows = self.scored.top, self.scored.worst_rows
        self.worst.set_array(self.scored.worst_grid)

    def export_png(self, path: str) -> None:
        if self.top is None:
            raise ValueError("score the test set first")
        save_png(image_grid(torch.from_numpy(self.worst_rows), nrow=len(self.top)), path)
