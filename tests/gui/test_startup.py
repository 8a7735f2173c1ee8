"""Start-up: the first frame is painted before PyTorch is imported, then the window comes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from explorer.gui.app.startup import BackgroundImport, Splash, read_trace, show_splash


def test_the_app_paints_a_splash_before_torch_and_then_its_window(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_EXPLORER_STARTUP_TRACE": str(trace),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "LATENT_EXPLORER_DATA": str(tmp_path / "data"),
           "LATENT_EXPLORER_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "explorer"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    events: dict[str, dict] = {}
    try:
        deadline = time.monotonic() + 60
        while "ready" not in events and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            events = read_trace(trace)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "ready" in events, f"the app never got ready: {events}; {proc.stderr.read().decode()[-1000:]}"
    order = sorted(events, key=lambda e: events[e]["monotonic"])
    assert order == ["process_ready", "first_paint", "heavy_imports_done", "window_shown", "ready"]
    assert events["first_paint"]["torch_imported"] is False
    assert events["heavy_imports_done"]["torch_imported"] is True


def test_the_splash_paints_and_says_what_it_is_doing(qtbot) -> None:
    splash = show_splash(QApplication.instance())
    qtbot.addWidget(splash)
    assert splash.painted
    image = splash.grab().toImage()
    background = image.pixelColor(5, 5)
    splash.say("Building the window…")
    qtbot.waitUntil(lambda: splash.grab().toImage() != image)  # the message was drawn
    assert background.value() < 80, "a dark splash"


def test_a_failed_background_import_is_raised_on_the_gui_thread(qtbot) -> None:
    loader = BackgroundImport(("json", "explorer.no_such_module")).start()
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        loader.wait(QApplication.instance(), Splash())
