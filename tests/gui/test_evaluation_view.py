"""The Evaluation view, driven as a person would: evaluate the open model with the real
button, compare saved checkpoints, read the table's numbers, bold and tooltips, export it,
cancel a long evaluation, and keep the numbers with an unsaved model until Save. Rows
measured on different test sets say so, and are not ranked against each other."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from explorer.cli import main as cli_main
from explorer.data import load_dataset
from explorer.evaluation import Evaluation
from explorer.evaluation.files import store_evaluation
from explorer.evaluation.suite import fingerprint_of_test_set
from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.evaluation_view import NOT_RANKED, EvaluationView, Row
from explorer.training.checkpoint import load_checkpoint

EVAL_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 90_000
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """Small checkpoints made once with the CLI in-process: two VAEs (1 and 2 epochs, other
    seeds) and a plain autoencoder, each on 300 images per split, and a VAE on 200 (so its
    own test split, which it is evaluated on, is another, smaller one)."""
    import torch

    folder = tmp_path_factory.mktemp("evaluation-checkpoints")
    paths: dict[str, Path] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, model, epochs, seed, limit in (("vae1", "vae", 1, 0, 300), ("vae2", "vae", 2, 3, 300),
                                                 ("ae", "ae", 1, 0, 300), ("vae200", "vae", 1, 0, 200)):
            path = folder / f"{name}.safetensors"
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli_main(["train", "--model", model, "--epochs", str(epochs), "--limit", str(limit),
                               "--batch-size", "64", "--seed", str(seed), "--out", str(path)])
            assert rc == 0, err.getvalue()
            paths[name] = path
    finally:
        torch.set_num_threads(threads)
    return paths


@pytest.fixture
def files(made, tmp_path) -> dict[str, Path]:
    """This test's own copies (evaluating writes the numbers into the files)."""
    copies = {}
    for name, path in made.items():
        copies[name] = tmp_path / path.name
        shutil.copy(path, copies[name])
    return copies


def view_of(window: MainWindow) -> EvaluationView:
    window.evaluation_dock.show()
    window.evaluation_dock.raise_()
    return window.evaluation_view


def only(view: EvaluationView, likelihood: bool = False, latent: bool = False, k: int = 5) -> None:
    """Ask for the test loss, plus the groups named (no sample quality: it trains a classifier)."""
    view.likelihood.setChecked(likelihood)
    view.iw_k.setValue(k)
    view.samples.setChecked(False)
    view.latent.setChecked(latent)
    view.recon.setChecked(False)


def open_model(qtbot, window: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(window.session.opened, timeout=RUN_TIMEOUT_MS):
        assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.session.data is not None, timeout=RUN_TIMEOUT_MS)


def headers(view: EvaluationView) -> list[str]:
    return [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]


def column(view: EvaluationView, title: str) -> int:
    names = headers(view)
    assert title in names, names
    return names.index(title)


def cell(view: EvaluationView, row: int, col: int) -> str:
    item = view.table.item(row, col)
    return item.text() if item is not None else ""


def wait_idle(qtbot, view: EvaluationView) -> None:
    qtbot.waitUntil(lambda: not view.progress.isVisible(), timeout=EVAL_TIMEOUT_MS)


def find_action(window: MainWindow, text: str) -> QAction:
    actions = [a for a in window.findChildren(QAction) if a.text() == text]
    assert actions, f"no menu action {text!r}"
    return actions[0]


