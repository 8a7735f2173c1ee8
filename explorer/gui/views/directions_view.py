"""Named directions: make them, move the code along them, and do a - b + c.

A direction comes from two classes ("4 to 9": from the 4s' mean code to the 9s'), from a
linear probe on one class, from the two test images picked last on the plane, or from the
test images selected with the plane's lasso against the rest ("selection (312)": from the
mean code of the rest to the selection's). The list
shows each one's name (editable), how it was made and, where labels define it, the balanced
accuracy it reaches on held-out test codes. Each selected direction gets a slider: 0 is where
the direction starts, 1 where it ends, and moving it changes the current code along that
direction alone. The analogy row takes the last three picked images a, b, c and makes
a - b + c the current code.

Class means, probes and the selection's means are computed on the test codes in the session's
task runner (they grow with the data); the GUI thread only does the constant work of a slider step or a pick.
Directions belong to the model: they live in the session, are saved with it, and adding,
renaming or removing one marks the document modified.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.analysis import directions as made
from explorer.analysis.directions import Direction
from explorer.display import one_line, plural
from explorer.errors import UserError
from explorer.gui.state.latent_state import LatentState
from explorer.runtime.threads import lower_this_thread_priority

FIT_TASK = "directions"
SOURCE = "direction"  # LatentState.set_code's source for a slider's move
ANALOGY_SOURCE = "analogy"
# A slider runs over t in [T_MIN, T_MAX] (0: the direction's start, 1: its end) in STEPS steps per unit.
T_MIN, T_MAX, STEPS = -1.0, 2.0, 1000
NAME, MADE, ACCURACY = range(3)
MEANS_TIP = "A direction from the first class's mean test code to the second's"
NAME_WIDTH_MAX = 160  # pixels for a slider's name; longer names are elided (the tooltip has them whole)
MIN_SELECTION = 3  # test images a selection needs before it makes a direction
SELECTION_TIP = ("A direction from the mean code of the test images not selected to the mean code of those "
                 "selected with the plane's lasso")
ACCURACY_TIP = ("Balanced accuracy on held-out test codes (30% of each class, not used to make the direction): "
                "how well the direction alone tells its two sides apart. Chance is 50%.")


@dataclass(frozen=True)
class Pick:
    """A test image picked on the plane: its number and its code, under the model of ``generation``."""

    index: int
    code: np.ndarray
    generation: int


def _fit(kind: str, codes: np.ndarray, labels: np.ndarray, classes: tuple[int, ...],
         names: tuple[str, ...]) -> Direction:
    """In the task runner's thread: a direction from the test codes' labels."""
    lower_this_thread_priority()
    torch.set_num_threads(1)
    try:
        if kind == "means":
            return made.from_class_means(codes, labels, classes[0], classes[1], class_names=names)
        return made.from_probe(codes, labels, classes[0], class_names=names)
    except ValueError as exc:  # what the codes cannot give (a class with no codes): one line, as said
        raise UserError(str(exc)) from None


def _from_selection(codes: np.ndarray, indices: np.ndarray, selection: np.ndarray) -> Direction:
    """In the task runner's thread: from the rest's mean code to the selected test images'."""
    lower_this_thread_priority()
    chosen = np.isin(indices, selection)
    try:
        return made.from_selection(codes, chosen, f"selection ({int(chosen.sum()):,})", indices=indices)
    except ValueError as exc:  # the selection is not among the codes shown, or is all of them
        raise UserError(str(exc)) from None


