"""The dock tab bars: whole titles, always in sight, and no stale bar left on a view.

At 1280x800 the bottom tabs read "Loss cu...", "De...", "Ano...": Qt elides a title as soon
as a group is narrower than its tabs, and its own tab bars (made and remade by the main
window's layout) cannot be asked for anything else once, up front. The window applies
:func:`keep_whole_titles` to each bar as Qt makes it, sizes its groups with
:func:`titles_width`, and hides the stale bars Qt 6.11 leaves behind.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar, QWidget

TAB_TOUCH_PX = 4  # a live tab bar sits this close to the dock it switches


def along_edge(bar: QRect, dock: QRect) -> bool:
    """Whether a tab bar lies along the top or bottom edge of a dock, sharing its width."""
    overlap = min(bar.right(), dock.right()) - max(bar.left(), dock.left())
    return overlap > 0 and (abs(bar.top() - dock.bottom() - 1) <= TAB_TOUCH_PX
                            or abs(dock.top() - bar.bottom() - 1) <= TAB_TOUCH_PX)


def keep_whole_titles(bar: QTabBar) -> None:
    """Tabs show their whole titles ("Ano..." named nothing); when a group has more than
    its width holds, arrows scroll the bar, and the front tab is always in sight."""
    bar.setElideMode(Qt.TextElideMode.ElideNone)
    bar.setUsesScrollButtons(True)
    bar.setExpanding(False)


def titles_width(widget: QWidget, titles: list[str]) -> int:
    """What a dock tab bar needs for ``titles`` whole: the text and each tab's margins."""
    bar = QTabBar()
    bar.setFont(widget.font())
    keep_whole_titles(bar)
    for title in titles:
        bar.addTab(title)
    return sum(bar.tabSizeHint(i).width() for i in range(bar.count()))


def hide_stale_tab_bars(window: QMainWindow, docks: list[QDockWidget]) -> None:
    """Qt 6.11 leaves old tab bars of a tab group visible (after a third dock joins, and
    after restoreState; reproduced with plain QDockWidgets): one sat over the training
    settings, another over the Side by side view. The live bar of a group lies along an
    edge of the dock it switches (below it, or above it); a leftover lies elsewhere."""
    if not shiboken6.isValid(window):
        return  # the window went before this queued call ran
    titles = {dock.windowTitle(): dock for dock in docks if shiboken6.isValid(dock)}
    for bar in window.findChildren(QTabBar):
        if bar.parent() is not window or not bar.isVisibleTo(window):
            continue
        tabbed = [titles[t] for t in (bar.tabText(i) for i in range(bar.count())) if t in titles]
        shown = [d.geometry() for d in tabbed if d.isVisibleTo(window) and not d.isFloating()]
        if not any(along_edge(bar.geometry(), g) for g in shown):
            bar.hide()
