"""QApplication set-up and the event loop."""

from __future__ import annotations

import gc
import sys

from PySide6.QtWidgets import QApplication


def run(checkpoint: str | None, argv: list[str]) -> int:
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("Latent Explorer")
    app.setApplicationDisplayName("Latent Explorer")

    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    from explorer.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if checkpoint:
        window.open_checkpoint(checkpoint)
    # Start-up objects never die: freezing them keeps full collections (which stall the
    # GUI thread while a trainer allocates) short. A shorter switch interval lets the GUI
    # thread take the GIL back from the trainer sooner. (DESIGN.md section 8.)
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)
    status = app.exec()
    window.session.shutdown()  # however the loop ended, no training thread outlives it
    return status
