"""Model plugins in the window: the preset list, the form drawn from a plugin's schema, a
run of a plugin's model, and a broken plugin greyed out (README, "Model plugins")."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox

from explorer import plugins
from explorer.gui.views.training_panel import TrainingPanel

RUN_TIMEOUT_MS = 90_000


@pytest.fixture(autouse=True)
def _fresh_discovery():
    plugins._found = None
    yield
    plugins._found = None


@pytest.fixture(autouse=True)
def _example_installed():
    if "vqvae" not in [name for name, _, _ in plugins.installed()]:
        pytest.fail("the example plugin is not installed: pip install -e examples/latent-explorer-vqvae "
                    "(make setup does it)")


def _wait_for_plugins(qtbot, panel: TrainingPanel) -> None:
    qtbot.waitUntil(panel.plugins_loaded, timeout=30_000)  # discovered in a thread after the first paint


def test_the_plugin_is_in_the_preset_list_and_its_schema_in_the_form(qtbot, window):
    panel = window.panel
    assert panel.preset.findData("vqvae") < 0 or plugins.loaded()  # not on the first paint's path
    _wait_for_plugins(qtbot, panel)
    index = panel.preset.findData("vqvae")
    assert index >= 0
    assert panel.preset.model().item(index).isEnabled()
    assert "VQ-VAE" in panel.preset.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert not panel.plugin_box.isVisible()
    panel.preset.setCurrentIndex(index)
    assert panel.plugin_box.isVisible()
    fields = {name: panel.findChild(kind, f"plugin_{name}") for name, kind in
              (("codebook_size", QSpinBox), ("group_size", QSpinBox), ("commitment", QDoubleSpinBox),
               ("hidden", QSpinBox), ("two_layers", QCheckBox), ("activation", QComboBox))}
    assert all(widget is not None for widget in fields.values()), fields
    assert fields["codebook_size"].value() == 32 and fields["codebook_size"].maximum() == 4096
    assert fields["commitment"].value() == pytest.approx(0.25)
    assert [fields["activation"].itemText(i) for i in range(fields["activation"].count())] == \
        ["relu", "elu", "silu"]
    assert "Codebook entries" in fields["codebook_size"].toolTip()
    fields["codebook_size"].setValue(16)
    fields["two_layers"].setChecked(True)
    fields["activation"].setCurrentIndex(2)
    model, _, train = panel.configs()
    assert (model.preset, model.plugin) == ("vqvae", "vqvae")
    assert model.params == {"codebook_size": 16, "group_size": 1, "commitment": 0.25, "hidden": 400,
                            "two_layers": True, "activation": "silu"}
    assert train.epochs == 10
    panel.preset.setCurrentIndex(panel.preset.findData("vae"))
    assert not panel.plugin_box.isVisible() and panel.configs()[0].plugin == ""


def test_a_plugin_model_trains_in_the_window_and_its_views_decode(click, qtbot, window):
    panel = window.panel
    _wait_for_plugins(qtbot, panel)
    panel.preset.setCurrentIndex(panel.preset.findData("vqvae"))
    panel.limit.setValue(300)
    panel.epochs.setValue(1)
    ended: list = []  # heard from the start: a 1-epoch run may end while the test looks at the panel
    window.session.run_finished.connect(ended.append)
    with qtbot.waitSignal(window.session.data_changed, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    assert not panel.findChild(QSpinBox, "plugin_codebook_size").isEnabled()  # locked while training
    qtbot.waitUntil(lambda: bool(ended), timeout=RUN_TIMEOUT_MS)
    assert ended[0].status == "completed"
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)
    assert type(window.session.view_model).__name__ == "VQVAE"
    assert window.loss_plot.point_count("test commitment") == 1
    recon = window.recon_view  # its grid is decoded off the GUI thread: wait for the final weights' one
    qtbot.waitUntil(lambda: not recon.redraws.stale and recon.pictures.current and not recon.pictures.pending
                    and recon.grid is not None, timeout=RUN_TIMEOUT_MS)
    assert np.isfinite(recon.grid).all()


def test_a_broken_plugin_is_greyed_out_and_says_why(qtbot, monkeypatch, tmp_path):
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = list(plugins._entry_points())
    monkeypatch.setattr(plugins, "_entry_points",
                        lambda: [*real, EntryPoint("boom", "raises_on_import:PLUGIN", plugins.GROUP)])
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.show()
    _wait_for_plugins(qtbot, panel)
    index = panel.preset.findData("boom")
    assert index >= 0 and panel.preset.itemText(index) == "boom (broken)"
    assert not panel.preset.model().item(index).isEnabled()
    assert "boom at import" in panel.preset.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert panel.preset.model().item(panel.preset.findData("vqvae")).isEnabled()  # the others work


def test_the_form_keeps_a_plugin_model_across_sessions(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = TrainingPanel()
    qtbot.addWidget(first)
    first.load_plugins()
    _wait_for_plugins(qtbot, first)
    first.preset.setCurrentIndex(first.preset.findData("vqvae"))
    first.findChild(QSpinBox, "plugin_codebook_size").setValue(8)
    first.save_settings(settings)
    plugins._found = None  # the next session starts before discovery has run
    second = TrainingPanel()
    qtbot.addWidget(second)
    second.restore_settings(settings)  # kept until the plugin is loaded, then shown
    second.load_plugins()
    _wait_for_plugins(qtbot, second)
    assert second.preset.currentData() == "vqvae"
    assert second.configs()[0].params["codebook_size"] == 8
