"""Start-up of the window. Qt is imported here, lazily, never by the headless commands."""

from __future__ import annotations

import sys


def run_gui(checkpoint: str | None = None) -> int:
    from explorer.gui.app.application import run

    return run(checkpoint, sys.argv[:1])