class DirectionSlider(QWidget):
    """One direction's slider, with its name and the code's position along it."""

    def __init__(self, index: int, direction: Direction, name_width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index, self.direction = index, direction
        self.name = QLabel(objectName="directionName")
        self.name.setFixedWidth(name_width)  # every slider of the list starts at the same place
        self.name.setText(self.name.fontMetrics().elidedText(direction.name, Qt.TextElideMode.ElideRight, name_width))
        self.name.setToolTip(direction.name)
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName=f"directionSlider{index}")
        self.slider.setRange(int(T_MIN * STEPS), int(T_MAX * STEPS))
        self.slider.setSingleStep(STEPS // 100)
        self.slider.setPageStep(STEPS // 10)
        self.slider.setToolTip(f"Moves the code along “{direction.name}” alone: 0 is where it starts, 1 where it "
                               "ends; the rest of the code stays as it is")
        self.value = QLabel(objectName="directionValue")
        self.value.setMinimumWidth(self.value.fontMetrics().horizontalAdvance("t = -0.00"))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.name)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value)

    def show_position(self, t: float) -> None:
        """Show where the code is, without moving it (no valueChanged)."""
        blocked = self.slider.blockSignals(True)
        self.slider.setValue(int(round(np.clip(t, T_MIN, T_MAX) * STEPS)))
        self.slider.blockSignals(blocked)
        self.value.setText(f"t = {t:.2f}")


