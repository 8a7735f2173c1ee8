"""Your input: draw an image, or drop or paste one, and see where the model puts it.

A small canvas holds an image at the model's own size (white on black, as MNIST draws; grey
for a colour model) and shows it enlarged; the left button draws with the pen width set
(in the model's pixels), with Undo, Clear and Invert. An image file dropped on the window or
this view, or pasted with Ctrl+V while the view has focus, is read by Pillow off the GUI
thread, cropped about its centre to the model's aspect, resized and converted to its
channels, and one line says what was done ("photo.png: 640x480 colour, centre cropped to
480x480 -> 28x28 grey"); a file that is not an image is refused in one line. **Use test
image** starts from the test image picked on the plane.

The input is encoded on the GUI thread (one image is about a millisecond) at each stroke's
end and, throttled, while it is drawn: its reconstruction shows beside it, its code is a star
on the plane (``LatentState.set_input``; the plane draws it and, for the VAE family, the
2-sigma outline of its posterior), and its anomaly score (``analysis/anomaly.py``: the
negative ELBO, or the reconstruction loss of a plain autoencoder) is ranked among the test
set's scores, which are computed in the background once per model weights (while a run
trains, the last ones are kept until it stops). A conditional model is asked which class
finds the image most likely (the lowest negative ELBO over classes) and the image is
encoded as that class. **Set as current code** moves the shared code to the input's mean.

**Draw from its posterior** (VAE family) decodes the input's posterior mean and samples of
N(mean, diag(var)) side by side, in the background (``LatentState.draw_from_posterior``): how
sure the model is of what it read. **Picked image's posterior** does the same for the test
image picked on the plane (as the plane's context menu does), and the strip shows here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QEvent, QMimeData, QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QImage, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.analysis.anomaly import anomaly_scores
from explorer.analysis.grids import image_grid
from explorer.analysis.latents import encode_images
from explorer.data import to_float
from explorer.display import one_line
from explorer.gui.state.latent_state import LatentState
from explorer.gui.widgets.image_pane import ImagePane, chw_to_display
from explorer.gui.widgets.redraw import Coalescer
from explorer.runtime.threads import ModelCopy

CANVAS_MIN_PX = 96
CANVAS_HINT_PX = 200
UNDO_LIMIT = 50
ENCODE_THROTTLE_MS = 60  # while a stroke is drawn, encode at most this often
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_PIXELS = 80_000_000  # a larger picture is refused before it is decoded (a decompression bomb)
EXIF_ORIENTATION = 0x0112
LOAD_TASK = "your input: read an image"
BASELINE_TASK = "your input: score the test set"
NAME_CHARS = 60
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


# -- images from files and the clipboard (run in the background) ------------------------------


@dataclass(frozen=True)
class Loaded:
    """What reading a dropped or pasted image gave: the pixels at the model's shape (None
    when refused) and one line saying what was done, or why not."""

    pixels: np.ndarray | None  # uint8 (C, H, W)
    note: str
    shape: tuple[int, int, int]


def _size(width: int, height: int) -> str:
    return f"{width}x{height}"


def fit_picture(picture, name: str, shape: tuple[int, int, int], source_grey: bool,
                shown_size: tuple[int, int] | None = None) -> Loaded:
    """A Pillow image to the model's ``shape`` (C, H, W): cropped about its centre to the
    model's aspect, resized, transparency laid on black, converted to the model's channels.
    ``shown_size`` is the size to report when ``picture`` was decoded smaller than its file."""
    from PIL import Image

    channels, height, width = shape
    full_w, full_h = picture.size
    shown_w, shown_h = shown_size or (full_w, full_h)
    target = width / height
    if full_w / full_h > target + 1e-9:
        crop_w, crop_h = max(1, round(full_h * target)), full_h
    elif full_w / full_h < target - 1e-9:
        crop_w, crop_h = full_w, max(1, round(full_w / target))
    else:
        crop_w, crop_h = full_w, full_h
    left, top = (full_w - crop_w) / 2, (full_h - crop_h) / 2
    alpha = "A" in picture.getbands() or "transparency" in picture.info
    picture = picture.convert("RGBA" if alpha else ("L" if source_grey else "RGB"))
    picture = picture.resize((width, height), Image.Resampling.LANCZOS,
                             box=(left, top, left + crop_w, top + crop_h), reducing_gap=3.0)
    if alpha:
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, (0, 0, 0, 255)), picture)
    picture = picture.convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(picture, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    was, now = "grey" if source_grey else "colour", "grey" if channels == 1 else "colour"
    steps = [f"{_size(shown_w, shown_h)} {was}"]
    if (crop_w, crop_h) != (full_w, full_h):
        steps.append(f"centre cropped to {_size(round(crop_w * shown_w / full_w), round(crop_h * shown_h / full_h))}")
    if alpha:
        steps.append("transparency on black")
    if (shown_w, shown_h, was) == (width, height, now) and not alpha:
        note = f"{name}: {_size(width, height)} {now}, used as it is"
    else:
        note = f"{name}: {', '.join(steps)} → {_size(width, height)} {now}"
    return Loaded(np.ascontiguousarray(pixels), note, shape)


def load_image_file(path: str, shape: tuple[int, int, int]) -> Loaded:
    """An image file at the model's ``shape``, or a one-line refusal. The file is read as
    untrusted: a regular file of bounded size (a FIFO must not hang the read), its picture's
    size checked before its pixels are decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from explorer.safe_files import read_regular_file

    name = one_line(Path(path).name or path, limit=NAME_CHARS)
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return Loaded(None, f"{name}: no such file", shape)
    except OSError as exc:  # FileRefused: a folder, a FIFO, too large, unreadable
        return Loaded(None, f"{name} was refused: {one_line(getattr(exc, 'reason', exc))}", shape)
    try:
        picture = Image.open(io.BytesIO(data))
        width, height = picture.size
        if width * height > MAX_PIXELS:
            return Loaded(None, f"{name} is too large a picture ({_size(width, height)})", shape)
        grey = picture.mode in GREY_MODES
        turned = picture.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # a quarter turn swaps the sides
        picture.draft("L" if grey else "RGB", (shape[2] * 4, shape[1] * 4))  # JPEG: decode at a fraction
        picture = ImageOps.exif_transpose(picture)
        return fit_picture(picture, name, shape, grey, (height, width) if turned else (width, height))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return Loaded(None, f"{name} is not an image Pillow can read: nothing was changed", shape)
    except (OSError, ValueError, SyntaxError) as exc:  # a truncated or damaged image
        return Loaded(None, f"{name} could not be read as an image ({one_line(exc, limit=80)})", shape)