def test_evaluate_the_open_model_keeps_the_numbers_in_its_file(qtbot, window, files):
    path = files["vae1"]
    open_model(qtbot, window, path)
    view = view_of(window)
    assert window.session.current_evaluation() is None
    only(view, likelihood=True, k=5)
    qtbot.mouseClick(view.findChild(type(view.evaluate_button), "evaluateModel"), LEFT)
    assert view.progress.isVisible(), "the progress bar shows while the evaluation runs"
    assert view.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: window.session.current_evaluation() is not None, timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    assert not view.cancel_button.isEnabled()

    record = window.session.current_evaluation()
    assert cell(view, 0, 0).endswith("(open)"), cell(view, 0, 0)
    loss_col = column(view, "Test loss (nats)")
    assert float(cell(view, 0, loss_col)) == pytest.approx(round(record.metrics["test_loss"], 2), abs=0.006)
    assert cell(view, 0, column(view, "IW NLL (nats)")), "the likelihood asked for has a number"
    assert cell(view, 0, column(view, "Measured on")) == "mnist test, 300 images, binarised: none"
    # the window's data and the file's are the same test set, so the open row ranks beside the file's
    assert record.fingerprint == fingerprint_of_test_set(load_dataset(load_checkpoint(path).data_config))
    assert "kept in its file" in view.status.text(), view.status.text()
    assert not window.isWindowModified(), "numbers already in the file leave nothing to save"
    stored = load_checkpoint(path).evaluations
    assert stored and stored[-1]["metrics"]["test_loss"] == pytest.approx(record.metrics["test_loss"])

    open_model(qtbot, window, files["vae2"])
    assert window.session.current_evaluation() is None, "the other model has no numbers yet"
    with qtbot.waitSignal(window.session.opened, timeout=RUN_TIMEOUT_MS):
        assert window.files.open_checkpoint(str(path))
    again = window.session.current_evaluation()
    assert again is not None, "reopening reads the numbers back from the file"
    assert again.metrics["test_loss"] == pytest.approx(record.metrics["test_loss"])
    assert not view.progress.isVisible(), "nothing is evaluated again"
    assert float(cell(view, 0, column(view, "Test loss (nats)"))) == pytest.approx(
        round(record.metrics["test_loss"], 2), abs=0.006)
    qtbot.waitUntil(lambda: window.session.data is not None, timeout=RUN_TIMEOUT_MS)


