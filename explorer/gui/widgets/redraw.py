"""Coalescing redraws: many requests within a frame become one redraw."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

FRAME_MS = 30


class Coalescer(QObject):
    """``request()`` as often as events arrive; ``fn`` runs at most once per ``interval_ms``
    and only while ``visible()`` says the result would be seen (else on the next request
    after it becomes visible, via ``flush``)."""

    def __init__(self, fn: Callable[[], None], visible: Callable[[], bool] = lambda: True,
                 interval_ms: int = FRAME_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._visible = visible
        self.stale = False
        self._timer = QTimer(self, singleShot=True, interval=interval_ms)
        self._timer.timeout.connect(self.flush)

    def request(self) -> None:
        self.stale = True
        if not self._timer.isActive():
            self._timer.start()

    @property
    def pending(self) -> bool:
        """A redraw is waiting for its timer (a test waits for the window to settle on it)."""
        return self._timer.isActive()

    def flush(self) -> None:
        if self.stale and self._visible():
            self.stale = False
            self._fn()
