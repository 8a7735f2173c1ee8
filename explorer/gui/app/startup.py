"""A window on screen before PyTorch has finished importing.

Importing torch, torchvision and pyqtgraph takes 1.5-3 s on a small machine; a person
who double-clicks the app should see it at once. So the app first paints a light splash
(only Qt is loaded by then), imports the heavy modules in a background thread while the
splash keeps painting, and only then builds the main window.

``LATENT_EXPLORER_STARTUP_TRACE=FILE`` appends one JSON line per milestone
(``{"event": ..., "monotonic": ...}``, on the system-wide monotonic clock) so
``benchmarks/startup.py`` can time launch-to-first-paint and launch-to-ready from outside.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import stat
import sys
import threading
import time

from PySide6.QtCore import QEventLoop, QRect, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from explorer import startup_signals
from explorer.paths import RESOURCES
from explorer.safe_files import read_regular_file

TRACE_ENV = "LATENT_EXPLORER_STARTUP_TRACE"
# What the main window needs that is slow to import; everything else is quick once these are in.
HEAVY_MODULES = ("torch", "explorer.training.engine", "explorer.analysis.grids", "explorer.data")


MAX_TRACE_BYTES = 16 * 1024 * 1024  # a trace is a few lines
_event_loop_running = threading.Event()  # set by the "ready" milestone: the first turn of app.exec()


def _close_windows_for_signal(signum: int) -> bool:
    """SIGINT/SIGTERM once the window's event loop runs: close the windows as a normal close
    does (threads joined, the run autosaved, the crash lock released) and leave the loop
    with 130 (interrupted). Before that (still starting) False: the process ends at once."""
    app = QApplication.instance()
    if app is None or not _event_loop_running.is_set():
        return False
    windows = [w for w in app.topLevelWidgets() if callable(getattr(w, "close_without_asking", None))]
    if not windows:
        return False

    def close() -> None:
        name = signal.Signals(signum).name
        print("latent-explorer: interrupted" + ("" if name == "SIGINT" else f" ({name})") + "; closing the window",
              file=sys.stderr, flush=True)
        app.setQuitOnLastWindowClosed(False)  # its quit() would make the exit status 0
        for window in windows:
            window.close_without_asking()
        app.exit(130)

    QTimer.singleShot(0, close)  # not inside the signal handler: it runs between any two lines
    return True


def mark(event: str) -> None:
    """Record a start-up milestone when tracing is on (a no-op otherwise). The trace file
    is opened without blocking and written only when it is a regular file: a FIFO with no
    reader, or a device, at that path must not stop the start."""
    if event == "ready":
        _event_loop_running.set()
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    line = json.dumps({"event": event, "monotonic": time.monotonic(), "torch_imported": "torch" in sys.modules}) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except (OSError, ValueError):
        return  # tracing must never stop the app
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, line.encode("utf-8"))
    except OSError:
        pass
    finally:
        os.close(fd)


def read_trace(path: str | os.PathLike) -> dict[str, dict]:
    """The milestones recorded so far, by name (a line still being written is skipped)."""
    events: dict[str, dict] = {}
    try:
        text = read_regular_file(path, MAX_TRACE_BYTES).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return events
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("event"), str):
            events[item["event"]] = item
    return events


class Splash(QWidget):
    """The first frame: the icon, the name and what is happening. Records its first paint.

    A plain frameless widget, not QSplashScreen: Qt 6's QSplashScreen.show() blocks up to
    a second waiting for the window to be exposed (measured: 1.0 s under Xvfb), which is
    the delay this splash exists to hide."""

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint)
        self._pixmap = _splash_pixmap()
        self._message = ""
        self.setFixedSize(self._pixmap.size())
        self.setWindowTitle("Latent Explorer")
        screen = QApplication.primaryScreen()
        if screen is not None:
            self.move(screen.availableGeometry().center() - self.rect().center())
        self.painted = False

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        painter.setPen(QColor("#d8dde6"))
        painter.drawText(self.rect().adjusted(0, 0, 0, -14),
                         Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter, self._message)
        painter.end()
        if not self.painted:
            self.painted = True
            mark("first_paint")

    def say(self, text: str) -> None:
        self._message = text
        self.repaint()  # now: the GUI thread may be busy (building the window) right after

    def finish(self, window: QWidget) -> None:
        self.close()
        window.raise_()
        window.activateWindow()


def _splash_pixmap() -> QPixmap:
    width, height = 420, 240
    pixmap = QPixmap(width, height)
    pixmap.fill(QColor("#1e2430"))
    painter = QPainter(pixmap)
    icon = QPixmap(str(RESOURCES / "icons" / "latent-explorer-128.png"))
    if not icon.isNull():
        painter.drawPixmap(24, (height - 128) // 2 - 10, icon)
    painter.setPen(QColor("#ffffff"))
    font = QFont()
    font.setPointSize(18)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(QRect(170, 70, width - 180, 40), Qt.AlignmentFlag.AlignLeft, "Latent Explorer")
    font.setPointSize(10)
    font.setBold(False)
    painter.setFont(font)
    painter.setPen(QColor("#aab3c2"))
    painter.drawText(QRect(170, 110, width - 180, 60), Qt.TextFlag.TextWordWrap,
                     "Train autoencoders, then see and touch what they learned.")
    painter.end()
    return pixmap


class BackgroundImport:
    """Import modules in a thread; the GUI thread keeps painting meanwhile. An import
    error is kept and re-raised on the GUI thread, where it can be reported."""

    def __init__(self, modules: tuple[str, ...] = HEAVY_MODULES) -> None:
        self.modules = modules
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="latent-explorer-import", daemon=True)

    def start(self) -> BackgroundImport:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for name in self.modules:
                importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread
            self.error = exc

    def wait(self, app: QApplication, splash: Splash | None = None) -> None:
        """Keep the GUI responsive until the imports are done, then raise their error if any."""
        while self._thread.is_alive():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            self._thread.join(0.02)
        if self.error is not None:
            raise self.error


def show_splash(app: QApplication, timeout_s: float = 2.0) -> Splash:
    """Show the splash and return once it has been painted (or after ``timeout_s`` on a
    platform that never exposes it, such as offscreen)."""
    startup_signals.on_signal(_close_windows_for_signal)  # Qt exists from here on
    splash = Splash()
    splash.say("Loading PyTorch…")
    splash.show()
    deadline = time.monotonic() + timeout_s
    while not splash.painted and time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
        if not splash.painted:
            time.sleep(0.005)
    return splash
