"""Keeping the window on its screen.

A saved geometry comes back on whatever screen there is now (a laptop without its monitor,
a lower resolution), and until the window is first shown its tabbed docks count their
full title widths in its minimum size, which widened a restored 1280 px window to 1723 px
on a 1600 px screen, the Latent code dock and the toolbar's readout off the edge. So the
window restores its geometry again once shown, then ``fit_to_screen`` clamps its size and
position to the available area (``QScreen.availableGeometry``: without panels and docks)
of the screen it landed on. Its minimum size is the floor: the layout cannot go below it.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def available_geometry(window: QWidget) -> QRect:
    """The available area of the screen under the window's centre (else its own screen,
    else the primary one); an empty rect when there is no screen at all."""
    screen = QGuiApplication.screenAt(window.frameGeometry().center()) or window.screen() \
        or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect()


def frame_extra(window: QWidget) -> QSize:
    """What the window manager's frame adds to the window's size (nothing until it is framed)."""
    frame, inner = window.frameGeometry(), window.geometry()
    return QSize(max(0, frame.width() - inner.width()), max(0, frame.height() - inner.height()))


def size_within(wanted: QSize, window: QWidget) -> QSize:
    """``wanted``, shrunk (not below the window's minimum) so the framed window fits its
    screen's available area."""
    area, extra = available_geometry(window), frame_extra(window)
    if not area.isValid():
        return wanted
    return QSize(max(window.minimumWidth(), min(wanted.width(), area.width() - extra.width())),
                 max(window.minimumHeight(), min(wanted.height(), area.height() - extra.height())))


def fit_to_screen(window: QWidget) -> None:
    """Shrink the window to its screen's available area and move it inside it (its frame
    too). A maximised or full-screen window is the window system's to place."""
    if window.isMaximized() or window.isFullScreen():
        return
    area = available_geometry(window)
    if not area.isValid():
        return
    size = size_within(window.size(), window)
    if size != window.size():
        window.resize(size)
    extra = frame_extra(window)
    width, height = size.width() + extra.width(), size.height() + extra.height()
    frame = window.frameGeometry()
    # Left and top edges win when the window cannot fit whole: the menus and toolbar stay on screen.
    x = max(area.left(), min(frame.x(), area.left() + area.width() - width))
    y = max(area.top(), min(frame.y(), area.top() + area.height() - height))
    if (x, y) != (frame.x(), frame.y()):
        window.move(x, y)
