"""Evaluation: the numbers papers report for the open model, and for saved checkpoints
beside it, in one table.

"Evaluate this model" measures the current weights in the background (the task runner),
with a progress bar and Cancel. "Add checkpoints..." puts saved models in rows below it:
a file that already holds numbers for what is asked shows them at once; the others are
evaluated one after another. Numbers land in the checkpoint: an added file is rewritten
atomically with them, the open model keeps them with its document (written at once when
its file is saved and unchanged, else at the next Save). Columns are the metrics of
:mod:`explorer.evaluation.metrics`; each header's tooltip says what it measures and gives
its reference figure. The "Measured on" column says what each row's numbers were measured
on (dataset, split, number of test images, binarisation; "?" where an older record does
not say), and the best value of each column is bold only among rows measured on the same
test set: rows measured on different ones are not ranked against each other, and a line
above the table says so. The table exports as CSV and Markdown, with the same columns.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.atomic import atomic_write
from explorer.display import one_line
from explorer.errors import UserError
from explorer.evaluation import COLUMNS, Evaluation, EvaluationRequest, Group, MetricSpec, Subject, evaluate_model
from explorer.evaluation.metrics import best_rows_within, format_value
from explorer.gui.state.session import TrainingSession
from explorer.runtime.threads import ModelCopy, SharedProgress

POLL_MS = 100
BEST = QColor(70, 150, 90, 90)
CURRENT_KEY = "evaluate"
MEASURED_ON = "Measured on"
NOT_RANKED = "Rows measured on different test sets are not ranked against each other"
GROUPING = ("the best value of each column is bold only among rows measured on the same test set "
            "(dataset, split, number of images, binarisation)")
UNKNOWN_DATA = ("rows marked \"?\" hold numbers from an older version that did not record which test set "
                "they were measured on, and are not ranked (evaluate them again to record it)")


@dataclass
class Row:
    """One model in the table: the open one (``path`` None) or a saved checkpoint."""

    label: str
    path: Path | None = None
    record: Evaluation | None = None
    state: str = ""  # "waiting", "evaluating…", a failure, or "" when the numbers are in
    stored_in_file: bool = False


def _threads(training: bool) -> int:
    """Torch threads for an evaluation: every core when idle, one beside a training run."""
    return 1 if training else max(1, os.cpu_count() or 1)


def _evaluate_file(path: Path, request: EvaluationRequest, progress: SharedProgress,
                   threads: int, writable: bool = True) -> tuple[Evaluation, bool]:
    """In the background: the checkpoint's stored numbers when they answer ``request``, else
    a fresh evaluation kept in the file (``True`` when it could be written there).
    ``writable`` False (the run being followed): the numbers are shown, the file untouched."""
    import torch

    from explorer.evaluation.files import evaluation_data_config, load_evaluation_data, records_of, store_evaluation
    from explorer.evaluation.record import with_record
    from explorer.evaluation.suite import covers
    from explorer.training.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    checkpoint = load_checkpoint(path)
    config = evaluation_data_config(checkpoint.data_config, checkpoint.model_config)
    subject = Subject(config.dataset, config.binarize, checkpoint.history.last_step, checkpoint.train_config.seed)
    records = records_of(checkpoint)
    for record in reversed(records):  # the newest first
        # An older record that does not say which test set it measured is measured again:
        # a comparison must say what each number was measured on.
        if (record.dataset, record.binarize, record.step) == (subject.dataset, subject.binarize, subject.step) \
                and record.data_known and covers(record, request):
            return record, True
    model = checkpoint.build_model()
    data = load_evaluation_data(config, checkpoint.model_config)
    fresh = evaluate_model(model, data, request, subject, progress=progress.report)
    merged = with_record(records, fresh)[-1]
    if not writable:
        return merged, False
    try:
        store_evaluation(path, fresh)
    except UserError:
        return merged, False
    return merged, True


class EvaluationView(QWidget):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.rows: list[Row] = []
        self._queue: list[Row] = []
        self._running: Row | None = None
        self._current_model: object = None  # the model an evaluation of the open one is measuring
        self._shown_model: object = None  # the open model the status line may speak of
        self._status_of_open_model = False  # whether the status line speaks of the open model
        self._progress = SharedProgress()

        self.evaluate_button = QPushButton("Evaluate this model", objectName="evaluateModel")
        self.evaluate_button.setToolTip("Measure the open model's current weights on its test split, in the "
                                        "background; the numbers are kept with the model")
        self.add_button = QPushButton("Add checkpoints...", objectName="addCheckpoints")
        self.add_button.setToolTip("Compare saved models: each is evaluated (unless its file already holds the "
                                   "numbers) and the numbers are written into it")
        self.remove_button = QPushButton("Remove", objectName="removeCheckpoint")
        self.remove_button.setToolTip("Take the selected checkpoints out of the table (their files stay)")
        self.cancel_button = QPushButton("Cancel", objectName="cancelEvaluation")
        self.cancel_button.setEnabled(False)
        self.likelihood = QCheckBox("Log-likelihood, K =", objectName="evalLikelihood", checked=True)
        self.likelihood.setToolTip("Importance-weighted log p(x) with K posterior samples per test image "
                                   "(VAE family); K = 5000 is the published protocol and takes about 5x K = 1000")
        self.iw_k = QSpinBox(objectName="evalK", minimum=1, maximum=5000, value=1000, singleStep=100)
        self.samples = QCheckBox("Sample quality", objectName="evalSamples", checked=True)
        self.samples.setToolTip("FID with a LeNet between 10,000 samples and the test images; class accuracy "
                                "of a conditional model's samples")
        self.latent = QCheckBox("Latent space", objectName="evalLatent", checked=True)
        self.latent.setToolTip("Active units, KL per dimension, k-NN and linear-probe accuracy of the codes")
        self.recon = QCheckBox("Reconstructions", objectName="evalRecon", checked=True)
        self.recon.setToolTip("Reconstruction error and PSNR of the test images")
        self.progress = QProgressBar(objectName="evaluationProgress", minimum=0, maximum=1000)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.status = QLabel("", objectName="evaluationStatus")
        self.status.setWordWrap(True)
        # Shown when the rows were measured on different test sets (or an unknown one).
        self.notice = QLabel("", objectName="evaluationNotice")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        self.table = QTableWidget(0, 0, objectName="evaluationTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

        # Two columns of controls: the dock shares the bottom of the window with the loss curves,
        # so it is often narrow; the whole view scrolls when it is narrower still.
        likelihood = QHBoxLayout()
        likelihood.addWidget(self.likelihood)
        likelihood.addWidget(self.iw_k)
        likelihood.addStretch(1)
        what = QGridLayout()
        what.addLayout(likelihood, 0, 0)
        what.addWidget(self.samples, 0, 1)
        what.addWidget(self.latent, 1, 0)
        what.addWidget(self.recon, 1, 1)
        buttons = QGridLayout()
        buttons.addWidget(self.evaluate_button, 0, 0)
        buttons.addWidget(self.add_button, 0, 1)
        buttons.addWidget(self.remove_button, 1, 0)
        buttons.addWidget(self.cancel_button, 1, 1)
        content = QWidget(objectName="evaluationContent")
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(what)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.notice)
        layout.addWidget(self.table, 1)
        # A narrow dock scrolls instead of widening the window past its default size.
        scroll = QScrollArea(objectName="evaluationScroll")
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self._lent_core = False  # a core of the training run's, lent to this evaluation
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._show_progress)
        self.evaluate_button.clicked.connect(self.evaluate_current)
        self.add_button.clicked.connect(self._ask_for_checkpoints)
        self.remove_button.clicked.connect(self.remove_selected)
        self.cancel_button.clicked.connect(self.cancel)
        session.model_changed.connect(self._on_model_changed)
        session.evaluations_changed.connect(self.refresh)
        session.document.changed.connect(self.refresh)
        session.epoch.connect(lambda _event: self.refresh())
        self.refresh()

    # -- what to compute -------------------------------------------------------------------

    def request(self) -> EvaluationRequest:
        groups = {Group.LOSS}
        for box, group in ((self.likelihood, Group.LIKELIHOOD), (self.samples, Group.SAMPLES),
                           (self.latent, Group.LATENT), (self.recon, Group.RECON)):
            if box.isChecked():
                groups.add(group)
        # Skip what does not apply (a plain AE's likelihood) with a note, as --all does.
        return EvaluationRequest(groups=frozenset(groups), iw_k=self.iw_k.value(), strict=False)

    # -- the open model ----------------------------------------------------------------------

    def evaluate_current(self) -> None:
        session = self.session
        model, data = session.view_model, session.data
        if model is None or data is None or session.data_config is None:
            self.status.setText("Train a model or open a checkpoint first (and wait for its data to load).")
            self._status_of_open_model = True
            return
        config = session.data_config
        subject = Subject(config.dataset, config.binarize, session.history.last_step,
                          (session.train_config.seed if session.train_config else 0))
        # A saved, unchanged model gets the numbers in its file at once; otherwise they wait for Save.
        store_path = session.writable_path if not session.dirty else None
        copy, request, progress = ModelCopy.of(model), self.request(), self._progress
        threads = _threads(session.is_running)

        def work(_handle) -> tuple[Evaluation, bool]:
            import torch

            from explorer.evaluation.files import store_evaluation

            built = copy.build()
            torch.set_num_threads(threads)
            record = evaluate_model(built, data, request, subject, progress=progress.report)
            if store_path is None:
                return record, False
            try:
                store_evaluation(store_path, record)
            except UserError:
                return record, False
            return record, True

        self._begin("this model")
        self._current_model = model
        session.tasks.submit(CURRENT_KEY, work, label="Evaluating the model",
                             on_done=lambda result: self._current_done(model, *result),
                             on_failed=self._failed)
        self.refresh()  # its row says it is being evaluated

    def _current_done(self, model: object, record: Evaluation, stored: bool) -> None:
        self._current_model = None
        self._end()
        if model is not self.session.view_model:
            return
        self.session.add_evaluation(record, stored=stored)
        where = " and kept in its file" if stored else "; Save keeps them with the model"
        self._say(f"Evaluated this model in {record.seconds:.0f} s{where}.", record, of_open_model=True)
        self._next()

    # -- saved checkpoints -------------------------------------------------------------------

    def _ask_for_checkpoints(self) -> None:
        dialog = QFileDialog(self, "Add checkpoints to compare")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setNameFilter("Latent Explorer checkpoints (*.safetensors)")
        dialog.filesSelected.connect(self.add_checkpoints)
        dialog.open()  # not modal: training and the other views go on

    def add_checkpoints(self, paths: list[str]) -> None:
        known = {row.path for row in self.rows if row.path is not None}
        for text in paths:
            path = Path(text).expanduser().absolute()
            if path in known:
                continue
            known.add(path)
            row = Row(label=path.name, path=path, state="waiting")
            self.rows.append(row)
            self._queue.append(row)
        self.refresh()
        self._next()

    def remove_selected(self) -> None:
        chosen = {index.row() for index in self.table.selectionModel().selectedRows()}
        shown = self._shown_rows()
        for i in sorted(chosen, reverse=True):
            row = shown[i]
            if row.path is None or row is self._running:
                continue
            self.rows.remove(row)
            if row in self._queue:
                self._queue.remove(row)
        self.refresh()

    def _next(self) -> None:
        if self._running is not None or not self._queue:
            return
        row = self._queue.pop(0)
        row.state = "evaluating…"
        request, progress = self.request(), self._progress
        threads = _threads(self.session.is_running)
        path = row.path
        assert path is not None
        writable = not self.session.is_followed(path)
        self._begin(row.label)
        self._running = row
        self.session.tasks.submit(f"evaluate:{path}",
                                  lambda _h: _evaluate_file(path, request, progress, threads, writable),
                                  label=f"Evaluating {one_line(row.label, 60)}", model_bound=False,
                                  on_done=lambda result: self._file_done(row, *result),
                                  on_failed=lambda message: self._file_failed(row, message))
        self.refresh()

    def _file_done(self, row: Row, record: Evaluation, stored: bool) -> None:
        self._running = None
        self._end()
        row.record, row.state, row.stored_in_file = record, "", stored
        kept = "kept in the file" if stored else "not kept: the file could not be rewritten"
        self._say(f"{row.label}: evaluated ({kept}).", record)
        self.refresh()
        self._next()

    def _file_failed(self, row: Row, message: str) -> None:
        self._running = None
        self._end()
        row.state = f"failed: {one_line(message, 200)}"
        self.status.setText(f"{row.label} could not be evaluated: {one_line(message, 300)}")
        self.refresh()
        self._next()

    # -- progress and cancelling -------------------------------------------------------------

    def _begin(self, what: str) -> None:
        if self.session.is_running and not self._lent_core:
            # Beside a training run the evaluation takes one core and the run the rest, rather
            # than both fighting over every core; the run gets it back when this ends.
            self.session.lend_cores(1)
            self._lent_core = True
        self._progress.report(0.0, "Starting")
        self.progress.setValue(0)
        self.progress.setFormat(f"{what}: starting")
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self._timer.start()

    def _end(self) -> None:
        if self._running is None and self._current_model is None:
            if self._lent_core:
                self.session.lend_cores(0)
                self._lent_core = False
            self._timer.stop()
            self.progress.setVisible(False)
            self.cancel_button.setEnabled(False)

    def _show_progress(self) -> None:
        fraction, label = self._progress.read()
        self.progress.setValue(int(1000 * fraction))
        self.progress.setFormat(f"{one_line(label, 60)}: %p%")

    def cancel(self) -> None:
        """Stop the evaluation in progress and everything waiting (cooperatively, at the next batch)."""
        self.session.tasks.cancel(CURRENT_KEY)
        if self._running is not None and self._running.path is not None:
            self.session.tasks.cancel(f"evaluate:{self._running.path}")
            self._running.state = "cancelled"
        for row in self._queue:
            row.state = "cancelled"
        self._queue.clear()
        self._running = self._current_model = None
        self._end()
        self._timer.stop()
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelled.")
        self.refresh()

    def _failed(self, message: str) -> None:
        self._current_model = None
        self._end()
        self.status.setText(f"Could not evaluate this model: {one_line(message, 300)}")
        self._status_of_open_model = True
        self.refresh()
        self._next()

    def _say(self, text: str, record: Evaluation, of_open_model: bool = False) -> None:
        notes = " ".join(one_line(n, 300) for n in record.notes[:3])
        self.status.setText(text + (f" Notes: {notes}" if notes else ""))
        self._status_of_open_model = of_open_model

    # -- the table ---------------------------------------------------------------------------

    def _on_model_changed(self) -> None:
        model = self.session.view_model
        if self._current_model is not None and self._current_model is not model:
            self._current_model = None  # the runner drops that result: another model is shown
            self._end()
        if model is not self._shown_model:
            # Another model (opened, followed, a new run): what the status line said of the
            # previous one (its numbers, its notes) is not about this one.
            self._shown_model = model
            if self._status_of_open_model:
                self.status.setText("")
                self._status_of_open_model = False
        self.refresh()

    def _current_row(self) -> Row | None:
        if self.session.view_model is None:
            return None
        record = self.session.current_evaluation()
        state = "" if record is not None else "not evaluated yet"
        if self.session.is_running:
            state = "training" if record is None else ""
        if self._current_model is not None and self._current_model is self.session.view_model:
            state = "evaluating…"
        return Row(label=f"{self.session.document.name} (open)", record=record, state=state)

    def _shown_rows(self) -> list[Row]:
        current = self._current_row()
        return ([current] if current is not None else []) + self.rows

    def visible_columns(self) -> list[MetricSpec]:
        """The metrics some row has a value for (a table of empty columns helps nobody)."""
        rows = self._shown_rows()
        return [spec for spec in COLUMNS if any(r.record and spec.key in r.record.metrics for r in rows)]

    def refresh(self) -> None:
        rows = self._shown_rows()
        columns = self.visible_columns()
        records = [row.record for row in rows]
        groups = [r.data_key() if r is not None else None for r in records]
        labels = measured_on_labels(records)
        self.table.setRowCount(len(rows))
        self.table.setColumnCount(2 + len(columns))
        model_header = QTableWidgetItem("Model")
        model_header.setToolTip("The open model, then the checkpoints added for comparison")
        self.table.setHorizontalHeaderItem(0, model_header)
        data_header = QTableWidgetItem(MEASURED_ON)
        data_header.setToolTip("What the row's numbers were measured on: the dataset and split, the number of test "
                               "images and their binarisation (\"?\": not recorded by an older version).\n"
                               + _sentence(GROUPING) + ".")
        self.table.setHorizontalHeaderItem(1, data_header)
        for c, spec in enumerate(columns, start=2):
            header = QTableWidgetItem(spec.title + (f" ({spec.unit})" if spec.unit else ""))
            tip = spec.what + (f"\nReference: {spec.reference}" if spec.reference else "")
            better = {"lower": "\nLower is better.", "higher": "\nHigher is better."}.get(spec.better.value, "")
            header.setToolTip(tip + better)
            self.table.setHorizontalHeaderItem(c, header)
        for r, row in enumerate(rows):
            name = QTableWidgetItem(row.label + (f" — {row.state}" if row.state else ""))
            name.setToolTip(str(row.path) if row.path else "the model in the window")
            self.table.setItem(r, 0, name)
            data = QTableWidgetItem(one_line(labels[r], 120))
            if row.record is not None:
                data.setToolTip(_measured_on_tip(row.record))
            self.table.setItem(r, 1, data)
        for c, spec in enumerate(columns, start=2):
            values = [row.record.metrics.get(spec.key) if row.record else None for row in rows]
            best = best_rows_within(values, groups, spec)
            for r, (row, value) in enumerate(zip(rows, values)):
                error = row.record.metrics.get(spec.error_key) if row.record and spec.error_key else None
                item = QTableWidgetItem(format_value(spec, value, error))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                tips = []
                if r in best:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                    item.setBackground(QBrush(BEST))
                    tips.append(f"best in this column among rows measured on {labels[r]}")
                if row.record is not None and row.record.notes:
                    tips += row.record.notes
                if tips:
                    item.setToolTip("\n".join(tips))
                self.table.setItem(r, c, item)
        text = comparison_notice(records)
        self.notice.setText(text)
        self.notice.setToolTip(text)
        self.notice.setVisible(bool(text))

    # -- export -----------------------------------------------------------------------------

    def export_table(self, path: str) -> None:
        """The table as CSV (``.csv``, full precision, metric keys as the header) or Markdown
        (``.md``, as shown, best values in bold, a legend of every column below)."""
        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".md", ".markdown"):
            raise ValueError("end the file name in .csv or .md")
        rows = [r for r in self._shown_rows() if r.record is not None]
        if not rows:
            raise ValueError("evaluate a model first: the table has no numbers yet")
        columns = self.visible_columns()
        text = _csv(rows, columns) if suffix == ".csv" else _markdown(rows, columns)

        def write(fh) -> None:
            fh.write(text.encode("utf-8"))

        atomic_write(path, write)


def measured_on_labels(records: list[Evaluation | None]) -> list[str]:
    """Each record's "Measured on" text ("" without a record); two different test sets that
    read the same (the same size of other images) are told apart by their fingerprints."""
    texts = [r.measured_on() if r is not None else "" for r in records]
    keys_of: dict[str, set[object]] = {}
    for record, text in zip(records, texts):
        if record is not None:
            keys_of.setdefault(text, set()).add(record.data_key())
    return [f"{text} (set {record.fingerprint[:8] or '?'})" if record is not None and len(keys_of[text]) > 1
            else text for record, text in zip(records, texts)]


def comparison_notice(records: list[Evaluation | None]) -> str:
    """One line for a table whose rows were not all measured on the same test set ("" when
    they were, or when there is at most one row with numbers)."""
    present = [r for r in records if r is not None]
    keys = {r.data_key() for r in present}
    if len(present) < 2 or (len(keys) == 1 and None not in keys):
        return ""
    text = f"{NOT_RANKED}: {GROUPING}"
    if None in keys:
        text += f"; {UNKNOWN_DATA}"
    return text + "."


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _measured_on_tip(record: Evaluation) -> str:
    if not record.data_known:
        return (f"{record.dataset}: which test images these numbers were measured on was not recorded (an older "
                "version); they are ranked against no other row")
    return (f"{record.dataset}, {record.split} split: {record.n_images:,} images, binarised: {record.binarize}"
            f"\nTest-set fingerprint: {record.fingerprint or '?'} (rows with the same one are ranked together)")


def _csv(rows: list[Row], columns: list[MetricSpec]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model", "path", "dataset", "split", "n_images", "binarize", "test_set", "measured_on", "step",
                     "iw_k", *(s.key for s in columns)])
    labels = measured_on_labels([row.record for row in rows])
    for row, label in zip(rows, labels):
        record = row.record
        assert record is not None
        # Unknown (an older record): empty machine-readable fields, "?" in the readable one.
        writer.writerow([row.label, str(row.path or ""), record.dataset, record.split,
                         record.n_images if record.n_images > 0 else "", record.binarize, record.fingerprint,
                         label, record.step, record.iw_k,
                         *(repr(record.metrics[s.key]) if s.key in record.metrics else "" for s in columns)])
    return out.getvalue()


def _markdown(rows: list[Row], columns: list[MetricSpec]) -> str:
    def cell(text: str) -> str:
        return one_line(text, 200).replace("|", "\\|")

    records = [row.record for row in rows]
    groups = [r.data_key() if r is not None else None for r in records]
    labels = measured_on_labels(records)
    lines = [f"| Model | {MEASURED_ON} | "
             + " | ".join(cell(s.title + (f" ({s.unit})" if s.unit else "")) for s in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    table = [[row.record.metrics.get(s.key) if row.record else None for s in columns] for row in rows]
    best = [best_rows_within([values[c] for values in table], groups, spec) for c, spec in enumerate(columns)]
    for r, row in enumerate(rows):
        record = row.record
        assert record is not None
        cells = []
        for c, spec in enumerate(columns):
            error = record.metrics.get(spec.error_key) if spec.error_key else None
            text = format_value(spec, table[r][c], error)
            cells.append(f"**{cell(text)}**" if r in best[c] and text else cell(text))
        lines.append(f"| {cell(row.label)} | {cell(labels[r])} | " + " | ".join(cells) + " |")
    notice = comparison_notice(records)
    lines += ["", f"{_sentence(GROUPING)}." + (f" {notice}" if notice else "")]
    lines.append(f"- **{MEASURED_ON}**: the dataset and split the numbers were measured on, the number of test "
                 "images and their binarisation (\"?\": not recorded by an older version).")
    for spec in columns:
        reference = f" Reference: {spec.reference}" if spec.reference else ""
        lines.append(f"- **{spec.title}**: {spec.what}{reference}")
    return "\n".join(lines) + "\n"
