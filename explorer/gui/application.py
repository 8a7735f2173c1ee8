"""QApplication set-up and the event loop."""

from __future__ import annotations

import gc
import sys

from PySide6.QtWidgets import QApplication


def make_application(argv: list[str]) -> QApplication:
    """The QApplication with the app's names and pyqtgraph's drawing options (benchmarks
    start the window through here too, so they measure what people run)."""
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("Latent Explorer")
    app.setApplicationDisplayName("Latent Explorer")

    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    return app


def tune_runtime() -> None:
    """Call once the window is built. Start-up objects never die: freezing them keeps full
    collections (which stall the GUI thread while a trainer allocates) short. A shorter
    switch interval lets the GUI thread take the GIL back from the trainer sooner.
    (DESIGN.md section 8.)"""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)


def run(checkpoint: str | None, argv: list[str]) -> int:
    app = make_application(argv)
    from explorer.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if checkpoint:
        window.open_checkpoint(checkpoint)
    tune_runtime()
    status = app.exec()
    window.session.shutdown()  # however the loop ended, no training thread outlives it
    return status