class DirectionsView(QWidget):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.session = state.session
        self.picks: deque[Pick] = deque(maxlen=3)
        self.sliders: list[DirectionSlider] = []
        self._fitting = False

        self.from_class = QComboBox(objectName="directionFromClass")
        self.to_class = QComboBox(objectName="directionToClass")
        self.add_means = QPushButton("Add", objectName="addClassDirection")
        self.probe_class = QComboBox(objectName="directionProbeClass")
        self.add_probe = QPushButton("Add probe", objectName="addProbeDirection")
        self.add_probe.setToolTip("The normal of a logistic regression of this class against the rest of the "
                                  "test codes, fitted in the background and scored on held-out codes")
        self.add_picks = QPushButton("From the last two picks", objectName="addPickDirection")
        self.add_picks.setToolTip("A direction from the image picked second to last on the plane to the last one")
        self.add_selection = QPushButton("From the selection vs the rest", objectName="addSelectionDirection")
        self.analogy = QPushButton("Go to a − b + c", objectName="applyAnalogy")
        self.analogy.setToolTip("Pick three test images on the plane, a then b then c: the code becomes "
                                "a − b + c (c changed as b changed into a)")
        self.picks_line = QLabel(objectName="directionPicks", wordWrap=True)
        self.status = QLabel(objectName="directionsStatus", wordWrap=True)

        self.table = QTableWidget(0, 3, objectName="directionsTable")
        self.table.setHorizontalHeaderLabels(["Name", "Made from", "Held-out accuracy"])
        self.table.horizontalHeaderItem(ACCURACY).setToolTip(ACCURACY_TIP)
        self.table.horizontalHeaderItem(NAME).setToolTip("Double-click a name to rename the direction")
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column in (MADE, ACCURACY):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.remove = QPushButton("Remove", objectName="removeDirection")
        self.slider_box = QWidget(objectName="directionSliders")
        self.slider_layout = QVBoxLayout(self.slider_box)
        self.slider_layout.setContentsMargins(0, 0, 0, 0)
        self.slider_layout.addStretch(1)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setWidget(self.slider_box)
        scroll.setMinimumHeight(60)

        make = QGridLayout()
        make.addWidget(QLabel("From class"), 0, 0)
        make.addWidget(self.from_class, 0, 1)
        make.addWidget(QLabel("to"), 0, 2)
        make.addWidget(self.to_class, 0, 3)
        make.addWidget(self.add_means, 0, 4)
        make.addWidget(QLabel("Probe on"), 1, 0)
        make.addWidget(self.probe_class, 1, 1)
        make.addWidget(self.add_probe, 1, 3, 1, 2)
        make.addWidget(self.add_picks, 2, 0, 1, 5)
        make.addWidget(self.analogy, 3, 0, 1, 5)
        make.addWidget(self.add_selection, 4, 0, 1, 5)
        left = QVBoxLayout()
        left.addLayout(make)
        left.addWidget(self.picks_line)
        left.addWidget(self.status)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.table, 2)
        buttons = QHBoxLayout()
        hint = QLabel("Sliders: select rows")
        hint.setToolTip("Each selected direction gets a slider that moves the current code along it alone")
        buttons.addWidget(hint)
        buttons.addStretch(1)
        buttons.addWidget(self.remove)
        right.addLayout(buttons)
        right.addWidget(scroll, 1)
        outer = QHBoxLayout(self)
        outer.addLayout(left, 0)
        outer.addLayout(right, 1)

        self.add_means.clicked.connect(self.add_from_classes)
        self.add_probe.clicked.connect(self.add_from_probe)
        self.add_picks.clicked.connect(self.add_from_picks)
        self.analogy.clicked.connect(self.apply_analogy)
        self.add_selection.clicked.connect(self.add_from_selection)
        self.remove.clicked.connect(self.remove_selected)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._rebuild_sliders)
        state.stats_changed.connect(self._on_stats)
        state.code_changed.connect(self._on_code)
        state.picked_changed.connect(self._on_picked)
        state.selection_changed.connect(self._update_enabled)
        self.session.directions_changed.connect(self._on_directions)
        self._on_stats()
        self._on_directions()

    # -- making directions --------------------------------------------------------------

    def add_from_classes(self) -> None:
        a, b = self.from_class.currentData(), self.to_class.currentData()
        if a is None or b is None:
            return
        if a == b:
            self._say("Choose two different classes.")
            return
        self._fit("means", (int(a), int(b)), f"Averaging the codes of {self._class(a)} and {self._class(b)}...")

    def add_from_probe(self) -> None:
        c = self.probe_class.currentData()
        if c is not None:
            self._fit("probe", (int(c),), f"Fitting a linear probe on {self._class(c)}...")

    def _fit(self, kind: str, classes: tuple[int, ...], busy: str) -> None:
        stats = self.state.stats
        if stats is None or stats.labels is None:
            return
        codes, labels, names, generation = stats.codes, stats.labels, self.state.class_names, self.state.generation
        self._fitting = True
        self._say(busy)
        self._update_enabled()
        self.session.tasks.submit(FIT_TASK, lambda _: _fit(kind, codes, labels, classes, names),
                                  label="Making a direction", on_done=lambda d: self._on_fitted(generation, d),
                                  on_failed=self._on_fit_failed)

    def add_from_selection(self) -> None:
        stats, selection = self.state.stats, self.state.selection
        if stats is None or selection.size < MIN_SELECTION:
            return
        codes, indices, generation = stats.codes, stats.indices, self.state.generation
        self._fitting = True
        self._say(f"Averaging the codes of {plural(int(selection.size), 'selected test image')} and of the rest...")
        self._update_enabled()
        self.session.tasks.submit(FIT_TASK, lambda _: _from_selection(codes, indices, selection),
                                  label="Making a direction", on_done=lambda d: self._on_fitted(generation, d),
                                  on_failed=self._on_fit_failed)

    def _on_fitted(self, generation: int, direction: Direction) -> None:
        self._fitting = False
        if generation == self.state.generation:
            self._add(direction)
        else:
            self._say("The model changed while the direction was made; make it again.")
        self._update_enabled()

    def _on_fit_failed(self, message: str) -> None:
        self._fitting = False
        self._say(f"Could not make the direction: {one_line(message, limit=200)}")
        self._update_enabled()

    def add_from_picks(self) -> None:
        picks = self._current_picks()
        if len(picks) < 2:
            self._say("Pick two test images on the plane first.")
            return
        a, b = picks[-2], picks[-1]
        try:
            direction = made.from_codes(a.code, b.code, f"image {a.index} to {b.index}", (a.index, b.index))
        except ValueError as exc:
            self._say(str(exc).capitalize() + ".")
            return
        self._add(direction)

    def _add(self, direction: Direction) -> None:
        try:
            self.session.add_direction(direction)
        except UserError as exc:
            self._say(str(exc).capitalize() + ".")
            return
        accuracy = "" if direction.accuracy is None else f" (held-out accuracy {direction.accuracy:.1%})"
        self._say(f"Added “{direction.name}”{accuracy}.")
        self.table.selectRow(len(self.session.directions) - 1)  # its slider appears at once

    def remove_selected(self) -> None:
        rows = self._selected_rows()
        self.table.clearSelection()  # the rows below move up: no other direction inherits a selection
        for row in sorted(rows, reverse=True):
            self.session.remove_direction(row)

    def apply_analogy(self) -> None:
        picks = self._current_picks()
        if len(picks) < 3 or self.state.code is None:
            self._say("Pick three test images on the plane first: a, then b, then c.")
            return
        a, b, c = picks[-3:]
        self.state.set_code(made.analogy(a.code, b.code, c.code), ANALOGY_SOURCE)
        self._say(f"The code is image {a.index} − image {b.index} + image {c.index}.")

    # -- keeping up ---------------------------------------------------------------------

    def _on_stats(self) -> None:
        stats = self.state.stats
        # The classes the data or the model names (constant work: the labels are never scanned
        # here); one with no test codes is refused in one line when a direction is made.
        names = self.state.class_names if stats is not None and stats.labels is not None else ()
        items = [(name, c) for c, name in enumerate(names)]
        for box, default in ((self.from_class, 0), (self.to_class, 1), (self.probe_class, 0)):
            chosen = box.currentData()
            if [(box.itemText(i), box.itemData(i)) for i in range(box.count())] != items:
                box.blockSignals(True)
                box.clear()
                for text, value in items:
                    box.addItem(text, value)
                found = box.findData(chosen)
                box.setCurrentIndex(found if found >= 0 else min(default, box.count() - 1))
                box.blockSignals(False)
        self._update_enabled()
        self._on_code("stats")

    def _on_picked(self, index) -> None:
        code = self.state.code
        if index is not None and code is not None:
            self.picks.append(Pick(int(index), np.array(code, dtype=np.float64), self.state.generation))
        self._update_picks_line()
        self._update_enabled()

    def _current_picks(self) -> list[Pick]:
        return [p for p in self.picks if p.generation == self.state.generation]

    def _update_picks_line(self) -> None:
        picks = self._current_picks()
        if not picks:
            self.picks_line.setText("Click test images on the plane to pick them (for the last two picks and "
                                    "a − b + c).")
            return
        letters = "abc"  # the oldest of the last three is a; a fourth pick drops it
        self.picks_line.setText("Picked: " + ", ".join(f"{letter} = image {p.index}"
                                                       for letter, p in zip(letters, picks)))

    def _on_directions(self) -> None:
        selected = self._selected_rows()
        directions = self.session.directions
        self.table.blockSignals(True)
        self.table.setRowCount(len(directions))
        for row, d in enumerate(directions):
            accuracy = "—" if d.accuracy is None else f"{d.accuracy:.1%}"
            accuracy_tip = ACCURACY_TIP if d.accuracy is not None else "No label defines this direction"
            for column, text, tip in ((NAME, d.name, self._defined_by(d)), (MADE, d.made.label, self._defined_by(d)),
                                      (ACCURACY, accuracy, accuracy_tip)):
                self._cell(row, column).setText(text)
                self._cell(row, column).setToolTip(tip)
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in selected:
            if row < len(directions):
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)
        self.table.blockSignals(False)
        self._rebuild_sliders()
        self._update_picks_line()
        self._update_enabled()
        if not directions:
            self.status.setText("Make a direction from two classes, a probe on one class, two picked images or "
                                "a lasso selection on the plane."
                                if self.state.stats is not None else "Directions appear once a model is open.")

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        row = item.row()
        if item.column() != NAME or row >= len(self.session.directions):
            return
        self.session.rename_direction(row, item.text())
        kept = self.session.directions[row].name  # cleaned: one line; a blank name keeps the old one
        if item.text() != kept:
            blocked = self.table.blockSignals(True)
            item.setText(kept)
            self.table.blockSignals(blocked)

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        """The list's item at (row, column), made once: items are updated in place, never
        replaced, so an item being edited outlives the rename it causes."""
        item = self.table.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            if column != NAME:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if column == ACCURACY:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)
        return item

    def _rebuild_sliders(self) -> None:
        for slider in self.sliders:
            self.slider_layout.removeWidget(slider)
            slider.hide()  # at once: deleteLater leaves it drawn until the event loop turns
            slider.deleteLater()
        self.sliders = []
        directions = self.session.directions
        rows = [r for r in self._selected_rows() if r < len(directions) and directions[r].dim == self.state.dim]
        metrics = self.fontMetrics()
        width = min(NAME_WIDTH_MAX, max((metrics.horizontalAdvance(directions[r].name) for r in rows), default=0) + 4)
        for row in rows:
            slider = DirectionSlider(row, directions[row], width, self.slider_box)
            slider.slider.valueChanged.connect(lambda value, s=slider: self._on_slider(s, value))
            self.slider_layout.insertWidget(self.slider_layout.count() - 1, slider)
            self.sliders.append(slider)
        self._on_code("rebuild")

    def _on_slider(self, slider: DirectionSlider, value: int) -> None:
        code = self.state.code
        if code is None or code.shape[0] != slider.direction.dim:
            return
        self.state.set_code(slider.direction.moved(code, value / STEPS), SOURCE)

    def _on_code(self, _source: str) -> None:
        code = self.state.code
        for slider in self.sliders:
            if code is not None and code.shape[0] == slider.direction.dim:
                slider.show_position(slider.direction.position(code))
                slider.setEnabled(True)
            else:
                slider.setEnabled(False)

    def _update_enabled(self) -> None:
        labelled = self.state.stats is not None and self.state.stats.labels is not None \
            and self.from_class.count() > 1
        for widget in (self.add_means, self.add_probe):
            widget.setEnabled(labelled and not self._fitting)
        self.add_means.setToolTip(MEANS_TIP if labelled else "Needs labelled test codes of at least two classes")
        self._update_selection_button()
        picks = len(self._current_picks())
        self.add_picks.setEnabled(picks >= 2)
        self.analogy.setEnabled(picks >= 3)
        self.remove.setEnabled(bool(self._selected_rows()))

    def _update_selection_button(self) -> None:
        stats, selected = self.state.stats, int(self.state.selection.size)
        if stats is None:
            why = "Needs a model's test codes"
        elif selected < MIN_SELECTION:
            why = (f"Select at least {MIN_SELECTION} test images on the plane first: turn on Lasso (or hold Shift) "
                   "and draw around them")
        elif selected >= len(stats.indices):
            why = "Every test image is selected: leave some out, the direction goes from them to the selection"
        else:
            why = ""
        self.add_selection.setEnabled(not why and not self._fitting)
        self.add_selection.setToolTip(why or f"{SELECTION_TIP} ({plural(selected, 'test image')} selected)")

    # -- helpers --------------------------------------------------------------------------

    def _selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectionModel().selectedRows()})

    def _class(self, index: int) -> str:
        names = self.state.class_names
        return names[index] if 0 <= index < len(names) else str(index)

    def _defined_by(self, d: Direction) -> str:
        if d.made in (made.Made.CLASS_MEANS, made.Made.PROBE):
            return "Classes: " + ", ".join(self._class(c) for c in d.defined_by)
        if d.defined_by:
            shown = ", ".join(str(i) for i in d.defined_by[:8])
            more = f" and {plural(len(d.defined_by) - 8, 'more')}" if len(d.defined_by) > 8 else ""
            return f"Test images {shown}{more}"
        return d.made.label

    def _say(self, text: str) -> None:
        self.status.setText(text)

    # -- export -----------------------------------------------------------------------------

    def export_directions(self, path: str) -> None:
        """The directions in the order listed: CSV (names, how made, accuracy, one column per
        dimension) or NPY (the (k, latent) matrix, names in NAME.names.txt beside it)."""
        made.export_directions(path, self.session.directions)
