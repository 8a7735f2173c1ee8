"""The skeleton of a view that shows one decoded picture: rows of controls on top, an
ImagePane, a wrapped caption under it, redraws coalesced, and the results of a model that
is no longer shown dropped.

Redraws are coalesced (many control changes in a frame cost one redraw) and only run
while the view is visible, so a view in a tab behind another costs nothing until it is
raised; showing it runs the redraw it missed.

Results are tied to the model *object*: a training model gets new weights in place, and
its results simply redraw; another object (a file opened, a run built for other data) makes
them another model's, and they are dropped at once, even before the new model can draw
(its images may not fit the data), so they are never shown as this one's. The base knows
no state object: each view says from its own signal which model it shows, by calling
``_track_model``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.gui.widgets.image_pane import ImagePane
from explorer.gui.widgets.redraw import Coalescer


class PictureView(QWidget):
    """Subclasses add their controls with ``add_bar``, define ``redraw`` and, for results
    of their own, extend ``clear_results``. ``column`` is the view's layout, for widgets
    below the caption."""

    def __init__(self, pane_name: str, caption_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pane = ImagePane(pane_name)
        self.caption = QLabel("", objectName=caption_name)
        self.caption.setWordWrap(True)
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(4, 4, 4, 4)
        self.column.addWidget(self.pane, 1)
        self.column.addWidget(self.caption)
        self.redraws = Coalescer(self.redraw, self.isVisible, parent=self)
        self._model: object = None  # the model object the results shown belong to

    def add_bar(self, *widgets: QWidget, stretch: bool = True) -> QHBoxLayout:
        """A row of ``widgets`` above the picture, below the rows added before it, packed
        to the left unless ``stretch`` is off. Tab visits them before the picture, as in
        a view laid out by hand in reading order (Qt tabs in the order widgets got their
        parent, and the pane got it first)."""
        bar = QHBoxLayout()
        for widget in widgets:
            bar.addWidget(widget)
        if stretch:
            bar.addStretch(1)
        self.column.insertLayout(self.column.indexOf(self.pane), bar)
        focusable = [w for w in widgets if w.focusPolicy() != Qt.FocusPolicy.NoFocus]
        if focusable:
            QWidget.setTabOrder(focusable[-1], self.pane.view)
        return bar

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.redraws.flush()

    def redraw(self) -> None:
        raise NotImplementedError

    def _track_model(self, model: object) -> bool:
        """Note the model now shown; if it is another object than the results are from,
        drop them (``clear_results``). True when it was another."""
        if model is self._model:
            return False
        self._model = model
        self.clear_results()
        return True

    def clear_results(self) -> None:
        """Forget what was drawn from the previous model; subclasses drop their own results too."""
        self.pane.clear()
        self.caption.setText("")
