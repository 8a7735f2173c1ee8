"""``explorer.view`` and ``explorer.run``: the window from a script or a notebook.

Everything that can be wrong with what was given (shapes, a decoder outside [0, 1], an
encoder that fails) is found before any window exists, as one :class:`UserError` line.
Qt is imported inside the calls, so ``import explorer`` stays light and Qt-free.

The event loop, as napari handles it:
- in a plain script, ``view`` shows the window and runs Qt's loop until it closes
  (``block=False`` returns at once; ``explorer.run()`` runs the loop later);
- under IPython or Jupyter it turns IPython's Qt integration on if it is off
  (``%gui qt``; terminal IPython reports it as ``qt6``, ipykernel as ``qt``), returns at
  once, and the window stays live between cells;
- it never makes a second QApplication, and never quits an application it did not make.

Under ipykernel (7.x) the Qt integration runs Qt's loop until a message arrives on the shell
socket. A request that the kernel's asyncio loop reads in the moment between two turns of
Qt's loop is dispatched through two asyncio tasks, and the kernel's 1 ms "advance the event
loop" callback can come due before they run: it enters Qt's loop again, which waits for the
next message while the request waits for Qt's loop to return. The cell is not answered until
another request comes (ipykernel issue #1554; notebooks run with "Run All" hang on it). So
``view`` gives the kernel's Qt loop a timer that hands control back to the kernel every
``KERNEL_WAKE_MS``, as ipykernel's own Tk and Wx loops poll.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import UserError
from explorer.runtime.threads import let_window_workers_finish

QT_LOOPS = ("qt", "qt5", "qt6", "pyside6")
OTHER_QT_BINDINGS = ("PyQt6", "PyQt5", "PySide2", "PyQt4", "PySide")
KERNEL_WAKE_MS = 50  # how often the kernel's Qt loop hands control back to the kernel (see above)
_VIEWERS: list[Viewer] = []  # open viewers stay alive while their windows are open
_OWN_APP: list[Any] = []  # the QApplication this module made, if it made one


class Viewer:
    """An open window on a model. ``code`` is the current latent code (settable: the
    marker, the sliders and the decoded image follow); ``image`` is the decoded image the
    window shows; ``close()`` closes it. ``window`` is the Qt main window itself."""

    def __init__(self, window: Any) -> None:
        self.window = window

    @property
    def model(self) -> Any:
        return self.window.session.view_model

    @property
    def code(self):
        """The current code as a 1-D float32 tensor (None until the data's codes are in)."""
        import torch

        code = self.window.latent.code
        return None if code is None else torch.from_numpy(np.array(code, dtype=np.float32))

    @code.setter
    def code(self, value: Any) -> None:
        import torch

        latent = self.window.latent
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        array = np.asarray(array, dtype=np.float32).reshape(-1)
        dim = self.model.config.latent_dim
        if array.shape != (dim,):
            raise UserError(f"a code of this model has {dim} numbers, not {array.size}")
        if not np.isfinite(array).all():
            raise UserError("a code must be finite numbers")
        if not self.ready:
            self.wait_until_ready()  # a code set before the codes are in would be replaced by their mean
        latent.set_code(array, "api")

    @property
    def image(self) -> np.ndarray | None:
        """The decoded image of the current code, floats in [0, 1]: (H, W) for grey images,
        (H, W, 3) for colour."""
        chw = self.window.latent.decode_current()
        if chw is None:
            return None
        chw = np.asarray(chw, dtype=np.float32)
        return chw[0].copy() if chw.shape[0] == 1 else np.moveaxis(chw, 0, -1).copy()

    @property
    def ready(self) -> bool:
        """Whether the test images' codes are in (the plane, ``code`` and ``image`` work)."""
        return bool(self.window.latent.ready)

    def wait_until_ready(self, timeout: float = 60.0) -> bool:
        """Process events until the codes are in (a script that sets ``code`` right away)."""
        import time

        from PySide6.QtCore import QCoreApplication

        end = time.monotonic() + timeout
        while not self.ready and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.005)
        return self.ready

    def close(self) -> None:
        """Close the window and return once it is closed: a window with threads still running
        stops them first (its close waits for them on a timer, painting meanwhile), and a
        script or notebook cell that closes it expects it gone when the call returns."""
        import time

        from PySide6.QtWidgets import QApplication

        self.window.close_without_asking()
        while self.window.isVisible():
            QApplication.processEvents()
            time.sleep(0.005)

    def __repr__(self) -> str:
        state = "open" if self.window.isVisible() else "closed"
        return f"<Viewer {self.window.windowTitle()!r} ({state})>"


