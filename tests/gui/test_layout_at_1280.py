"""Every view is legible at the default 1280x800 and at 1920x1080 (issue #26): tab titles
whole and in sight ("Loss cu...", "De...", Evaluation scrolled out of sight), no dock over
another or over the status bar (the third run of Side by side was), a loss legend that
leaves the curves their plot, an Evaluation view without a horizontal scroll bar or cut
labels, axis labels inside their plot, and no saved layout of an older arrangement
brought back."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import QByteArray, QRect, QRectF, Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QTabBar

from explorer.config import DataConfig
from explorer.gui.app.dock_tabs import along_edge
from explorer.gui.app.main_window import DEFAULT_SIZE, LAYOUT_VERSION, MainWindow
from explorer.gui.state.runs import Run
from explorer.gui.views.registry import VIEWS, Place
from explorer.models import build_model
from explorer.training.runs import model_config_for

SIZES = [DEFAULT_SIZE, (1920, 1080)]
LEGEND_SHARE = 0.05  # the loss legend may cover at most this share of the curves' area


def sized(qtbot, window: MainWindow, size: tuple[int, int]) -> None:
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    qtbot.wait(50)  # the docks take their share


def live_tab_bars(window: MainWindow) -> list[QTabBar]:
    return [bar for bar in window.findChildren(QTabBar) if bar.parent() is window and bar.isVisible()]


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=30_000)


def settle(qtbot, window: MainWindow) -> None:
    """Let background work on the model finish before the window closes (closing joins it)."""
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=60_000)


def assert_no_overlaps(window: MainWindow) -> None:
    shown = [(name, dock.geometry()) for name, dock in window.docks.items()
             if dock.isVisible() and not dock.isFloating() and window.rect().intersects(dock.geometry())]
    shown.append(("plane", window.centralWidget().geometry()))
    for (a, ga), (b, gb) in itertools.combinations(shown, 2):
        assert not ga.intersects(gb), f"{a} {ga} overlaps {b} {gb}"
    status = window.statusBar().geometry()
    for name, g in shown:
        assert not g.intersects(status), f"{name} {g} covers the status bar {status}"
    for bar in live_tab_bars(window):
        assert not bar.geometry().intersects(status), f"a tab bar {bar.geometry()} covers the status bar"
        for name, g in shown:
            assert not bar.geometry().intersects(g), f"a tab bar {bar.geometry()} lies over {name} {g}"


@pytest.mark.parametrize("size", SIZES)
def test_every_tab_title_is_whole_and_in_sight(qtbot, window, size):
    sized(qtbot, window, size)
    bars = live_tab_bars(window)
    on_bars = set()
    for bar in bars:
        assert bar.elideMode() == Qt.TextElideMode.ElideNone
        for i in range(bar.count()):
            text, rect = bar.tabText(i), bar.tabRect(i)
            on_bars.add(text)
            assert bar.rect().contains(rect), f"the tab {text!r} is out of sight ({rect} in {bar.rect()})"
            assert rect.width() >= bar.fontMetrics().horizontalAdvance(text), f"the tab {text!r} is cut"
            assert rect.width() >= bar.tabSizeHint(i).width(), f"the tab {text!r} is squeezed"
    # Every view is one click away: its dock alone in its place, or a tab of a live bar.
    for spec in VIEWS:
        if spec.place is Place.CENTRE:
            continue
        alone = sum(s.place is spec.place for s in VIEWS) == 1
        assert alone or spec.title in on_bars, f"{spec.title} has no tab in sight"


@pytest.mark.parametrize("size", SIZES)
def test_no_dock_overlaps_another_or_the_status_bar(qtbot, window, size):
    sized(qtbot, window, size)
    assert_no_overlaps(window)
    # Three runs side by side stay inside their dock (the third was drawn over the tab bar
    # and the status bar), and no stale tab bar is left over any view.
    model = build_model(model_config_for("vae", latent_dim=2))
    window.runs_dock.raise_()
    window.runs.runs = [Run(name=f"run{i}", model=model, data_config=DataConfig()) for i in range(3)]
    window.runs.runs_changed.emit()
    qtbot.waitUntil(lambda: sum(p.isVisible() for p in window.runs_view.panes) == 3, timeout=5000)
    qtbot.wait(50)
    assert (window.width(), window.height()) == size
    assert_no_overlaps(window)
    dock = window.runs_dock.geometry()
    for pane in window.runs_view.panes:
        seen = pane.visibleRegion().boundingRect()  # empty when scrolled out of the view
        if pane.isVisible() and not seen.isEmpty():
            top_left = pane.mapTo(window, seen.topLeft())
            assert dock.contains(QRect(top_left, seen.size())), "a run's pane is drawn outside its dock"
    settle(qtbot, window)


def test_each_tab_bar_lies_along_the_docks_it_switches(qtbot, window):
    sized(qtbot, window, DEFAULT_SIZE)
    titles = {dock.windowTitle(): dock for dock in window.docks.values()}
    for bar in live_tab_bars(window):
        front = titles[bar.tabText(bar.currentIndex())]
        assert front.isVisible() and along_edge(bar.geometry(), front.geometry()), bar.tabText(bar.currentIndex())


def test_the_loss_legend_leaves_the_curves_their_plot(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    sized(qtbot, window, DEFAULT_SIZE)
    item = window.loss_plot.plot.getPlotItem()
    qtbot.waitUntil(lambda: item.legend is not None and len(item.legend.items) >= 3, timeout=10_000)
    view = item.getViewBox().sceneBoundingRect()
    legend = item.legend.sceneBoundingRect()
    covered = legend.intersected(view)
    share = covered.width() * covered.height() / (view.width() * view.height())
    assert share <= LEGEND_SHARE, f"the legend covers {share:.0%} of the loss plot"
    scene = QRectF(window.loss_plot.plot.viewport().rect())
    assert scene.contains(legend), f"the legend {legend} is cut by its plot {scene}"
    settle(qtbot, window)


@pytest.mark.parametrize("size", SIZES)
def test_evaluation_needs_no_horizontal_scroll_and_cuts_no_label(qtbot, window, trained_checkpoint, size):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    sized(qtbot, window, size)
    window.evaluation_dock.raise_()
    view = window.evaluation_view
    qtbot.waitUntil(view.isVisible, timeout=5000)
    qtbot.wait(50)
    scroll = view.findChild(type(view.table.parent().parent()), "evaluationScroll")
    assert scroll is not None
    assert not scroll.horizontalScrollBar().isVisible(), "the Evaluation view scrolls sideways"
    for widget in view.findChildren(QAbstractButton) + view.findChildren(QLabel):
        if widget.isVisible() and widget.text() and not (isinstance(widget, QLabel) and widget.wordWrap()):
            assert widget.width() >= widget.sizeHint().width(), f"{widget.text()!r} is cut"
    settle(qtbot, window)


@pytest.mark.parametrize("size", SIZES)
def test_the_plane_axis_labels_lie_inside_the_plot(qtbot, window, trained_checkpoint, size):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=8))
    sized(qtbot, window, size)
    plot = window.plane.plot
    visible = QRectF(plot.viewport().rect())
    for side in ("bottom", "left"):
        axis = plot.getPlotItem().getAxis(side)
        assert axis.label.isVisible() and "PC" in axis.labelText
        label = plot.mapFromScene(axis.label.sceneBoundingRect()).boundingRect()
        assert visible.contains(QRectF(label)), f"the {side} axis label {label} is clipped by {visible}"
    settle(qtbot, window)


def test_an_older_saved_layout_is_not_brought_back(qtbot, settings):
    """A layout saved before this arrangement (Reconstructions moved to the right, the
    bottom squeezed) comes back as the default layout, not as it was."""
    old = MainWindow(settings=settings)
    qtbot.addWidget(old)
    old.show()
    qtbot.waitExposed(old)
    old.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, old.recon_dock)
    old.resizeDocks([old.loss_dock], [600], Qt.Orientation.Vertical)
    saved = old.saveState()  # version 0: what earlier launches wrote
    old.session.shutdown()
    old.close_without_asking()
    settings.setValue("window/state", saved)
    assert isinstance(settings.value("window/state"), QByteArray)
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        assert window.dockWidgetArea(window.recon_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
        assert not window.restoreState(saved, LAYOUT_VERSION)
        assert window.plane.height() >= 0.5 * window.height() - 100
    finally:
        window.session.shutdown()
        window.close_without_asking()
