"""The GUI thread's collector leaves the full pass out while a background import runs."""

from __future__ import annotations

import gc

from explorer.gui.app.collector import GuiThreadCollector
from explorer.runtime import heap


def test_the_full_pass_waits_for_a_background_import_to_end(qapp, monkeypatch):
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or 0)
    monkeypatch.setattr(gc, "get_count", lambda: (10_000, 1_000, 1_000))  # every generation due
    collector = GuiThreadCollector(interval=3600)
    try:
        with heap.lazy_import():
            collector.check()
        assert collected == [0, 1], "no full pass while modules are being imported"
        collected.clear()
        collector.check()
        assert collected == [0, 1, 2]
    finally:
        collector.timer.stop()