def _ipython_shell() -> Any:
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython is no IPython
        return None


def _ipython_has_qt_loop(shell: Any) -> bool:
    return shell is not None and str(getattr(shell, "active_eventloop", None) or "").lower() in QT_LOOPS


def _ensure_ipython_qt_loop(shell: Any) -> bool:
    """Turn on IPython's Qt integration if it is off; True when it is on after. Under
    ipykernel the kernel's Qt loop is also made to hand control back to the kernel now
    and then (the module's docstring says why)."""
    if not _ipython_has_qt_loop(shell):
        try:
            shell.enable_gui("qt")
        except Exception as exc:  # noqa: BLE001 - say it once, the window still opens
            print(f"latent-explorer: could not turn on IPython's Qt event loop ({exc}); run %gui qt",
                  file=sys.stderr)
            return False
        if not _ipython_has_qt_loop(shell):  # terminal IPython with --simple-prompt has no input hook
            print("latent-explorer: IPython's Qt event loop is off in this shell, so the window runs "
                  "until it is closed", file=sys.stderr)
            return False
    _keep_kernel_responsive(shell)
    return True


def _keep_kernel_responsive(shell: Any) -> None:
    """Under ipykernel with its Qt loop: a timer on that loop that quits it every
    ``KERNEL_WAKE_MS``, so that a request the kernel has read but not yet run gets run
    (ipykernel's own loop returns only on a new message). Once per kernel. Nothing outside
    ipykernel: terminal IPython's input hook returns on every key press."""
    kernel = getattr(shell, "kernel", None)
    app = getattr(kernel, "app", None)
    if getattr(app, "qt_event_loop", None) is None or getattr(kernel, "_latent_explorer_wake", None) is not None:
        return
    from PySide6.QtCore import QTimer

    def hand_back() -> None:
        # What ipykernel's exit_loop does on a message, and only while the kernel waits in
        # its own loop (not in a cell that processes events itself). Looked up each time:
        # %gui off and on again makes the kernel a new loop.
        kernel_app = getattr(kernel, "app", None)
        qt_loop = getattr(kernel_app, "qt_event_loop", None)
        if qt_loop is None or not getattr(kernel_app, "_in_event_loop", False):
            return
        notifier = getattr(kernel, "_qt_notifier", None)
        if notifier is not None:
            notifier.setEnabled(False)  # the kernel turns it on again when it enters the loop again
        qt_loop.quit()

    timer = QTimer(app)
    timer.setObjectName("latent-explorer kernel wake")
    timer.setInterval(KERNEL_WAKE_MS)
    timer.timeout.connect(hand_back)
    timer.start()
    kernel._latent_explorer_wake = timer


def _check_qt_binding() -> None:
    """Refuse, in one line, a process that already loaded another Qt binding: its Qt and
    PySide6's cannot share a process or an application (IPython picks PyQt first when
    %gui qt or matplotlib's Qt backend loads Qt before this does)."""
    loaded = [name for name in OTHER_QT_BINDINGS if sys.modules.get(f"{name}.QtCore") is not None]
    if loaded:
        raise UserError(f"this Python session already uses {loaded[0]} for Qt, and Latent Explorer's window "
                        "needs PySide6 (two Qt bindings cannot share a process): restart it and call "
                        "explorer.view before anything else loads Qt, or set QT_API=pyside6 before %gui qt")


