"""File > Export > Model...: the dialog's filter picks the format and the part, the export
runs through the task runner off the GUI thread, and the status bar says where it went.
What cannot work (a conv model as a web page) is said before any task starts."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

from explorer.gui.app.exports import MODEL_FILTERS, model_export_choice

TIMEOUT_MS = 60_000


def _open(qtbot, window, path) -> None:
    window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.stats is not None and window.session.data is not None, timeout=TIMEOUT_MS)


def _answer(monkeypatch, path, chosen: str) -> None:
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), chosen))


def test_the_filter_says_the_format_and_the_part():
    assert model_export_choice("/x/m", "PyTorch program, decoder (*.pt2)") == ("/x/m.pt2", "pt2", "decoder")
    assert model_export_choice("/x/m.onnx", "ONNX, encoder (*.onnx)") == ("/x/m.onnx", "onnx", "encoder")
    # A name with another format's suffix keeps its format, with that format's default part.
    assert model_export_choice("/x/m.html", "ONNX, encoder (*.onnx)") == ("/x/m.html", "web", "decoder")
    assert model_export_choice("/x/m.pt2", "Web page, decoder (*.html)") == ("/x/m.pt2", "pt2", "both")
    assert {fmt for fmt, _ in MODEL_FILTERS.values()} == {"onnx", "pt2", "web"}


def test_the_menu_writes_a_pt2_decoder_off_the_gui_thread(qtbot, window, trained_checkpoint, tmp_path, monkeypatch):
    _open(qtbot, window, trained_checkpoint("vae"))
    action = window.export_model_action
    assert action.isEnabled()
    out = tmp_path / "vae"
    _answer(monkeypatch, out, "PyTorch program, decoder (*.pt2)")
    action.trigger()
    assert "Exporting the decoder" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: "Exported the decoder" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    program = torch.export.load(tmp_path / "vae.pt2").module()  # trusted: this test wrote it
    code = torch.randn(3, window.session.view_model.config.latent_dim)
    with torch.no_grad():
        np.testing.assert_allclose(program(code).numpy(), window.session.view_model.decode(code).numpy(), atol=1e-5)


def test_the_web_page_carries_the_planes_test_codes(qtbot, window, trained_checkpoint, tmp_path, monkeypatch):
    _open(qtbot, window, trained_checkpoint("vae"))
    out = tmp_path / "page.html"
    _answer(monkeypatch, out, "Web page, decoder (*.html)")
    window.export_model_action.trigger()
    qtbot.waitUntil(lambda: "Exported the decoder" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    text = out.read_text(encoding="utf-8")
    start = text.index('id="model-data">') + len('id="model-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    stats = window.latent.stats
    n = min(2000, stats.codes.shape[0])
    assert data["labels"] == stats.labels[:n].tolist()
    assert len(np.frombuffer(base64.b64decode(data["points_x"]), "<f4")) == n


@pytest.mark.parametrize("preset", ["conv-vae"])
def test_a_conv_model_is_refused_as_a_web_page_at_once(qtbot, window, trained_checkpoint, tmp_path, preset):
    _open(qtbot, window, trained_checkpoint(preset))
    folder = tmp_path / "exports"
    folder.mkdir()
    window.exports.export_model(str(folder / "page.html"), "web", "decoder")
    assert window.dialogs.current is not None and "MLP" in window.dialogs.current.text()
    assert not [label for label in window.session.tasks.busy_labels if label.startswith("Exporting")]
    assert list(folder.iterdir()) == []