def load_pasted(rgba: np.ndarray, name: str, shape: tuple[int, int, int]) -> Loaded:
    """A pasted picture, (H, W, 4) uint8, at the model's ``shape``."""
    from PIL import Image

    grey = bool((rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all())
    opaque = bool((rgba[..., 3] == 255).all())
    picture = Image.fromarray(np.ascontiguousarray(rgba[..., :3] if opaque else rgba),
                              mode="RGB" if opaque else "RGBA")
    return fit_picture(picture, name, shape, grey)


def qimage_rgba(image: QImage) -> np.ndarray:
    """A QImage's pixels as (H, W, 4) uint8 RGBA (a copy)."""
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height)
    return buffer.reshape(height, stride)[:, :width * 4].reshape(height, width, 4).copy()


# -- the input read by the model (on the GUI thread: about a millisecond) ---------------------


@dataclass(frozen=True)
class Reading:
    """What the model makes of the input."""

    mean: np.ndarray  # (D,)
    logvar: np.ndarray | None  # (D,), VAE family
    label: int | None  # the class it was encoded as (conditional models: the most likely)
    score: float  # negative ELBO (VAE family) or reconstruction loss
    class_scores: np.ndarray | None  # conditional models: the score under each class
    recon: np.ndarray  # (C, H, W) in [0, 1]


@torch.no_grad()
def read_input(model, pixels: np.ndarray) -> Reading:
    """Encode one uint8 (C, H, W) image; a conditional model as the class whose negative
    ELBO is lowest."""
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8))[None]
    labels, class_scores = None, None
    if model.is_conditional:
        classes = model.config.num_classes
        class_scores = anomaly_scores(model, x.expand(classes, -1, -1, -1).contiguous(), torch.arange(classes))
        label = int(np.argmin(class_scores))
        labels = torch.tensor([label])
        score = float(class_scores[label])
    else:
        label = None
        score = float(anomaly_scores(model, x)[0])
    mean, logvar = encode_images(model, x, labels)
    recon = model.reconstruct(to_float(x), labels).float().clamp(0, 1)
    return Reading(mean[0].numpy().astype(np.float64), None if logvar is None else logvar[0].numpy().astype(np.float64),
                   label, score, class_scores, recon[0].numpy())


