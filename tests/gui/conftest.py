"""GUI fixtures: a main window with private settings, and helpers to drive training."""

from __future__ import annotations

import pytest

# The app imports torchvision's grid code once, in the background, with its first data
# (runtime/threads.py:warm_view_imports). A test that closes its window during that
# one-time import would time the join as a stall of the close; import it up front instead.
import torchvision.utils  # noqa: F401
from PySide6.QtCore import QSettings, Qt

from explorer.gui.app.main_window import MainWindow


@pytest.fixture(autouse=True, scope="session")
def _garbage_collected_on_the_gui_thread(qapp):
    """As in the app (application.collect_garbage_on_gui_thread): the collector runs from a
    GUI-thread timer, never in a background thread that happens to allocate."""
    import gc

    from explorer.gui.app.application import collect_garbage_on_gui_thread

    collect_garbage_on_gui_thread(qapp)
    yield
    gc.enable()


# A handler that blocks the event loop this long is a freeze a person sees. Loose enough for
# a noisy 2-core CI machine, tight enough to catch the seconds-long stalls of a bad design.
GUI_HANDLER_LIMIT_MS = 250


@pytest.fixture(autouse=True)
def _no_slow_gui_handler(request):
    """Fail any GUI test during which one event handler held the GUI thread too long (a test
    marked ``gui_stall_measured_itself`` bounds the event loop its own way)."""
    from explorer.gui.app.slow_handlers import SLOW_HANDLERS

    start = len(SLOW_HANDLERS)
    yield
    if request.node.get_closest_marker("gui_stall_measured_itself"):
        return
    # The handler's own time: a pause of the garbage collector over the whole test
    # process's objects is pytest's heap, not the app's (which freezes its start-up objects).
    slow = [str(h) for h in SLOW_HANDLERS[start:] if h.own_ms > GUI_HANDLER_LIMIT_MS]
    assert not slow, f"GUI-thread handlers over {GUI_HANDLER_LIMIT_MS} ms: {slow}"


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """A shown main window set up for quick runs (300 images per split)."""
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.panel.limit.setValue(300)
    w.panel.epochs.setValue(1)
    w.panel.batch_size.setValue(64)
    w.panel.min_steps.setValue(0)  # quick runs train exactly the epochs set; test_small_data.py tests the floor
    yield w
    w.session.shutdown()
    w.close_without_asking()


@pytest.fixture
def click(qtbot):
    """Click the toolbar button of an action as a person would: ``click(window, action)``."""

    def do(window: MainWindow, action) -> None:
        button = window.toolbar.widgetForAction(action)
        assert button is not None and button.isEnabled(), f"{action.text()} is not clickable"
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    return do


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """``trained_checkpoint(preset, latent_dim=None, epochs=1, limit=2000, classes=None)``: the path of a
    checkpoint trained with the engine on the first ``limit`` MNIST images, made once per
    session for each set of arguments."""
    import torch

    from explorer.config import DataConfig
    from explorer.training.checkpoint import save_checkpoint
    from explorer.training.engine import run_to_end, train
    from explorer.training.history import History
    from explorer.training.runs import model_config_for, prepare_run, train_config_for

    made: dict[tuple, object] = {}
    folder = tmp_path_factory.mktemp("checkpoints")

    def make(preset: str, latent_dim: int | None = None, epochs: int = 1, limit: int = 2000,
             classes: tuple[int, ...] | None = None):
        key = (preset, latent_dim, epochs, limit, classes)
        if key not in made:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                run = prepare_run(model_config_for(preset, latent_dim=latent_dim),
                                  DataConfig(limit=limit, classes=classes),
                                  train_config_for(preset, epochs=epochs, batch_size=64, seed=1))
                history = History(run.model.part_names)
                for event in run_to_end(train(run.model, run.data, run.train_config))[0]:
                    history.record(event)
                path = folder / f"{preset}-{latent_dim}-{epochs}-{limit}-{classes}.safetensors"
                save_checkpoint(path, run.model, run.data_config, run.train_config, history, run.data.class_names)
            finally:
                torch.set_num_threads(threads)
            made[key] = path
        return made[key]

    return make


def _mouse(widget, kind, pos, button, buttons) -> None:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = QPointF(pos)
    event = QMouseEvent(kind, local, widget.mapToGlobal(local), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


@pytest.fixture
def drag(qtbot):
    """``drag(view, start, end, steps)``: press the left button at ``start`` (viewport
    pixels of a QGraphicsView), move in ``steps`` and release at ``end``, with the button
    state a real mouse sends (QTest's mouseMove carries none, so pyqtgraph never sees a drag).
    Moves are spaced like a real mouse's: pyqtgraph drops moves closer than 10 ms apart."""
    from PySide6.QtCore import QEvent, QPointF

    left = Qt.MouseButton.LeftButton

    def do(view, start, end, steps: int = 10) -> None:
        viewport = view.viewport()
        start, end = QPointF(start), QPointF(end)
        _mouse(viewport, QEvent.Type.MouseMove, start, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
        _mouse(viewport, QEvent.Type.MouseButtonPress, start, left, left)
        for i in range(1, steps + 1):
            p = start + (end - start) * (i / steps)
            qtbot.wait(12)
            _mouse(viewport, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, left)
        _mouse(viewport, QEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)

    return do
