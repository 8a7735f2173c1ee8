"""The training images nearest to the decoded image: does the decoder invent, or recall?

Two rows, each starting with the current decoded image: its ``k`` nearest training images
in pixel space (top) and, by code, in code space (bottom), with each distance under its
image. The caption gives the scale: how far a training image typically is from its nearest
other training image.

Nothing that grows with the data runs on the GUI thread. A change of the code (or the
class, or k) asks for a search at most every THROTTLE_MS, and only while the view is
visible; the GUI thread decodes the one code and hands the search to the session's task
runner. One search runs at a time and the newest request waits behind it, replacing any
older waiting one, so a drag keeps getting results instead of cancelling every search
before it ends. The training images' codes are encoded in a task of their own, once per
model (at most MAX_TRAINING_IMAGES); while a run trains they are encoded again at most
every CODES_REFRESH_S, and the caption says how old they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PIL import Image, ImageDraw
from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QSpinBox, QWidget

from explorer.analysis.grids import to_uint8_hwc
from explorer.analysis.neighbours import (
    MAX_TRAINING_IMAGES,
    Neighbours,
    TrainingCodes,
    encode_training,
    nearest_codes,
    nearest_images,
    training_indices,
)
from explorer.atomic import atomic_write
from explorer.display import plural
from explorer.gui.state.latent_state import LatentState
from explorer.gui.widgets.image_pane import chw_to_display
from explorer.gui.widgets.picture_view import PictureView
from explorer.gui.widgets.redraw import Coalescer
from explorer.runtime.threads import ModelCopy, lower_this_thread_priority

SEARCH_TASK = "neighbours"
CODES_TASK = "neighbours-codes"
THROTTLE_MS = 200  # at most one search per this long while the code moves
WEIGHTS_INTERVAL_S = 1.0  # while a run trains, new weights alone search again at most this often
CODES_REFRESH_S = 30.0  # while a run trains, the training codes are encoded again at most this often
DEFAULT_K = 8
PAD = 2  # pixels between images, as image_grid leaves
BAND = 0.4  # the band under each row for the distances, as a share of an image's height


@dataclass(frozen=True)
class Found:
    """One search's result: what it was for and what it found."""

    generation: int
    image: np.ndarray  # (C, H, W): the decoded image searched for
    pixel: Neighbours
    code: Neighbours | None  # None: no training codes yet (or none for this model)
    codes_age_s: float | None  # how old the training codes searched were, when stale; else None


def _search(images: torch.Tensor, image: np.ndarray, code: np.ndarray, k: int, codes: TrainingCodes | None,
            generation: int, stale_since: float | None) -> Found:
    """In the task runner's thread: the pixel-space and code-space neighbours."""
    lower_this_thread_priority()
    torch.set_num_threads(1)
    indices = codes.indices if codes is not None else training_indices(images.shape[0])
    searched = None if len(indices) == images.shape[0] else indices
    pixel = nearest_images(images, image, k, searched)
    by_code = None
    if codes is not None and codes.codes.shape[1] == code.shape[0]:
        by_code = nearest_codes(codes.codes, code, k, codes.indices)
    age = None if stale_since is None else time.monotonic() - stale_since
    return Found(generation, image, pixel, by_code, age)


def _encode(copy: ModelCopy, images: torch.Tensor, labels: torch.Tensor | None,
            typical_pixel: float | None) -> TrainingCodes:
    return encode_training(copy.build(), images, labels, typical_pixel=typical_pixel)


def picture(rows: list[np.ndarray], band: int) -> np.ndarray:
    """Rows of (n, C, H, W) images in [0, 1] to one (C, H', W') picture on white, PAD pixels
    between images and a ``band`` of white under each row for the distances."""
    c, h, w = rows[0].shape[1:]
    cols = max(len(r) for r in rows)
    out = np.ones((c, PAD + len(rows) * (h + band + PAD), PAD + cols * (w + PAD)), dtype=np.float32)
    for i, row in enumerate(rows):
        top = PAD + i * (h + band + PAD)
        for j, image in enumerate(row):
            left = PAD + j * (w + PAD)
            out[:, top:top + h, left:left + w] = np.clip(image, 0, 1)
    return out