# -- the canvas ------------------------------------------------------------------------------


class DrawCanvas(QWidget):
    """An image at the model's size, shown enlarged (each pixel a square), drawn on with the
    left button. ``pen_width`` is in the image's pixels."""

    stroke_moved = Signal()  # the picture changed during a stroke
    changed = Signal()  # a stroke ended, or the picture was cleared, undone, inverted or replaced

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drawCanvas")
        self.setMinimumSize(CANVAS_MIN_PX, CANVAS_MIN_PX)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("Draw with the left mouse button (white on black, at the model's image size); "
                        "drop or paste (Ctrl+V) an image to start from it")
        self.image: QImage | None = None
        self.pen_width = 2.0
        self._undo: list[QImage] = []
        self._last: QPointF | None = None  # the image point of the stroke being drawn

    # -- the picture -------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int] | None:
        if self.image is None:
            return None
        grey = self.image.format() == QImage.Format.Format_Grayscale8
        return (1 if grey else 3, self.image.height(), self.image.width())

    def set_shape(self, shape: tuple[int, int, int]) -> None:
        """A blank (black) picture of ``shape`` (C, H, W); nothing to undo."""
        channels, height, width = shape
        fmt = QImage.Format.Format_Grayscale8 if channels == 1 else QImage.Format.Format_RGB888
        self.image = QImage(width, height, fmt)
        self.image.fill(QColor(0, 0, 0))
        self._undo.clear()
        self._last = None
        self.update()

    def array(self) -> np.ndarray:
        """The picture as uint8 (C, H, W)."""
        assert self.image is not None
        channels, height, width = self.shape or (1, 0, 0)
        stride = self.image.bytesPerLine()
        rows = np.frombuffer(self.image.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
        pixels = rows[:, :width * channels].reshape(height, width, channels)
        return pixels.transpose(2, 0, 1).copy()  # never a view of the QImage's memory

    def set_array(self, pixels: np.ndarray) -> None:
        """Replace the picture with uint8 (C, H, W) ``pixels`` of its shape (Undo brings it back)."""
        assert self.image is not None and tuple(pixels.shape) == self.shape
        channels, height, width = pixels.shape
        data = np.ascontiguousarray(pixels.transpose(1, 2, 0)).tobytes()
        fmt = QImage.Format.Format_Grayscale8 if channels == 1 else QImage.Format.Format_RGB888
        self._push_undo()
        self.image = QImage(data, width, height, width * channels, fmt).copy()
        self.update()
        self.changed.emit()

    def is_blank(self) -> bool:
        return self.image is None or not self.array().any()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def clear(self) -> None:
        if self.image is None or self.is_blank():
            return
        self._push_undo()
        self.image.fill(QColor(0, 0, 0))
        self.update()
        self.changed.emit()

    def undo(self) -> None:
        if self.image is None or not self._undo:
            return
        self.image = self._undo.pop()
        self._last = None
        self.update()
        self.changed.emit()

    def invert(self) -> None:
        if self.image is None:
            return
        self._push_undo()
        self.image.invertPixels()
        self.update()
        self.changed.emit()

    def _push_undo(self) -> None:
        assert self.image is not None
        self._undo.append(self.image.copy())
        del self._undo[:-UNDO_LIMIT]

    # -- where the picture is drawn --------------------------------------------------------

    def picture_rect(self) -> QRectF:
        """Where the picture is drawn in the widget: as large as fits, pixels square, centred."""
        if self.image is None:
            return QRectF()
        scale = min(self.width() / self.image.width(), self.height() / self.image.height())
        w, h = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def to_image(self, pos: QPointF) -> QPointF:
        """A widget point in the picture's pixel coordinates."""
        assert self.image is not None
        rect = self.picture_rect()
        scale = rect.width() / self.image.width()
        return QPointF((pos.x() - rect.x()) / scale, (pos.y() - rect.y()) / scale)

    def from_image(self, x: float, y: float) -> QPointF:
        """The widget point of the picture's pixel coordinates (x, y)."""
        assert self.image is not None
        rect = self.picture_rect()
        scale = rect.width() / self.image.width()
        return QPointF(rect.x() + x * scale, rect.y() + y * scale)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(CANVAS_HINT_PX, CANVAS_HINT_PX)

    # -- drawing -----------------------------------------------------------------------------

    def _stroke(self, start: QPointF, end: QPointF) -> None:
        assert self.image is not None
        painter = QPainter(self.image)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(QColor(255, 255, 255), self.pen_width, Qt.PenStyle.SolidLine,
                                Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
            if start == end:
                painter.drawPoint(start)
            else:
                painter.drawLine(start, end)
        finally:
            painter.end()
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.button() != Qt.MouseButton.LeftButton or self.image is None:
            super().mousePressEvent(event)
            return
        event.accept()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self._push_undo()
        self._last = self.to_image(event.position())
        self._stroke(self._last, self._last)
        self.stroke_moved.emit()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # The stroke is the press's own state, not the event's buttons (a synthetic move may carry none).
        if self._last is None or self.image is None:
            super().mouseMoveEvent(event)
            return
        event.accept()
        point = self.to_image(event.position())
        self._stroke(self._last, point)
        self._last = point
        self.stroke_moved.emit()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.button() != Qt.MouseButton.LeftButton or self._last is None:
            super().mouseReleaseEvent(event)
            return
        event.accept()
        point = self.to_image(event.position())
        if point != self._last:
            self._stroke(self._last, point)
        self._last = None
        self.changed.emit()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), self.palette().color(self.backgroundRole()).darker(130))
            if self.image is not None:
                rect = self.picture_rect()
                painter.drawImage(rect, self.image)  # no smoothing: each pixel a square
                painter.setPen(QPen(QColor(110, 110, 110), 1))
                painter.drawRect(rect.adjusted(-0.5, -0.5, 0.5, 0.5))
        finally:
            painter.end()


