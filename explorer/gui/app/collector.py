"""The cyclic garbage collector, run from a GUI-thread timer.

pyqtgraph's ``GarbageCollector`` turns the automatic collector off and collects from a
timer, so that no collection runs in a background thread (there it once destroyed Qt
objects of a closed window and deadlocked against the GUI thread). This one does the
same, and leaves out the full pass while a background thread imports modules
(``explorer.runtime.heap.lazy_import``): each such pass walked the half-imported modules
and stalled the GUI thread for 70-75 ms at the start of every training run.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

from explorer.runtime.heap import full_collection_allowed


class GuiThreadCollector(GarbageCollector):
    def check(self) -> None:  # noqa: D102 - pyqtgraph's timer slot
        young, middle, old = gc.get_count()
        if young <= self.threshold[0]:
            return
        gc.collect(0)
        if middle <= self.threshold[1]:
            return
        gc.collect(1)
        if old > self.threshold[2] and full_collection_allowed():
            gc.collect(2)
