"""The main window: a shell built from two tables, the declared views
(``gui/views/registry.py``) and the declared actions (``gui/app/actions.py``).

It owns no behaviour of its own beyond layout and closing: files, exports, training,
autosave and text size are command objects in ``gui/app``; what the window shows comes
from the state objects (session, latent state, document) through the views. Dialogs are
opened non-modally, so a message never blocks the event loop that keeps the views
painting.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QTabBar,
    QToolBar,
    QWidget,
)

from explorer.display import one_line
from explorer.errors import UserError
from explorer.gui.app.actions import ACTIONS, MENUS, ActionSpec
from explorer.gui.app.autosave import AutosaveCommands, session_lock
from explorer.gui.app.dialogs import Dialogs, Icon
from explorer.gui.app.dock_tabs import hide_stale_tab_bars, keep_whole_titles, titles_width
from explorer.gui.app.exports import TEST_CODES, ExportCommands
from explorer.gui.app.files import FileCommands
from explorer.gui.app.progress import RunProgress
from explorer.gui.app.screen_fit import fit_to_screen, size_within
from explorer.gui.app.text_size import TextSize
from explorer.gui.app.training import TrainingCommands
from explorer.gui.state.follow import RunFollower
from explorer.gui.state.latent_state import LatentState
from explorer.gui.state.runs import RunsState
from explorer.gui.state.session import PAUSED, TrainingSession
from explorer.gui.state.settings import APP_NAME, open_settings
from explorer.gui.views.registry import VIEWS, Place, Reads, ViewSpec

DEFAULT_SIZE = (1280, 800)  # shrunk to fit a smaller screen
# The latent plane is the window's point: no dock may squeeze it below this (four runs side
# by side once left it a 200 px strip, and the saved layout kept it so).
PLANE_MIN_SIZE = (360, 300)
DOCK_AREAS = {Place.LEFT: Qt.DockWidgetArea.LeftDockWidgetArea, Place.RIGHT: Qt.DockWidgetArea.RightDockWidgetArea,
              Place.BOTTOM_LEFT: Qt.DockWidgetArea.BottomDockWidgetArea,
              Place.BOTTOM_RIGHT: Qt.DockWidgetArea.BottomDockWidgetArea}
# Widths of the left and right columns and height of the bottom row at the default size.
PANEL_WIDTH, CODE_WIDTH, BOTTOM_HEIGHT = 340, 360, 290
# Saved layouts carry this number. Layouts saved before it arranged the docks differently
# (elided tabs, a plane squeezed to a strip) and are not restored: the default layout is.
LAYOUT_VERSION = 2




CLOSE_POLL_MS = 15  # how often a closing window looks whether its threads have ended


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, session: TrainingSession | None = None) -> None:
        super().__init__()
        self._settings_warning: str | None = None
        if settings is None:
            settings, self._settings_warning = open_settings()
        self.settings = settings
        self.session = session if session is not None else TrainingSession(self)
        self.latent = LatentState(self.session, self)
        self.runs = RunsState(self.session, self)
        self.dialogs = Dialogs(self)
        self.setDockNestingEnabled(True)
        self.views: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        for spec in VIEWS:
            self._add_view(spec)
        self._arrange_docks()

        self.progress = RunProgress(self, self.session)
        self.follower = RunFollower(self.session, self)
        self.files = FileCommands(self)
        self.exports = ExportCommands(self)
        self.training = TrainingCommands(self)
        self.autosave = AutosaveCommands(self)
        self.text_size = TextSize(self.settings)
        self.actions_by_name = {spec.name: self._make_action(spec) for spec in ACTIONS}
        self._make_menus()
        self._make_toolbar()
        self.progress.show_device(self.panel.device.currentData())
        self.runs.settings_source = self.panel.configs
        self.session.state_changed.connect(self._update_for_state)
        self.session.document.changed.connect(self._show_title)
        self.session.model_changed.connect(self._update_for_state)
        self.session.timeline_changed.connect(self._update_for_state)
        self.session.given.connect(lambda line: self.statusBar().showMessage(line))
        self.session.given.connect(self._update_for_state)
        self.session.given.connect(self._show_given_settings)
        self._follow_status()

        for spec in VIEWS:
            if spec.keeps_settings:
                self._restore_view_settings(spec)
        self.resize(*DEFAULT_SIZE)
        self._size_docks()
        self._saved_geometry: QByteArray | None = None
        self._fit_pending = True  # the size is set again, and fitted to the screen, once shown
        self._restore_layout()
        self._show_title()
        self._update_for_state()
        self._lock = session_lock()  # taken when first shown: tells the next start whether this one crashed
        self._lock_checked = False
        self._close_confirmed = False
        # Closing while threads run: they are told to stop, and this timer closes the window
        # once they have ended, so the GUI thread never blocks joining them (see closeEvent).
        self._closing = QTimer(self, interval=CLOSE_POLL_MS)
        self._closing.timeout.connect(self._close_when_threads_ended)

    # -- construction ------------------------------------------------------------------

    def _add_view(self, spec: ViewSpec) -> None:
        state = {Reads.SESSION: (self.session,), Reads.LATENT: (self.latent,), Reads.RUNS: (self.runs,),
                 Reads.NOTHING: ()}[spec.reads]
        widget = spec.widget(*state)
        self.views[spec.name] = widget
        setattr(self, spec.name, widget)
        if spec.place is Place.CENTRE:
            floor = widget.minimumSizeHint()  # what its own controls need, if more
            widget.setMinimumSize(max(floor.width(), PLANE_MIN_SIZE[0]), max(floor.height(), PLANE_MIN_SIZE[1]))
            self.setCentralWidget(widget)
            return
        content: QWidget = widget
        if spec.scrolls:
            content = QScrollArea()
            content.setWidget(widget)
            content.setWidgetResizable(True)
            content.setMinimumWidth(widget.sizeHint().width() + 24)
        dock = QDockWidget(spec.title, self)
        dock.setObjectName(spec.dock_name or f"{spec.name}Dock")
        dock.setWidget(content)
        self.addDockWidget(DOCK_AREAS[spec.place], dock)
        self.docks[spec.name] = dock
        setattr(self, spec.name.removesuffix("_view").removesuffix("_plot") + "_dock", dock)

    def _arrange_docks(self) -> None:
        """Each place's views in one tab group, the first one raised; the bottom row spans
        the window's width, in two groups side by side (training and the uses on the left,
        images from the code on the right), so every tab's whole title fits at 1280x800."""
        groups = {place: [self.docks[s.name] for s in VIEWS if s.place is place] for place in Place
                  if place is not Place.CENTRE}
        left, right = groups[Place.BOTTOM_LEFT], groups[Place.BOTTOM_RIGHT]
        if left and right:
            self.splitDockWidget(left[0], right[0], Qt.Orientation.Horizontal)
        for group in groups.values():
            for dock in group[1:]:
                self.tabifyDockWidget(group[0], dock)
            if group:
                group[0].raise_()
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        for dock in self.docks.values():
            # A view turned on in the View menu comes to the front of its tab group.
            dock.toggleViewAction().toggled.connect(lambda on, d=dock: on and d.raise_())
            dock.visibilityChanged.connect(self._hide_stale_tab_bars_soon)
            dock.dockLocationChanged.connect(self._hide_stale_tab_bars_soon)
        for bar in self.findChildren(QTabBar):
            keep_whole_titles(bar)

    def _size_docks(self) -> None:
        """The default split: the columns at their widths, the bottom row at its height, its
        two tab groups sharing the width in proportion to what their titles need."""
        self.resizeDocks([self.docks["panel"], self.docks["code_view"]], [PANEL_WIDTH, CODE_WIDTH],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["loss_plot"]], [BOTTOM_HEIGHT], Qt.Orientation.Vertical)
        firsts = [next(self.docks[s.name] for s in VIEWS if s.place is place)
                  for place in (Place.BOTTOM_LEFT, Place.BOTTOM_RIGHT)]
        needs = [titles_width(self, [s.title for s in VIEWS if s.place is place])
                 for place in (Place.BOTTOM_LEFT, Place.BOTTOM_RIGHT)]
        self.resizeDocks(firsts, needs, Qt.Orientation.Horizontal)

    def childEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Qt makes a dock area's tab bars itself, and again after a dock joins a group or
        a layout is restored: each one keeps whole titles as it is made."""
        super().childEvent(event)
        if event.type() == QEvent.Type.ChildPolished and isinstance(event.child(), QTabBar):
            keep_whole_titles(event.child())

    def _hide_stale_tab_bars(self) -> None:
        hide_stale_tab_bars(self, list(self.docks.values()))

    def _hide_stale_tab_bars_soon(self) -> None:
        QTimer.singleShot(0, self, self._hide_stale_tab_bars)  # once the docks have their new geometry

    def _make_action(self, spec: ActionSpec) -> QAction:
        action = QAction(spec.text, self)
        if spec.shortcut is not None:
            action.setShortcut(QKeySequence(spec.shortcut))
        if spec.tip:
            keys = action.shortcut().toString()
            action.setToolTip(f"{spec.tip} ({keys})" if keys else spec.tip)
            action.setStatusTip(spec.tip)
        action.triggered.connect(lambda _=False, run=spec.run: run(self))
        setattr(self, spec.name, action)
        return action

    def _make_menus(self) -> None:
        for title, items in MENUS:
            menu = self.menuBar().addMenu(title)
            for item in items:
                if item == "-":
                    menu.addSeparator()
                elif item.startswith("@"):
                    self._fill_submenu(menu, item[1:])
                else:
                    menu.addAction(self.actions_by_name[item])

    def _fill_submenu(self, menu: QMenu, which: str) -> None:
        if which == "recent":
            self.recent_menu = menu.addMenu("Open &recent")
            self.recent_menu.aboutToShow.connect(self.files.fill_recent_menu)
        elif which == "export":
            self._make_export_menu(menu.addMenu("&Export"))
        elif which == "autosave":
            autosave_menu = menu.addMenu("&Autosave")
            self.autosave.fill_menu(autosave_menu)
            autosave_menu.addAction(self.restore_autosave_action)
        elif which == "docks":
            for dock in self.docks.values():
                menu.addAction(dock.toggleViewAction())

    def _make_export_menu(self, menu: QMenu) -> None:
        """Each view's declared exports, pictures first, then codes, then the dataset folder."""
        entries = [(export, getattr(self.views[spec.name], export.method)) for spec in VIEWS for export in spec.exports]
        entries.append((TEST_CODES, self.exports.export_test_codes))
        pictures = [e for e in entries if e[0].method.endswith("png")]
        for group in (pictures, [e for e in entries if e not in pictures]):
            for export, write in group:
                action = menu.addAction(export.menu_text)
                action.triggered.connect(lambda _=False, e=export, w=write: self.exports.ask(e, w))
            menu.addSeparator()
        menu.addAction(self.training_film_action)
        menu.addAction(self.generate_folder_action)
        menu.addSeparator()
        menu.addAction(self.export_model_action)

    def _make_toolbar(self) -> None:
        toolbar = QToolBar("Training", self)
        toolbar.setObjectName("trainingToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for spec in ACTIONS:
            if spec.toolbar:
                toolbar.addAction(self.actions_by_name[spec.name])
        toolbar.addSeparator()
        toolbar.addWidget(self.progress.bar)
        toolbar.addWidget(self.progress.label)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    # -- following the state -------------------------------------------------------------

    @property
    def message_box(self) -> QMessageBox | None:
        """The message or question on screen, if any."""
        return self.dialogs.current

    def start_training(self) -> None:
        self.training.start()

    def _show_given_settings(self, *_: object) -> None:
        """A model handed over from Python with its record (explorer.train/load) fills the
        training settings, as an opened file does; a user's own encoder and decoder has
        no settings of the app's to show."""
        s = self.session
        if getattr(s.view_model, "trainable", True) and s.model_config is not None and s.data_config is not None \
                and s.train_config is not None:
            self.panel.show_configs(s.model_config, s.data_config, s.train_config)

    def _update_for_state(self, *_: object) -> None:
        for spec in ACTIONS:
            if spec.enabled is not None:
                self.actions_by_name[spec.name].setEnabled(spec.enabled(self))
        self.pause_action.setText("&Resume" if self.session.state == PAUSED else "&Pause")
        self.recent_menu.setEnabled(not self.session.is_running)
        self.panel.set_running(self.session.is_running)

    def _follow_status(self) -> None:
        """Following a run: the title's mark, the actions, and one status line per version."""
        status = self.statusBar()

        def changed(path) -> None:
            self._update_for_state()
            self._show_title()
            if path is not None:
                status.showMessage(f"Following {one_line(path.name)} (training is off until File > Stop following)")
            else:
                status.showMessage("Stopped following")

        def loaded(epoch: int) -> None:
            path, s = self.follower.path, self.session
            if path is None:
                return
            status.showMessage(f"Following {one_line(path.name)}: epoch {epoch}")
            preset = s.model_config.preset if s.model_config is not None else None
            self.progress.show_opened(path.name, preset or "custom", epoch)

        self.follower.following_changed.connect(changed)
        self.follower.version_loaded.connect(loaded)
        self.follower.follow_failed.connect(status.showMessage)
        self.follower.status.connect(status.showMessage)

    def _show_title(self) -> None:
        """``name[*] - Latent Explorer``; Qt shows the ``*`` while the model is unsaved."""
        name = self.session.document.name
        if self.follower.following and name:
            name = f"{name} (following)"
        self.setWindowTitle(f"{name}[*] - {APP_NAME}" if name else APP_NAME)
        self.setWindowModified(self.session.document.has_unsaved_work)

    def _restore_view_settings(self, spec: ViewSpec) -> None:
        """A saved value a view cannot use must not stop the window: the view keeps its
        defaults and the user is told once."""
        try:
            self.views[spec.name].restore_settings(self.settings)
        except Exception as exc:  # noqa: BLE001 - any junk in the file, any reader's fault
            note = f"Saved settings of {spec.title} could not be used ({type(exc).__name__}); defaults are kept."
            self._settings_warning = f"{self._settings_warning} {note}" if self._settings_warning else note

    def _restore_layout(self) -> None:
        geometry, state = self.settings.value("window/geometry"), self.settings.value("window/state")
        if isinstance(geometry, QByteArray) and self.restoreGeometry(geometry):
            self._saved_geometry = geometry
        if isinstance(state, QByteArray):
            # Qt refuses a damaged state, or one of another LAYOUT_VERSION, and keeps the layout.
            self.restoreState(state, LAYOUT_VERSION)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        # Until the window is first shown, tabbed docks count their full title widths in the
        # minimum size, and 1280 px got widened to ~1400 (a saved 1280 px to 1723 px); once
        # shown they elide: set the size again, then fit it to the screen it landed on, and
        # once more when the window manager has framed it.
        if self._fit_pending:
            self._fit_pending = False
            if self._saved_geometry is not None:
                self.restoreGeometry(self._saved_geometry)
            else:
                self.resize(size_within(QSize(*DEFAULT_SIZE), self))
            self._fit_to_screen()
            QTimer.singleShot(0, self, self._fit_to_screen)
        QTimer.singleShot(0, self, self._hide_stale_tab_bars)  # once the docks have their geometry
        if self._settings_warning:
            message, self._settings_warning = self._settings_warning, None
            QTimer.singleShot(0, lambda: self.dialogs.message(Icon.Warning, "Settings reset", message))
        if not self._lock.held and not self._lock_checked:
            self._lock_checked = True
            if self._lock.acquire().crashed:
                QTimer.singleShot(0, self.autosave.offer_after_crash)

    def _fit_to_screen(self) -> None:
        fit_to_screen(self)

    # -- closing -------------------------------------------------------------------------

    def close_without_asking(self) -> bool:
        """Close even with unsaved work (it is still autosaved): for scripted runs."""
        self._close_confirmed = True
        return self.close()

    def _threads_ended(self) -> bool:
        return self.session.threads_ended and not self.runs.sweeping

    def _close_when_threads_ended(self) -> None:
        if self._threads_ended():
            self._closing.stop()
            self.close()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Ask about unsaved work; then stop every thread, autosave, keep the layout.

        Threads still running are told to stop and the close waits for them on a timer, the
        window painting meanwhile: joining them here held the GUI thread for a training
        step, a task's decode and the sweep's save (364 ms on a busy machine)."""
        if not self._close_confirmed and self.session.document.has_unsaved_work and self.session.has_model:
            event.ignore()
            self.files.then_if_saved_or_discarded("quitting", self.close_without_asking)
            return
        if not self._threads_ended():
            event.ignore()
            if not self._closing.isActive():
                self._close_confirmed = True  # asked already: the second close must not ask again
                self.statusBar().showMessage("Stopping training..." if self.session.is_running
                                             else "Finishing background work...")
                self.follower.stop()
                self.latent.shutdown()
                self.runs.stop_sweep()
                self.session.begin_shutdown()
                self._closing.start()
            return
        self.follower.stop()
        self.latent.shutdown()
        self.runs.shutdown()
        self.session.shutdown()
        self.session.autosave_on_close()
        for spec in VIEWS:
            if spec.keeps_settings:
                try:
                    self.views[spec.name].save_settings(self.settings)
                except UserError:
                    pass  # a half-typed setting is not worth refusing to close over
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()
        self._lock.release()  # a normal close: nothing to offer next time
        super().closeEvent(event)
