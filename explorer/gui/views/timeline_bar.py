"""The scrub bar under the latent plane: replay a run's training timeline.

The slider's positions are the recorded epoch ends, then "Live" (the current model) at the
right end. Moving it, playing (Space on the bar, or the Play button) or stepping with the
arrow keys shows that moment: the plane's points, its axes (Procrustes-aligned from epoch to
epoch, so the replay neither jumps nor flips) and every decoded image follow the stored
snapshot. While a run trains the bar grows an epoch at a time; left on Live it follows the
run, scrubbed back it stays where it was put.

With the plane on the neighbour map, an epoch replays on the map as it stood then when the
map was recorded while the run trained (``LatentState.moment_on_map``); otherwise on that
epoch's PCA plane, and the readout says so rather than switching silently.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from explorer.display import plural
from explorer.gui.state.latent_state import LatentState

SPEEDS = ((1, "1 epoch/s"), (2, "2 epochs/s"), (4, "4 epochs/s"), (8, "8 epochs/s"))
DEFAULT_SPEED = 2


class TimelineBar(QWidget):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.session = state.session
        self.play_button = QPushButton("Play", objectName="timelinePlay", checkable=True)
        self.play_button.setToolTip("Replay the run from the chosen epoch (Space)")
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName="timelineSlider")
        self.slider.setToolTip("Scrub through the run: each step is an epoch end; the right end is the live model")
        self.slider.setPageStep(1)
        self.speed = QComboBox(objectName="timelineSpeed")
        for fps, label in SPEEDS:
            self.speed.addItem(label, fps)
        self.speed.setCurrentIndex([fps for fps, _ in SPEEDS].index(DEFAULT_SPEED))
        self.speed.setToolTip("Replay speed")
        self.readout = QLabel("", objectName="timelineReadout")
        self.readout.setMinimumWidth(60)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Timeline:"))
        layout.addWidget(self.play_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.speed)
        layout.addWidget(self.readout)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)
        self.slider.valueChanged.connect(self._on_slider)
        self.play_button.toggled.connect(self._on_play)
        self.speed.currentIndexChanged.connect(self._on_speed)
        self.session.timeline_changed.connect(self._on_timeline_changed)
        state.moment_changed.connect(self._on_moment_changed)
        state.axes_changed.connect(self._update_readout)  # the plane's axes chosen while replaying
        self._on_timeline_changed()

    # -- queries ---------------------------------------------------------------------------

    @property
    def frames(self) -> int:
        timeline = self.session.timeline
        return len(timeline.frames) if timeline is not None else 0

    @property
    def at_live(self) -> bool:
        return self.slider.value() >= self.frames

    # -- reacting --------------------------------------------------------------------------

    def _on_timeline_changed(self) -> None:
        n = self.frames
        was_live = self.at_live or self.state.moment is None
        self.slider.blockSignals(True)
        self.slider.setRange(0, n)
        if was_live:
            self.slider.setValue(n)
        elif self.state.moment is not None:
            self.slider.setValue(min(self.state.moment, n))
        self.slider.blockSignals(False)
        self.setEnabled(n > 0)
        if n == 0:
            self._stop()
        self._update_readout()

    def _on_moment_changed(self, moment: object) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self.frames if moment is None else int(moment))
        self.slider.blockSignals(False)
        self._update_readout()

    def _on_slider(self, value: int) -> None:
        self.show_frame(None if value >= self.frames else value)

    def show_frame(self, index: int | None) -> None:
        """Show recorded epoch ``index`` (0 is the first), or the live model for None."""
        self.state.show_moment(index)
        self._update_readout()

    def _update_readout(self) -> None:
        timeline, n = self.session.timeline, self.frames
        if n == 0 and self.session.view_model is None:
            self.readout.setText("")
            self.readout.setToolTip("A run records its timeline epoch by epoch; replay it here")
            return
        if n == 0 and self.session.timeline_damaged:  # stored, then dropped on load: not "never recorded"
            self.readout.setText("damaged")
            self.readout.setToolTip("This file's training timeline is damaged and was dropped on load; the model is "
                                    "fine, and a new run records a new timeline")
            return
        if n == 0:
            self.readout.setText("not recorded")
            self.readout.setToolTip("This model has no training timeline (trained before timelines existed, or "
                                    "with the timeline off); a new run records one")
            return
        if self.at_live or timeline is None:
            self.readout.setText("Live")
            self.readout.setToolTip("The current model")
            return
        frame = timeline.frames[self.slider.value()]
        total = timeline.frames[-1].epoch
        loss = frame.losses.get("test_loss")
        text = f"Epoch {frame.epoch}/{total}" + (f" · test loss {loss:.2f}" if loss is not None else "")
        tip = f"Step {frame.global_step:,}; {plural(len(timeline.frames), 'epoch')} recorded"
        on_map = self.state.moment_on_map
        if on_map is True:
            text += " · map"
            tip += "; the neighbour map as it placed this epoch's codes while the run trained"
        elif on_map is False:
            text += " · PCA (no map recorded)"
            tip += ("; the neighbour map of this epoch was not recorded (the map records while a run trains with "
                    "the plane on it), so the epoch shows on its own principal axes")
        self.readout.setText(text)
        self.readout.setToolTip(tip)

    # -- playing ---------------------------------------------------------------------------

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Space:
            self.play_button.toggle()
            event.accept()
            return
        super().keyPressEvent(event)

    def _on_play(self, playing: bool) -> None:
        if not playing:
            self._stop()
            return
        if self.frames == 0:
            self.play_button.setChecked(False)
            return
        if self.at_live or self.slider.value() >= self.frames - 1:
            self.slider.setValue(0)  # from the start
        self.play_button.setText("Pause")
        self._timer.start(int(1000 / self.speed.currentData()))

    def _on_speed(self) -> None:
        if self._timer.isActive():
            self._timer.start(int(1000 / self.speed.currentData()))

    def _advance(self) -> None:
        if self.slider.value() >= self.frames - 1:
            self._stop()  # the last recorded epoch stays on screen
            return
        self.slider.setValue(self.slider.value() + 1)

    def _stop(self) -> None:
        self._timer.stop()
        if self.play_button.isChecked():
            self.play_button.blockSignals(True)
            self.play_button.setChecked(False)
            self.play_button.blockSignals(False)
        self.play_button.setText("Play")
