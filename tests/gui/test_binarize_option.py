"""The training panel's Binarize choice (issue #14): it feeds DataConfig.binarize, shows an
opened run's choice, and is remembered with the other panel settings."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox

from explorer.config import BINARIZE_MODES, DataConfig
from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.training_panel import TrainingPanel


def _panel(qtbot) -> TrainingPanel:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_the_combo_sits_after_images_per_split_and_explains_itself(qtbot) -> None:
    panel = _panel(qtbot)
    combo = panel.findChild(QComboBox, "binarize")
    assert combo is panel.binarize
    assert [combo.itemData(i) for i in range(combo.count())] == list(BINARIZE_MODES)
    assert combo.currentData() == "none"
    assert "dynamic" in combo.toolTip().lower() and "fixed seed" in combo.toolTip()
    form = next(box for box in panel.findChildren(QGroupBox) if box.title() == "Data").layout()
    assert isinstance(form, QFormLayout)
    rows = [form.itemAt(r, QFormLayout.ItemRole.FieldRole).widget() for r in range(form.rowCount())]
    assert rows.index(panel.binarize) == rows.index(panel.limit) + 1


def test_choosing_a_mode_reaches_the_data_config(qtbot) -> None:
    panel = _panel(qtbot)
    panel.binarize.setFocus()
    qtbot.keyClick(panel.binarize, Qt.Key.Key_Down)
    assert panel.binarize.currentData() == "dynamic"
    assert panel.configs()[1].binarize == "dynamic"
    qtbot.keyClick(panel.binarize, Qt.Key.Key_Down)
    assert panel.configs()[1].binarize == "static"


def test_show_configs_sets_the_choice(qtbot) -> None:
    panel = _panel(qtbot)
    model, _, train = panel.configs()
    panel.show_configs(model, DataConfig(binarize="static"), train)
    assert panel.binarize.currentData() == "static"
    panel.show_configs(model, DataConfig(), train)  # an old checkpoint: no field, grey levels
    assert panel.binarize.currentData() == "none"


def test_the_combo_is_locked_while_a_run_goes(qtbot) -> None:
    panel = _panel(qtbot)
    panel.set_running(True)
    assert not panel.binarize.isEnabled()
    panel.set_running(False)
    assert panel.binarize.isEnabled()


def test_the_choice_is_remembered(qtbot, settings) -> None:
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.panel.binarize.setCurrentIndex(first.panel.binarize.findData("dynamic"))
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.panel.binarize.currentData() == "dynamic"
    assert second.panel.configs()[1].binarize == "dynamic"
    second.session.shutdown()
