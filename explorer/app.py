"""Start-up of the window. Qt is imported here, lazily, never by the headless commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

NO_DISPLAY = ("no display found (DISPLAY is not set); run it in a desktop session, or under Xvfb: "
              "xvfb-run latent-explorer")


def missing_display(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why the window cannot open here, before Qt is asked: on Linux (and the BSDs) Qt's
    default xcb plugin aborts the process (status 134, a core dump) when there is no X11 or
    Wayland display. None when there is one, or when QT_QPA_PLATFORM names a platform."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    if any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return None
    return NO_DISPLAY


def run_gui(checkpoint: str | None = None) -> int:
    from explorer.gui.app.application import run

    return run(checkpoint, sys.argv[:1])
