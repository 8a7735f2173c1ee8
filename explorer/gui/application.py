"""QApplication set-up and the event loop."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from explorer.gui.main_window import MainWindow


def run(checkpoint: str | None, argv: list[str]) -> int:
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("Latent Explorer")
    window = MainWindow()
    if checkpoint:
        window.open_checkpoint(checkpoint)
    window.show()
    return app.exec()
