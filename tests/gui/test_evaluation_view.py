"""The Evaluation view, driven as a person would: evaluate the open model with the real
button, compare saved checkpoints, read the table's numbers, bold and tooltips, export it,
cancel a long evaluation, and keep the numbers with an unsaved model until Save."""

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
from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.evaluation_view import EvaluationView
from explorer.training.checkpoint import load_checkpoint

EVAL_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 90_000
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """Small checkpoints made once with the CLI in-process: two VAEs (1 and 2 epochs, other
    seeds) and a plain autoencoder, each on 300 images per split."""
    import torch

    folder = tmp_path_factory.mktemp("evaluation-checkpoints")
    paths: dict[str, Path] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, model, epochs, seed in (("vae1", "vae", 1, 0), ("vae2", "vae", 2, 3), ("ae", "ae", 1, 0)):
            path = folder / f"{name}.safetensors"
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli_main(["train", "--model", model, "--epochs", str(epochs), "--limit", "300",
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
