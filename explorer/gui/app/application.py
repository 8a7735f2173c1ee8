"""QApplication set-up and the event loop."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from explorer.runtime.heap import keep_collections_short

GC_INTERVAL_S = 0.5  # how often the GUI thread checks whether a collection is due
# Qt keeps each cached plot item (the plane's class scatters, its manifold, the axes) as a
# pixmap of the item's size on screen, in one process-wide cache of 10 MiB by default. The
# plane's ten class scatters alone need about 50 MiB at 1920x1080, so the cache thrashed
# and every repaint (a hovered dot's ellipse, a dragged marker) drew all 10,000 dots again:
# 9.9 ms a repaint in a 1200x800 test plot against 3.2 ms with room for them.
PIXMAP_CACHE_KIB = 128 * 1024


def make_application(argv: list[str], configure_plots: bool = True) -> QApplication:
    """The QApplication with the app's names and pyqtgraph's drawing options (benchmarks
    start the window through here too, so they measure what people run)."""
    from explorer.gui.app.slow_handlers import new_application

    app = QApplication.instance() or new_application(argv)
    make_room_for_cached_plots()
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("Latent Explorer")
    app.setApplicationDisplayName("Latent Explorer")
    from PySide6.QtGui import QIcon

    from explorer.paths import RESOURCES

    icon = QIcon()
    for png in sorted((RESOURCES / "icons").glob("latent-explorer-*.png")):
        icon.addFile(str(png))
    app.setWindowIcon(icon)
    app.setDesktopFileName("io.github.latent_explorer.LatentExplorer")  # Wayland matches the .desktop file by it

    if configure_plots:  # (start-up does both later, after the splash: pyqtgraph is slow to import)
        configure_plotting()
        collect_garbage_on_gui_thread(app)
    return app


def make_room_for_cached_plots() -> None:
    """Let Qt's pixmap cache hold every cached plot item of the window (see PIXMAP_CACHE_KIB)."""
    from PySide6.QtGui import QPixmapCache

    QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), PIXMAP_CACHE_KIB))


def collect_garbage_on_gui_thread(app: QApplication) -> None:
    """Run Python's cyclic garbage collector from a GUI-thread timer only. Left automatic, it
    runs in whichever thread allocates: a background task building a model once collected a
    closed window's menus there, and Qt's destructor in that thread and the GUI thread's
    deadlocked on Qt's mutex and the GIL (seen in the GUI tests; pyqtgraph's
    GarbageCollector exists for this). Idempotent."""
    if getattr(app, "_gui_thread_gc", None) is None:
        from explorer.gui.app.collector import GuiThreadCollector

        app._gui_thread_gc = GuiThreadCollector(interval=GC_INTERVAL_S)


def configure_plotting() -> None:
    """pyqtgraph's options, set before any plot is made. Separate from ``make_application``
    because importing pyqtgraph takes about half a second, which start-up spends after the
    first frame."""
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")


def tune_runtime() -> None:
    """Call once the window is built. Start-up objects never die: freezing them keeps full
    collections (which stall the GUI thread while a trainer allocates) short. A shorter
    switch interval lets the GUI thread take the GIL back from the trainer sooner.
    (docs/architecture.md, "Known traps".)"""
    keep_collections_short()
    sys.setswitchinterval(0.001)


def run(checkpoint: str | None, argv: list[str]) -> int:
    from explorer.gui.app.startup import BackgroundImport, mark, show_splash

    mark("process_ready")  # Python and the CLI are loaded; Qt comes next
    app = make_application(argv, configure_plots=False)
    splash = show_splash(app)  # painted before torch is imported (start-up feels instant)
    try:
        BackgroundImport().start().wait(app, splash)
    except ImportError as exc:  # a broken install: say what is missing instead of a traceback
        from PySide6.QtWidgets import QMessageBox

        splash.close()
        QMessageBox.critical(None, "Latent Explorer", f"Latent Explorer cannot start: {exc}. "
                             "Reinstall it (for example with `make setup`).")
        return 1
    mark("heavy_imports_done")
    splash.say("Building the window…")
    configure_plotting()
    collect_garbage_on_gui_thread(app)
    from explorer.gui.app.main_window import MainWindow

    window = MainWindow()
    window.show()
    splash.finish(window)
    mark("window_shown")
    if checkpoint:
        window.files.open_checkpoint(checkpoint)
    tune_runtime()
    from PySide6.QtCore import QTimer

    QTimer.singleShot(0, lambda: mark("ready"))  # the first event-loop turn after the window is up
    status = app.exec()
    window.session.shutdown()  # however the loop ended, no training thread outlives it
    from explorer.runtime.threads import let_window_workers_finish

    let_window_workers_finish()  # a daemon thread inside torch at exit aborts the process
    return status