class NeighboursView(PictureView):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__("neighboursGrid", "neighboursCaption", parent)
        self.state = state
        self.session = state.session
        self.found: Found | None = None
        self.grid: np.ndarray | None = None  # (C, H', W'): what is shown, and exported
        self.labels: list[tuple[float, float, str]] = []  # (x, y, text) of each distance on the grid
        self._texts: list[pg.TextItem] = []
        self.k = QSpinBox(objectName="neighboursK", minimum=1, maximum=32, value=DEFAULT_K, prefix="k = ")
        self.k.setToolTip("How many nearest training images to show in each space")
        self.add_bar(QLabel("Nearest training images:"), self.k)
        self.pane.set_rows(2)
        self.caption.setText("The nearest training images to the decoded image appear here once a model is open.")
        self.redraws = Coalescer(self.redraw, self.isVisible, interval_ms=THROTTLE_MS, parent=self)
        # The training codes: for which (generation, weights version), when encoded.
        self._codes: TrainingCodes | None = None
        self._codes_key: tuple[int, int] | None = None
        self._codes_since: float | None = None  # when the weights moved on from the codes' version
        self._weights = 0  # bumps with new weights of the same model (a training snapshot)
        self._again = False  # a search was asked for while one ran: search again when it ends
        self._code_moved = True  # the code, class or k changed since the last search
        self._last_search = -float("inf")
        self._later = QTimer(self, singleShot=True)
        self._later.timeout.connect(self.redraws.request)
        for signal in (state.code_changed, state.label_changed, state.stats_changed, self.k.valueChanged):
            signal.connect(self._on_code_moved)
        state.decoder_changed.connect(self._on_decoder)
        self.session.model_changed.connect(self._on_weights)
        self.session.data_changed.connect(self._on_data)

    # -- what asks for a search -------------------------------------------------------------

    def _on_code_moved(self, *_) -> None:
        self._code_moved = True
        self.redraws.request()

    def _on_decoder(self) -> None:
        if self._track_model(self.state.model):
            self._code_moved = True
        self.redraws.request()

    def _on_weights(self) -> None:
        self._weights += 1
        if self._codes_since is None and self._codes is not None:
            self._codes_since = time.monotonic()

    def _on_data(self) -> None:
        self._drop_codes()
        self._code_moved = True
        self.redraws.request()

    def clear_results(self) -> None:
        """Another model object: its neighbours are not this one's (training codes are kept
        by generation: a timeline replay's model has the live encoder)."""
        super().clear_results()
        self.found, self.grid = None, None
        self._clear_texts()

    def _drop_codes(self) -> None:
        self._codes, self._codes_key, self._codes_since = None, None, None

    # -- asking (GUI thread: constant work only) ---------------------------------------------

    def redraw(self) -> None:
        state, session = self.state, self.session
        model, data, code = state.model, session.data, state.code
        if model is None or data is None or code is None or state.stats is None:
            return
        if data.image_shape != model.config.image_shape or code.shape[0] != model.config.latent_dim:
            return
        running = session.is_running
        if not self._code_moved and running and time.monotonic() - self._last_search < WEIGHTS_INTERVAL_S:
            # Only new weights while training: search again once the interval is over.
            wait = WEIGHTS_INTERVAL_S - (time.monotonic() - self._last_search)
            if not self._later.isActive():
                self._later.start(max(1, int(wait * 1000)))
            return
        if session.tasks.runner.is_busy(SEARCH_TASK):
            self._again = True  # the newest request waits for the running search, not cancels it
            return
        self._encode_codes_if_due(model, data, running)
        image = state.decode(code[None])[0]  # one code: a millisecond, whatever the data's size
        generation, stale_since = state.generation, self._codes_since if self._codes is not None else None
        codes = self._codes if self._codes_key is not None and self._codes_key[0] == generation else None
        images, k, code = data.train_images, self.k.value(), code.copy()
        self._code_moved = False
        self._last_search = time.monotonic()
        session.tasks.submit(SEARCH_TASK, lambda _: _search(images, image, code, k, codes, generation, stale_since),
                             label="Finding the nearest training images", on_done=self._on_found,
                             on_failed=self._on_failed)

    def _encode_codes_if_due(self, model, data, running: bool) -> None:
        """Encode the training images under this model in the background: when there are no
        codes of this generation, or the weights moved on (while training, at most every
        CODES_REFRESH_S)."""
        if model.is_conditional and data.train_labels is None:
            return
        key = (self.state.generation, self._weights)
        if self._codes_key == key or self.session.tasks.runner.is_busy(CODES_TASK):
            return
        if self._codes_key is not None and self._codes_key[0] == key[0] and running \
                and self._codes_since is not None and time.monotonic() - self._codes_since < CODES_REFRESH_S:
            return
        copy, images, labels = ModelCopy.of(model), data.train_images, data.train_labels
        typical = self._codes.typical_pixel if self._codes is not None and self._codes_key is not None \
            and self._codes_key[0] == key[0] else None
        n = min(images.shape[0], MAX_TRAINING_IMAGES)
        self.session.tasks.submit(CODES_TASK, lambda _: _encode(copy, images, labels, typical),
                                  label=f"Encoding {plural(n, 'training image')} for the neighbours",
                                  on_done=lambda codes: self._on_codes(key, codes), on_failed=self._on_failed)

    # -- results (GUI thread) ----------------------------------------------------------------

    def _on_codes(self, key: tuple[int, int], codes: TrainingCodes) -> None:
        if key[0] != self.state.generation:  # other data came meanwhile: encode those
            self.redraws.request()
            return
        self._codes, self._codes_key = codes, key
        self._codes_since = None if key[1] == self._weights else time.monotonic()
        self._code_moved = True  # search again with the new codes
        self.redraws.request()

    def _on_failed(self, message: str) -> None:
        self.caption.setText(f"Could not find the nearest training images: {message}")
        self._search_done()

    def _on_found(self, found: Found) -> None:
        if found.generation == self.state.generation and self.state.model is not None:
            self._show(found)
        self._search_done()

    def _search_done(self) -> None:
        if self._again:
            self._again = False
            self._code_moved = True
            self.redraws.request()

    def _show(self, found: Found) -> None:
        self.found = found
        h = found.image.shape[1]
        band = max(8, int(round(h * BAND)))
        data = self.session.data
        train = data.train_images if data is not None else None
        if train is None:
            return
        rows, texts = [], []
        for neighbours in (found.pixel, found.code):
            images = [found.image]
            if neighbours is not None and len(neighbours.indices):
                picked = train[torch.from_numpy(neighbours.indices)].float().div_(255).numpy()
                images.extend(picked)
            rows.append(np.stack(images))
            texts.append(["decoded"] + ([] if neighbours is None else [f"{d:.2f}" for d in neighbours.distances]))
        self.grid = picture(rows, band)
        w = found.image.shape[2]
        self.labels = [(PAD + j * (w + PAD) + w / 2, PAD + r * (h + band + PAD) + h, text)
                       for r, row in enumerate(texts) for j, text in enumerate(row)]
        self.pane.set_array(chw_to_display(self.grid))
        self._draw_texts()
        self.caption.setText(self._caption(found))

    def _caption(self, found: Found) -> str:
        codes = self._codes
        n = len(codes.indices) if codes is not None else min(self._training_count(), MAX_TRAINING_IMAGES)
        parts = [f"Top: the decoded image, then its nearest of {plural(n, 'training image')} in pixel space; "
                 "bottom: in code space. Distances are Euclidean (pixels in 0-1; code units)."]
        if codes is not None:
            parts.append(f"A training image's nearest other is typically {codes.typical_pixel:.2f} away in pixels "
                         f"and {codes.typical_code:.2f} in codes: a neighbour much nearer than that says the "
                         "decoder recalls a training image; none nearer, that it invents.")
        if found.code is None:
            parts.append("Code space: encoding the training images...")
        elif found.codes_age_s is not None:
            parts.append(f"Training codes from weights {found.codes_age_s:.0f} s old.")
        return " ".join(parts)

    def _training_count(self) -> int:
        data = self.session.data
        return 0 if data is None else int(data.train_images.shape[0])

    def _draw_texts(self) -> None:
        # The items are kept and only their text and place change: making 10-20 TextItems
        # for each search took up to 20 ms of the GUI thread while a run trained.
        while len(self._texts) > len(self.labels):
            self.pane.box.removeItem(self._texts.pop())
        font = QFont()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        while len(self._texts) < len(self.labels):
            item = pg.TextItem("", color=(0, 0, 0), anchor=(0.5, 0.0))
            item.setFont(font)
            self.pane.box.addItem(item, ignoreBounds=True)
            self._texts.append(item)
        for item, (x, y, text) in zip(self._texts, self.labels, strict=True):
            if item.toPlainText() != text:
                item.setText(text)
            item.setPos(x, y)

    def _clear_texts(self) -> None:
        for item in self._texts:
            self.pane.box.removeItem(item)
        self._texts = []

    # -- export -----------------------------------------------------------------------------

    def export_png(self, path: str) -> None:
        """The picture, three times its size, with the distances written under the images."""
        if self.grid is None:
            raise ValueError("there are no neighbours to export yet")
        scale = 3
        image = Image.fromarray(to_uint8_hwc(torch.from_numpy(self.grid))).convert("RGB")
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(image)
        for x, y, text in self.labels:
            box = draw.textbbox((0, 0), text)
            draw.text((x * scale - (box[2] - box[0]) / 2, y * scale + 1), text, fill=(0, 0, 0))
        atomic_write(path, lambda fh: image.save(fh, format="PNG"))