def test_compare_checkpoints_bold_best_and_header_tooltips(qtbot, window, files):
    view = view_of(window)
    only(view, likelihood=True, latent=True, k=5)
    a, b = files["vae1"], files["vae2"]
    view.add_checkpoints([str(a), str(b), str(a)])
    view.add_checkpoints([str(b)])
    assert [row.path for row in view.rows] == [a.absolute(), b.absolute()], "a file already in the table is ignored"
    qtbot.waitUntil(lambda: all(row.record is not None for row in view.rows), timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    assert view.table.rowCount() == 2, "no model is open: only the added files"
    assert "kept in the file" in view.status.text(), view.status.text()
    for path in (a, b):
        assert load_checkpoint(path).evaluations, f"{path.name} holds its numbers"

    loss_col = column(view, "Test loss (nats)")
    losses = [row.record.metrics["test_loss"] for row in view.rows]
    assert losses[0] != losses[1]
    best = losses.index(min(losses))
    for r in range(2):
        assert cell(view, r, loss_col), "both rows fill in"
        assert view.table.item(r, loss_col).font().bold() == (r == best), f"row {r}: only the lowest loss is bold"

    iw_tip = view.table.horizontalHeaderItem(column(view, "IW NLL (nats)")).toolTip()
    assert "86.76" in iw_tip and "Lower is better" in iw_tip, iw_tip
    knn = [c for c, title in enumerate(headers(view)) if title.startswith("k-NN")]
    assert knn, headers(view)
    for c in knn:
        assert "Higher is better" in view.table.horizontalHeaderItem(c).toolTip()
        assert cell(view, 0, c).endswith("%")


def test_export_the_table_as_csv_and_markdown(qtbot, window, files, tmp_path, monkeypatch):
    view = view_of(window)
    with pytest.raises(ValueError):
        view.export_table(str(tmp_path / "empty.csv"))  # nothing evaluated yet
    only(view)
    view.add_checkpoints([str(files["vae1"]), str(files["vae2"])])
    qtbot.waitUntil(lambda: all(row.record is not None for row in view.rows), timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    losses = [row.record.metrics["test_loss"] for row in view.rows]

    view.export_table(str(tmp_path / "table.csv"))
    with open(tmp_path / "table.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert "test_loss" in rows[0], rows[0].keys()
    assert len(rows) == 2, "one row per evaluated model"
    assert [float(r["test_loss"]) for r in rows] == pytest.approx(losses)
    assert [r["model"] for r in rows] == ["vae1.safetensors", "vae2.safetensors"]

    view.export_table(str(tmp_path / "table.md"))
    text = (tmp_path / "table.md").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| vae")]
    assert len(lines) == 2, text
    best = losses.index(min(losses))
    loss_text = f"{min(losses):.2f}"
    assert f"**{loss_text}**" in lines[best], lines
    assert "**" not in lines[1 - best], "only the best value is bold"

    with pytest.raises(ValueError):
        view.export_table(str(tmp_path / "table.txt"))

    chosen = tmp_path / "menu.csv"
    asked: list[str] = []

    def ask(parent, caption, suggested, filters):
        asked.append(caption)
        return str(chosen), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(ask))
    find_action(window, "Export evaluation table (CSV/Markdown)...").trigger()
    assert asked == ["Export evaluation table"], asked
    assert chosen.read_text(encoding="utf-8") == (tmp_path / "table.csv").read_text(encoding="utf-8")


def bold_rows(view: EvaluationView, col: int) -> set[int]:
    return {r for r in range(view.table.rowCount()) if view.table.item(r, col).font().bold()}


def test_rows_measured_on_different_test_sets_are_not_ranked_against_each_other(qtbot, window, files, tmp_path):
    """Issue #26: a model scored on 300 test images sat beside one scored on 200, and the
    lower loss was bolded as the best; the exports did not say what either was measured on."""
    view = view_of(window)
    only(view)
    view.add_checkpoints([str(files["vae1"]), str(files["vae200"])])
    qtbot.waitUntil(lambda: all(row.record is not None for row in view.rows), timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    assert [row.record.n_images for row in view.rows] == [300, 200]
    data_col, loss_col = column(view, "Measured on"), column(view, "Test loss (nats)")
    assert data_col == 1, headers(view)
    assert cell(view, 0, data_col) == "mnist test, 300 images, binarised: none"
    assert cell(view, 1, data_col) == "mnist test, 200 images, binarised: none"
    assert "fingerprint" in view.table.item(0, data_col).toolTip()
    assert all(cell(view, r, loss_col) for r in range(2)), "both rows show their numbers"
    for c in range(2, view.table.columnCount()):
        assert bold_rows(view, c) == set(), f"{headers(view)[c]}: rows on other test sets are not ranked"
    assert view.notice.isVisible(), "the table says why nothing is bold"
    assert NOT_RANKED in view.notice.text(), view.notice.text()

    view.export_table(str(tmp_path / "two.csv"))
    with open(tmp_path / "two.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["dataset"], r["split"], r["n_images"], r["binarize"]) for r in rows] == [
        ("mnist", "test", "300", "none"), ("mnist", "test", "200", "none")]
    assert rows[0]["test_set"] != rows[1]["test_set"] and all(len(r["test_set"]) == 16 for r in rows)
    assert rows[1]["measured_on"] == "mnist test, 200 images, binarised: none"
    view.export_table(str(tmp_path / "two.md"))
    text = (tmp_path / "two.md").read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("| Model | Measured on |"), text
    lines = [line for line in text.splitlines() if line.startswith("| vae")]
    assert "| mnist test, 300 images, binarised: none |" in lines[0], lines
    assert "| mnist test, 200 images, binarised: none |" in lines[1], lines
    assert not any("**" in line for line in lines), "nothing is bold across test sets"
    assert "only among rows measured on the same test set" in text and NOT_RANKED in text, text

    # A second model on the first test set: the bold is per test set.
    view.add_checkpoints([str(files["vae2"])])
    qtbot.waitUntil(lambda: all(row.record is not None for row in view.rows), timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    assert cell(view, 2, data_col) == "mnist test, 300 images, binarised: none"
    losses = [row.record.metrics["test_loss"] for row in view.rows]
    best = 0 if losses[0] < losses[2] else 2
    assert bold_rows(view, loss_col) == {best}, "the lower loss of the two 300-image rows, and only it"
    assert "300 images" in view.table.item(best, loss_col).toolTip()
    assert view.notice.isVisible() and NOT_RANKED in view.notice.text()
    view.export_table(str(tmp_path / "three.md"))
    lines = [line for line in (tmp_path / "three.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("| vae")]
    assert [("**" in line) for line in lines] == [r == best for r in range(3)], lines


def test_an_older_record_without_its_test_set_shows_a_question_mark_and_is_measured_again(qtbot, window, files):
    view = view_of(window)
    only(view)
    known = Evaluation(dataset="mnist", binarize="none", step=1, metrics={"test_loss": 150.0}, groups=("loss",),
                       split="test", n_images=300, fingerprint="0" * 16)
    older = Evaluation(dataset="mnist", binarize="none", step=1, metrics={"test_loss": 100.0}, groups=("loss",))
    view.rows = [Row("known.safetensors", record=known), Row("older.safetensors", record=older)]
    view.refresh()
    data_col, loss_col = column(view, "Measured on"), column(view, "Test loss (nats)")
    assert cell(view, 1, data_col) == "mnist ?, ? images, binarised: none"
    assert bold_rows(view, loss_col) == set(), "the lower loss of an unknown test set is not the best"
    assert view.notice.isVisible() and NOT_RANKED in view.notice.text() and '"?"' in view.notice.text()
    view.rows = []
    view.refresh()
    assert not view.notice.isVisible()

    # A file holding only an older record of its weights is measured again, not shown as is.
    path = files["vae1"]
    step = load_checkpoint(path).history.last_step
    store_evaluation(path, Evaluation(dataset="mnist", binarize="none", step=step, metrics={"test_loss": 1.0},
                                      groups=("loss",)))
    view.add_checkpoints([str(path)])
    qtbot.waitUntil(lambda: view.rows[0].record is not None, timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    record = view.rows[0].record
    assert record.n_images == 300 and record.metrics["test_loss"] != 1.0
    assert cell(view, 0, data_col) == "mnist test, 300 images, binarised: none"
    stored = [(r["n_images"] if "n_images" in r else None, r["metrics"]["test_loss"])
              for r in load_checkpoint(path).evaluations]
    assert stored[0] == (0, 1.0) and stored[1][0] == 300, "the older numbers stay apart, unmerged"


def test_a_plain_autoencoder_gets_a_loss_but_no_likelihood(qtbot, window, files):
    view = view_of(window)
    only(view, likelihood=True, k=5)
    view.add_checkpoints([str(files["vae1"]), str(files["ae"])])
    qtbot.waitUntil(lambda: all(row.record is not None for row in view.rows), timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    ae_row = [row.path.name for row in view.rows].index("ae.safetensors")
    loss_col, iw_col = column(view, "Test loss (nats)"), column(view, "IW NLL (nats)")
    assert float(cell(view, ae_row, loss_col)) > 0
    assert cell(view, ae_row, iw_col) == "", "an autoencoder has no likelihood"
    assert cell(view, 1 - ae_row, iw_col), "the VAE beside it has one"
    record = view.rows[ae_row].record
    assert "iw_nll" not in record.metrics
    assert any("Log-likelihood skipped" in note for note in record.notes), record.notes
    assert "Log-likelihood skipped" in view.status.text(), view.status.text()  # the ae was evaluated last


def test_cancel_stops_the_evaluation_and_keeps_no_record(qtbot, window, files):
    path = files["vae1"]
    open_model(qtbot, window, path)
    view = view_of(window)
    view.likelihood.setChecked(True)
    view.latent.setChecked(True)
    view.recon.setChecked(True)
    view.samples.setChecked(True)
    view.iw_k.setValue(5000)
    qtbot.mouseClick(view.evaluate_button, LEFT)
    qtbot.waitUntil(view.progress.isVisible, timeout=5000)
    qtbot.wait(300)
    assert view.progress.isVisible(), "K = 5000 takes longer than this"
    qtbot.mouseClick(view.findChild(type(view.cancel_button), "cancelEvaluation"), LEFT)
    assert not view.progress.isVisible()
    assert "Cancelled" in view.status.text(), view.status.text()
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=EVAL_TIMEOUT_MS)  # the worker stopped
    qtbot.wait(1000)
    assert window.session.current_evaluation() is None
    assert window.session.evaluations == []
    assert not view.progress.isVisible() and "Cancelled" in view.status.text()
    assert not load_checkpoint(path).evaluations, "nothing was written into the file"
    assert not window.isWindowModified()


def test_an_unsaved_model_keeps_its_numbers_until_save(qtbot, window, files, tmp_path):
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_training()
    qtbot.waitUntil(lambda: window.session.state == "idle" and window.session.data is not None, timeout=5000)
    assert window.session.checkpoint_path is None
    view = view_of(window)
    only(view, likelihood=True, k=5)
    qtbot.mouseClick(view.evaluate_button, LEFT)
    qtbot.waitUntil(lambda: window.session.current_evaluation() is not None, timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    assert "Save keeps them" in view.status.text(), view.status.text()
    assert window.isWindowModified()
    record = window.session.current_evaluation()
    assert float(cell(view, 0, column(view, "Test loss (nats)"))) == pytest.approx(
        round(record.metrics["test_loss"], 2), abs=0.006)

    saved = tmp_path / "saved.safetensors"
    assert window.files.save_to(str(saved))
    assert not window.isWindowModified()
    stored = load_checkpoint(saved).evaluations
    assert stored and stored[-1]["metrics"]["test_loss"] == pytest.approx(record.metrics["test_loss"])


def test_the_open_row_says_evaluating_and_its_notes_leave_with_the_model(qtbot, window, files):
    """The row read "not evaluated yet" while it was being evaluated, and after switching to
    a followed run the notes still spoke of the previous model."""
    open_model(qtbot, window, files["ae"])
    view = view_of(window)
    only(view, likelihood=True, k=5)
    assert cell(view, 0, 0).endswith("not evaluated yet"), cell(view, 0, 0)
    qtbot.mouseClick(view.evaluate_button, LEFT)
    assert cell(view, 0, 0).endswith("evaluating…"), cell(view, 0, 0)
    qtbot.waitUntil(lambda: window.session.current_evaluation() is not None, timeout=EVAL_TIMEOUT_MS)
    wait_idle(qtbot, view)
    assert cell(view, 0, 0).endswith("(open)"), cell(view, 0, 0)
    assert "an ae autoencoder has no prior" in view.status.text(), view.status.text()  # its note, in good English

    window.follower._timer.setInterval(100)
    assert window.files.follow(str(files["vae1"]))
    qtbot.waitUntil(lambda: window.session.document.path == files["vae1"].absolute(), timeout=RUN_TIMEOUT_MS)
    assert "autoencoder" not in view.status.text() and "Notes" not in view.status.text(), view.status.text()
    assert cell(view, 0, 0).startswith("vae1.safetensors")
    window.follower.stop()


def test_an_evaluation_beside_a_training_run_borrows_one_of_its_cores_and_gives_it_back(qtbot, window,
                                                                                          monkeypatch):
    lent = []
    real = window.session.lend_cores
    monkeypatch.setattr(window.session, "lend_cores", lambda cores: (lent.append(cores), real(cores)))
    window.panel.epochs.setValue(500)
    window.start_training()
    qtbot.waitUntil(lambda: window.session.state == "training" and window.session.view_model is not None
                    and window.session.data is not None, timeout=RUN_TIMEOUT_MS)
    view = view_of(window)
    only(view, likelihood=False)
    qtbot.mouseClick(view.evaluate_button, LEFT)
    assert lent == [1], "the run keeps every core while the evaluation takes one"
    wait_idle(qtbot, view)
    assert lent == [1, 0], "the core goes back when the evaluation ends"
    window.session.stop()
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=RUN_TIMEOUT_MS)