# -- the view --------------------------------------------------------------------------------


class DrawView(QWidget):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.reading: Reading | None = None
        self._model: object = None  # the model object the canvas and results belong to
        self._version = 0  # bumps with every change of weights or data: the test scores' age
        self._baseline: tuple[int, np.ndarray] | None = None  # (version, the test set's scores)
        self._baseline_pending: int | None = None
        self._hooked_window: QWidget | None = None

        self.canvas = DrawCanvas()
        self.recon = ImagePane("drawReconstruction")
        self.recon.setMinimumSize(CANVAS_MIN_PX, CANVAS_MIN_PX)
        self.pen = QSpinBox(objectName="drawPen", minimum=1, maximum=16, value=2, prefix="pen ", suffix=" px")
        self.pen.setToolTip("The pen's width in the model's pixels")
        self.undo_button = QPushButton("Undo", objectName="drawUndo")
        self.undo_button.setToolTip("Take back the last stroke, clear, invert or image (Ctrl+Z)")
        self.clear_button = QPushButton("Clear", objectName="drawClear")
        self.invert_button = QPushButton("Invert", objectName="drawInvert")
        self.invert_button.setToolTip("Swap black and white: a dark drawing on a light background becomes "
                                      "white on black, as the training images are")
        self.test_button = QPushButton("Use test image", objectName="drawUseTest")
        self.test_button.setToolTip("Start from the test image picked on the plane (click a dot)")
        self.set_code_button = QPushButton("Set as current code", objectName="drawSetCode")
        self.set_code_button.setToolTip("Move the current code (the red marker, the sliders and the decoded "
                                        "image) to your input's code")
        self.posterior_button = QPushButton("Draw from its posterior", objectName="drawFromPosterior")
        self.picked_posterior_button = QPushButton("Picked image's posterior", objectName="drawPickedPosterior")
        self.draws_caption = QLabel("", objectName="drawsCaption")
        self.draws_caption.setWordWrap(True)
        self.draws = ImagePane("posteriorDraws")
        self.draws.set_rows(1)
        self.draws.setVisible(False)
        self.note = QLabel("", objectName="drawNote")
        self.note.setWordWrap(True)
        self.readout = QLabel("", objectName="drawReadout")
        self.readout.setWordWrap(True)

        bar = QHBoxLayout()
        for widget in (self.pen, self.undo_button, self.clear_button, self.invert_button, self.test_button):
            bar.addWidget(widget)
        bar.addStretch(1)
        pictures = QGridLayout()
        pictures.addWidget(QLabel("Your input"), 0, 0)
        pictures.addWidget(QLabel("Its reconstruction"), 0, 1)
        pictures.addWidget(self.canvas, 1, 0)
        pictures.addWidget(self.recon, 1, 1)
        pictures.setColumnStretch(0, 1)
        pictures.setColumnStretch(1, 1)
        pictures.setRowStretch(1, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.readout, 1)
        bottom.addWidget(self.set_code_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addLayout(pictures, 1)
        layout.addWidget(self.note)
        layout.addLayout(bottom)
        posterior = QHBoxLayout()
        posterior.addWidget(self.posterior_button)
        posterior.addWidget(self.picked_posterior_button)
        posterior.addWidget(self.draws_caption, 1)
        layout.addLayout(posterior)
        layout.addWidget(self.draws)

        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        paste = QShortcut(QKeySequence(QKeySequence.StandardKey.Paste), self,
                          context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        paste.activated.connect(self.paste)
        undo = QShortcut(QKeySequence(QKeySequence.StandardKey.Undo), self,
                         context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        undo.activated.connect(self.canvas.undo)
        self.encodes = Coalescer(self.encode_input, interval_ms=ENCODE_THROTTLE_MS, parent=self)

        self.pen.valueChanged.connect(lambda value: setattr(self.canvas, "pen_width", float(value)))
        self.undo_button.clicked.connect(self.canvas.undo)
        self.clear_button.clicked.connect(self.canvas.clear)
        self.invert_button.clicked.connect(self.canvas.invert)
        self.test_button.clicked.connect(self.use_test_image)
        self.set_code_button.clicked.connect(state.use_input_code)
        self.posterior_button.clicked.connect(lambda: state.draw_from_posterior(None))
        self.picked_posterior_button.clicked.connect(self._draw_from_picked)
        state.draws_changed.connect(self._show_draws)
        self.canvas.stroke_moved.connect(self.encodes.request)
        self.canvas.changed.connect(self._on_canvas_changed)
        state.decoder_changed.connect(self._on_decoder)
        state.picked_changed.connect(lambda _: self._update_buttons())
        state.stats_changed.connect(self._update_buttons)  # a replayed epoch has no posteriors
        state.code_changed.connect(lambda _: self._update_buttons())
        state.session.data_changed.connect(self._on_data_changed)
        self._on_decoder()

    # -- following the model -------------------------------------------------------------------

    def _on_decoder(self) -> None:
        """New weights (a snapshot, a frame of the timeline) or another model: read the input
        again; another model, or another image shape, starts a blank canvas."""
        model = self.state.model
        self._version += 1
        if self.state.session.view_model is not self._model:
            self._model = self.state.session.view_model
            self._baseline, self._baseline_pending = None, None
        if model is None:
            self.canvas.image = None
            self.canvas.update()
            self._forget_reading()
            self.note.setText("Open or train a model: you draw at its image size, and it reads what you draw.")
        elif self.canvas.shape != model.config.image_shape:
            self.canvas.set_shape(model.config.image_shape)
            self.canvas.pen_width = float(self.pen.value())
            self._forget_reading()
            _, height, width = model.config.image_shape
            self.note.setText(f"Draw with the mouse ({width}x{height}, white on black), drop an image file here "
                              "or paste one (Ctrl+V).")
        else:
            self.encode_input()
        self._update_buttons()

    def _on_data_changed(self) -> None:
        self._version += 1
        self._update_buttons()

    def _on_canvas_changed(self) -> None:
        self.encodes.request()
        self.encodes.flush()

    def _forget_reading(self) -> None:
        self.reading = None
        self.recon.clear()
        self.readout.setText("")
        self.state.clear_input()

    def _update_buttons(self) -> None:
        ready = self.canvas.image is not None
        for button in (self.clear_button, self.invert_button):
            button.setEnabled(ready)
        self.pen.setEnabled(ready)
        self.undo_button.setEnabled(ready and self.canvas.can_undo)
        self.test_button.setEnabled(ready and self._picked_pixels() is not None)
        self.set_code_button.setEnabled(self.reading is not None and self.state.code is not None)
        state = self.state
        variational = state.is_variational
        self.posterior_button.setEnabled(self.reading is not None and self.reading.logvar is not None)
        self.picked_posterior_button.setEnabled(
            variational and state.picked is not None and state.test_posterior(state.picked) is not None)
        if state.model is not None and not variational:
            no_posterior = "A plain autoencoder gives each image one code: there is no posterior to draw from"
            self.posterior_button.setToolTip(no_posterior)
            self.picked_posterior_button.setToolTip(no_posterior)
        else:
            self.posterior_button.setToolTip("Decode your input's posterior mean, then samples of its posterior "
                                             "N(mean, diag(var)), side by side")
            self.picked_posterior_button.setToolTip("The same for the test image picked on the plane (click a dot)")

    def _draw_from_picked(self) -> None:
        if self.state.picked is not None:
            self.state.draw_from_posterior(self.state.picked)

    def _show_draws(self) -> None:
        """A posterior's decodes arrived (or were dropped with their model): show them in a row."""
        draws = self.state.posterior_draws
        self.draws.setVisible(draws is not None)
        if draws is None:
            self.draws.clear()
            self.draws_caption.setText("")
            return
        grid = image_grid(torch.from_numpy(draws.images), nrow=len(draws.images)).numpy()
        self.draws.set_array(chw_to_display(grid))
        self.draws_caption.setText(f"The posterior of {draws.source}: its mean's decode (left), then "
                                   f"{len(draws.images) - 1} samples")
        self._raise_dock()

    # -- reading the input ------------------------------------------------------------------------

    def encode_input(self) -> None:
        """Encode what the canvas holds (a blank canvas is no input)."""
        model = self.state.model
        self.undo_button.setEnabled(self.canvas.can_undo)
        if model is None or self.canvas.shape != model.config.image_shape:
            return
        if self.canvas.is_blank():
            self._forget_reading()
            self._update_buttons()
            return
        reading = read_input(model, self.canvas.array())
        self.reading = reading
        self.state.set_input(reading.mean, reading.logvar, reading.label)
        self.recon.set_array(chw_to_display(reading.recon))
        self._show_readout()
        self._update_buttons()
        self._want_baseline()

    def _show_readout(self) -> None:
        reading, model = self.reading, self.state.model
        if reading is None or model is None:
            return
        if reading.logvar is not None:
            text = f"Anomaly score {reading.score:.1f} nats (negative ELBO)"
        else:
            text = f"Anomaly score {reading.score:.2f} (reconstruction loss)"
        if self._baseline is not None:
            version, scores = self._baseline
            share = 100.0 * float(np.mean(scores < reading.score))
            text += f": {share:.0f}% of the {len(scores)} test images score lower"
            if version != self._version:
                text += " (scored with earlier weights)"
        elif self._baseline_pending is not None:
            text += "; ranking it among the test images..."
        text += "."
        if reading.class_scores is not None and reading.label is not None:
            names = self.state.class_names
            order = np.argsort(reading.class_scores, kind="stable")

            def name(k: int) -> str:
                return names[k] if k < len(names) else str(k)

            text += f" Most likely class: {name(reading.label)}"
            if len(order) > 1:
                runner_up = int(order[1])
                gap = float(reading.class_scores[runner_up] - reading.score)
                text += f" (next: {name(runner_up)}, {gap:.1f} nats less likely)"
            text += "."
        self.readout.setText(text)

    def _want_baseline(self) -> None:
        """Score the test set once for these weights, in the background (while a run trains,
        once for the model, then again when it stops)."""
        state = self.state
        model, data = state.model, state.session.data
        if model is None or data is None or data.image_shape != model.config.image_shape \
                or (model.is_conditional and data.test_labels is None):
            return
        current = self._baseline is not None and self._baseline[0] == self._version
        if current or self._baseline_pending == self._version:
            return
        if state.session.is_running and (self._baseline is not None or self._baseline_pending is not None):
            return
        copy, version = ModelCopy.of(model), self._version
        images, labels = data.test_images, data.test_labels
        self._baseline_pending = version
        state.session.tasks.submit(BASELINE_TASK, lambda _: anomaly_scores(copy.build(), images, labels),
                                   label="Scoring the test set for your input",
                                   on_done=lambda scores: self._on_baseline(version, scores),
                                   on_failed=self._on_baseline_failed)

    def _on_baseline(self, version: int, scores: np.ndarray) -> None:
        if self._baseline_pending == version:
            self._baseline_pending = None
        if self._baseline is None or self._baseline[0] <= version:
            self._baseline = (version, np.asarray(scores, dtype=np.float64))
        self._show_readout()

    def _on_baseline_failed(self, message: str) -> None:
        self._baseline_pending = None
        self.note.setText(f"Could not score the test set: {one_line(message)}")

    # -- starting from something ---------------------------------------------------------------

    def _picked_pixels(self) -> np.ndarray | None:
        state, data = self.state, self.state.session.data
        index = state.picked
        if index is None or data is None or self.canvas.shape is None or not 0 <= index < data.test_images.shape[0]:
            return None
        pixels = data.test_images[index].numpy()
        return pixels if tuple(pixels.shape) == self.canvas.shape else None

    def use_test_image(self) -> None:
        pixels = self._picked_pixels()
        if pixels is None:
            return
        index, data = self.state.picked, self.state.session.data
        assert index is not None and data is not None
        names = self.state.class_names
        what = f"Test image {index}"
        if data.test_labels is not None:
            label = int(data.test_labels[index])
            what += f" (class {names[label] if label < len(names) else label})"
        self.canvas.set_array(np.array(pixels, dtype=np.uint8))
        self.note.setText(f"{what}: draw over it, or Undo to go back.")

    def accepts(self, mime: QMimeData) -> bool:
        return mime.hasImage() or any(url.isLocalFile() for url in mime.urls())

    def take_mime(self, mime: QMimeData, what: str = "dropped") -> bool:
        """Start from the image file (the first local file) or picture ``mime`` holds; a
        refusal is one line. True when something is being read."""
        shape = self.canvas.shape
        if shape is None:
            self.note.setText("Open or train a model first: an image is resized to the model's input.")
            return False
        files = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        if files:
            path = files[0]
            self.note.setText(f"Reading {one_line(Path(path).name, limit=NAME_CHARS)}...")
            self._load(lambda: load_image_file(path, shape))
            return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                rgba = qimage_rgba(image)
                self.note.setText(f"Reading the {what} image...")
                self._load(lambda: load_pasted(rgba, f"{what} image", shape))
                return True
        self.note.setText("Nothing to use: drop an image file, or copy an image and paste it (Ctrl+V).")
        return False

    def paste(self) -> None:
        """Ctrl+V: the clipboard's image, or the image file it names."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None or not self.accepts(mime):
            self.note.setText("The clipboard holds no image: copy one, or an image file, and paste again.")
            return
        self.take_mime(mime, "pasted")

    def _load(self, read) -> None:
        self.state.session.tasks.submit(LOAD_TASK, lambda _: read(), label="Reading an image", model_bound=False,
                                        on_done=self._on_loaded,
                                        on_failed=lambda message: self.note.setText(
                                            f"Could not read the image: {one_line(message)}"))

    def _on_loaded(self, loaded: Loaded) -> None:
        if loaded.pixels is None:
            self.note.setText(loaded.note)
            return
        if loaded.shape != self.canvas.shape:
            self.note.setText("The model changed while the image was read: drop or paste it again.")
            return
        self.canvas.set_array(loaded.pixels)
        self.note.setText(loaded.note)

    # -- drops, on this view or anywhere on its window -------------------------------------------

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.accepts(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.accepts(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.take_mime(event.mimeData()):
            event.acceptProposedAction()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._hook_window()

    def _hook_window(self) -> None:
        """Take drops anywhere on the window this view is docked in (the window's own children
        that take drops, such as text fields, keep theirs)."""
        window = self.window()
        if window is self or window is self._hooked_window:
            return
        if self._hooked_window is not None:
            self._hooked_window.removeEventFilter(self)
        self._hooked_window = window
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self._hooked_window and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove,
                                                                QEvent.Type.Drop):
            if not self.accepts(event.mimeData()):
                return False
            if event.type() == QEvent.Type.Drop:
                self._raise_dock()
                self.take_mime(event.mimeData())
            event.acceptProposedAction()
            return True
        return super().eventFilter(watched, event)

    def _raise_dock(self) -> None:
        """Show this view's dock, so a drop elsewhere on the window shows where it went."""
        widget = self.parentWidget()
        while widget is not None and not isinstance(widget, QDockWidget):
            widget = widget.parentWidget()
        if isinstance(widget, QDockWidget):
            widget.show()
            widget.raise_()