def _application() -> Any:
    """The process's QApplication: the one that exists, or one made here (once)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        return app
    from explorer.gui.app.application import collect_garbage_on_gui_thread, configure_plotting, make_application

    app = make_application([sys.argv[0] if sys.argv and sys.argv[0] else "latent-explorer"], configure_plots=False)
    configure_plotting()
    collect_garbage_on_gui_thread(app)
    _OWN_APP.append(app)
    return app


def _loop_running() -> bool:
    from PySide6.QtCore import QThread

    return QThread.currentThread().loopLevel() > 0


def _prepare(model: Any, encoder: Any, decoder: Any, images: Any, labels: Any, class_names: Any,
             decoder_logits: bool) -> tuple[Any, Any]:
    """The model (adapted when it is an encoder and decoder) and the data to show."""
    from explorer.data.arrays import image_data_for_viewing

    data = image_data_for_viewing(images, labels, class_names) if images is not None else None
    if model is not None and (encoder is not None or decoder is not None):
        raise UserError("give explorer.view a model, or an encoder and a decoder, not both")
    if model is None:
        if encoder is None or decoder is None:
            raise UserError("explorer.view needs a model, or both encoder= and decoder=")
        if data is None:
            raise UserError("with your own encoder and decoder, give images= too: the plane shows their codes")
        from explorer.models.external import ExternalModel

        model = ExternalModel(encoder, decoder, data.test_images, decoder_logits=decoder_logits)
    elif isinstance(model, (str, Path)):
        from explorer.api.files import load

        model = load(model)
    for attribute in ("config", "encode", "decode", "part_names"):
        if not hasattr(model, attribute):
            raise UserError(f"explorer.view takes a Latent Explorer model (explorer.load or explorer.train), "
                            f"not {type(model).__name__}; for your own modules use encoder= and decoder=")
    if data is not None and tuple(data.image_shape) != tuple(model.config.image_shape):
        raise UserError(f"the images are {data.image_shape} and the model takes {model.config.image_shape}")
    if data is not None and model.config.conditional and not data.has_labels:
        raise UserError("a conditional model needs labels= with its images")
    model.eval()
    return model, data


def view(model: Any = None, *, encoder: Any = None, decoder: Any = None, images: Any = None, labels: Any = None,
         class_names: Any = None, block: bool | None = None, decoder_logits: bool = False) -> Viewer:
    """Open the window on a model and return a :class:`Viewer`.

    ``model``: a model from ``explorer.load``/``explorer.train`` (or a checkpoint path). Or
    ``encoder`` and ``decoder``, any torch modules or callables: the encoder takes images in
    [0, 1] as (N, C, H, W) (or flattened, if that is what it accepts) and returns codes or
    ``(mean, logvar)``; the decoder takes codes (N, D) and returns images in [0, 1] (logits
    with ``decoder_logits=True``). ``images`` (a tensor, a NumPy array, or a torchvision-style
    dataset) are encoded for the plane; ``labels`` and ``class_names`` colour it. Without
    ``images`` a model shows the data it was trained on.

    ``block``: None blocks in a plain script until the window closes and returns at once
    under IPython/Jupyter; True or False forces either.
    """
    model, data = _prepare(model, encoder, decoder, images, labels, class_names, decoder_logits)
    _check_qt_binding()
    import PySide6.QtWidgets  # noqa: F401 - loaded first, so IPython's Qt integration picks PySide6

    shell = _ipython_shell()
    interactive = shell is not None and _ensure_ipython_qt_loop(shell)
    app = _application()
    from explorer.api.record import record_of
    from explorer.gui.app.main_window import MainWindow

    window = MainWindow()
    window._lock_checked = True  # a window from Python offers no crash recovery of the app's own runs
    record = record_of(model)
    if data is None and record is not None and record.data is not None:
        data = record.data  # trained on arrays given in memory: those, not a name to load
    window.session.install_given(
        model, data, data_config=record.data_config if record and data is None else None,
        train_config=record.train_config if record else None, history=record.history if record else None,
        path=record.path if record else None, directions=record.directions if record else ())
    if record is not None:
        window.session.timeline = record.timeline
        window.session.timeline_changed.emit()
    window.show()
    if not _VIEWERS:
        atexit.unregister(let_window_workers_finish)  # registered once
        atexit.register(let_window_workers_finish)
    viewer = Viewer(window)
    _VIEWERS[:] = [v for v in _VIEWERS if v.window.isVisible()] + [viewer]
    if block is None:
        block = not interactive and not _loop_running()
    if block:
        _exec(app)
    return viewer


def run() -> int:
    """Run Qt's event loop until every window is closed (after ``view(..., block=False)``).
    Returns at once under IPython with its Qt loop on, or inside a running loop."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None or _loop_running() or _ipython_has_qt_loop(_ipython_shell()):
        return 0
    return _exec(app)


def _exec(app: Any) -> int:
    """Run the loop until the last window closes; the app itself is left running if it
    was not made here (quitOnLastWindowClosed is restored)."""
    quit_before = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(True)
    try:
        return int(app.exec())
    finally:
        app.setQuitOnLastWindowClosed(quit_before)
        for viewer in list(_VIEWERS):
            viewer.window.session.shutdown()
