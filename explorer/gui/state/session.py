"""The GUI's state: the current run, the model the views draw from, its data and history.

Views take a TrainingSession, listen to its signals and change it only through its
methods. It owns the worker thread's whole life: start, steer, stop, and join on close.
The views never touch the training model: every snapshot is loaded into the session's own
CPU copy, so drawing never waits on training and training never waits on drawing.

The training worker is a plain Python thread that never touches Qt: it puts frozen items
in a queue, and a timer on the GUI thread drains it and emits this object's signals. (Qt
signals emitted from worker threads crashed PySide now and then; see runtime/worker.py.)
Every other piece of background work (data for an opened checkpoint, the views' encodes
and fits) goes through ``self.tasks``, the one task runner, which drops the results of
superseded requests and of models that are gone. Which file the model belongs to, and
whether it has unsaved work, is ``self.document``'s business.
"""

from __future__ import annotations

import os
import queue
from enum import Enum
from pathlib import Path

import torch
from PySide6.QtCore import QObject, QTimer, Signal

from explorer.analysis.directions import MAX_DIRECTIONS, Direction
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data import ImageData
from explorer.data.folder import relative_name
from explorer.display import one_line, plural
from explorer.errors import UserError
from explorer.evaluation.record import Evaluation, records_from_json, with_record
from explorer.gui.state.document import Document
from explorer.gui.state.tasks import Tasks
from explorer.models import Autoencoder, build_model
from explorer.models.external import CANNOT
from explorer.runtime.recovery import AutosaveStore
from explorer.runtime.threads import warm_view_imports
from explorer.runtime.worker import AutosaveFailed, DataReady, Failed, RunRequest, TrainingWorker, WorkerDone
from explorer.training.control import TrainingControl
from explorer.training.events import (
    EpochEnd,
    Notice,
    Paused,
    Resumed,
    RunResult,
    RunStarted,
    SettingChanged,
    Snapshot,
    StepLoss,
)
from explorer.training.history import History
from explorer.training.timeline import Timeline, TimelineFrame


class RunState(str, Enum):
    """What the session is doing. A ``str`` enum, so it compares equal to its value."""

    IDLE = "idle"
    LOADING = "loading"
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"


IDLE, LOADING, TRAINING, PAUSED, STOPPING = RunState
RUNNING_STATES = frozenset({LOADING, TRAINING, PAUSED, STOPPING})
POLL_MS = 15


class TrainingSession(QObject):
    state_changed = Signal(object)  # RunState
    run_started = Signal(object)  # RunStarted
    step = Signal(object)  # StepLoss
    epoch = Signal(object)  # EpochEnd
    run_finished = Signal(object)  # RunResult
    error = Signal(str)
    warning = Signal(str)
    notice = Signal(str)  # the engine's Notice: said in the status line, never in a dialog over the run
    data_changed = Signal()
    model_changed = Signal()  # new weights in view_model
    history_reset = Signal()
    opened = Signal(object)  # Path: a checkpoint is now the current model
    open_failed = Signal(object, str)  # Path, why: the file was refused; nothing changed
    setting_changed = Signal(object)  # SettingChanged
    evaluations_changed = Signal()  # the current model's evaluation records changed
    given = Signal(str)  # a model handed over from Python is shown: one line saying what it can do
    timeline_changed = Signal()  # a frame was added to the timeline, or another timeline came
    directions_changed = Signal()  # a named direction was added, removed or renamed, or another model came

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Torch's thread count is per OS thread. The GUI thread's decodes are tiny, and a
        # second OpenMP team competing with the trainer's made each one take ~8 ms instead
        # of ~1 ms on 2 cores; one thread here leaves the cores to training.
        torch.set_num_threads(1)
        self.state = IDLE
        self.model_config: ModelConfig | None = None
        self.data_config: DataConfig | None = None
        self.train_config: TrainConfig | None = None
        self.data: ImageData | None = None
        self.view_model: Autoencoder | None = None
        self.history = History()
        # The current model's evaluation records (explorer.evaluation): saved with it, and
        # read back from an opened checkpoint so its numbers show without recomputing.
        self.evaluations: list[Evaluation] = []
        # The run's training timeline (explorer.training.timeline): a frame per epoch end,
        # saved with the model and read back from a checkpoint, for the replay bar.
        self.timeline: Timeline | None = None
        # The opened file held a timeline that was damaged and dropped on load: the replay bar
        # says so, rather than "trained before timelines existed" (open_notes says why).
        self.timeline_damaged = False
        # Named directions in the code space (explorer.analysis.directions): the user's own,
        # saved with the model and read back from its file.
        self.directions: list[Direction] = []
        # Entries of the opened file that this version does not know: written back on Save.
        self.extra_metadata: dict[str, str] = {}
        self.open_notes: tuple[str, ...] = ()
        self.document = Document(self)
        self.tasks = Tasks(self)
        self.tasks.failed.connect(lambda label, message: self.warning.emit(f"{label} failed: {message}"))
        # Autosave: None is off; each new run gets its own file in the store.
        self.autosave_store: AutosaveStore | None = None
        self.autosave_every = 1  # epochs
        self._run_autosave: Path | None = None  # the current run's autosave file
        self.last_result: RunResult | None = None
        self.device = "cpu"
        self._control: TrainingControl | None = None
        self._worker: TrainingWorker | None = None
        self._pending_run: tuple[DataConfig, TrainConfig, bool] | None = None
        self._closing = False
        self.following: Path | None = None  # set by a RunFollower: read-only, training is refused
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(POLL_MS)
        self._poll_timer.timeout.connect(self.poll)

    # -- queries -----------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def has_model(self) -> bool:
        return self.view_model is not None

    @property
    def checkpoint_path(self) -> Path | None:
        """The file the current model belongs to (None: untitled)."""
        return self.document.path

    @property
    def dirty(self) -> bool:
        """Whether the current model has work that no file holds."""
        return self.document.has_unsaved_work

    @property
    def autosave_path(self) -> Path | None:
        """Where the current (or next) run is autosaved; None when autosave is off."""
        if self.autosave_store is None:
            return None
        return self._run_autosave

    def adopt_autosave(self, path: Path) -> None:
        """The opened model is that autosave: continuing it keeps writing there."""
        self._run_autosave = path

    def _autosave_for(self, continuing: bool) -> Path | None:
        if self.autosave_store is None:
            return None
        if not (continuing and self._run_autosave is not None):
            self._run_autosave = self.autosave_store.new_path()
            self.autosave_store.prune(keep_also=self._run_autosave)
        return self._run_autosave

    # -- training ----------------------------------------------------------------------

    def start(self, model_config: ModelConfig, data_config: DataConfig, train_config: TrainConfig,
              continue_training: bool = False) -> None:
        """Start a run in the worker thread. ``continue_training`` keeps the current weights
        and history (the model's settings must be unchanged)."""
        if self.is_running or self.following is not None:
            return  # following a run is read-only: stop following first
        train_config = replace(train_config, snapshot_interval_s=train_config.snapshot_interval_s or 0.5)
        continuing = continue_training and self.view_model is not None
        if continuing and not getattr(self.view_model, "trainable", True):
            self.warning.emit(CANNOT["train"])
            return
        autosave = self._autosave_for(continuing)
        if continuing:
            assert self.view_model is not None
            request = RunRequest(model_config, data_config, train_config,
                                 initial_state={k: v.clone() for k, v in self.view_model.state_dict().items()},
                                 start_epoch=self.history.last_epoch, start_step=self.history.last_step,
                                 autosave_path=autosave, autosave_every=self.autosave_every,
                                 history=self.history.to_dict(),
                                 timeline=self.timeline.copy() if self.timeline is not None else None)
        else:
            request = RunRequest(model_config, data_config, train_config, autosave_path=autosave,
                                 autosave_every=self.autosave_every)
        # The current model, its configs, curves and document stay as they are until the
        # run's model exists (DataReady): a run whose data fails to load changes nothing.
        self._pending_run = (data_config, train_config, continuing)
        self.last_result = None
        self._control = TrainingControl()
        self._worker = TrainingWorker(request, self._control)
        self._set_state(LOADING)
        self._worker.start()
        self._poll_timer.start()

    def pause(self) -> None:
        if self._control is not None and self.state == TRAINING:
            self._control.pause()

    def resume(self) -> None:
        if self._control is not None and self.state == PAUSED:
            self._control.resume()

    def stop(self) -> None:
        if self._control is not None and self.is_running:
            self._control.stop()
            self._set_state(STOPPING)

    def set_lr(self, value: float) -> None:
        if self._control is not None and self.is_running:
            self._control.set_lr(value)

    def lend_cores(self, cores: int) -> None:
        """Let the run train on ``cores`` fewer cores (at least one) while other long work
        runs beside it, 0 to give them back. Three busy threads on two cores made both
        crawl: the run's OpenMP team waits at every barrier for the member the evaluation
        pushed off its core (a 10,000-image evaluation beside a vae run: the run fell from
        21,000 to 2,800 samples/s)."""
        if self._control is not None and self.is_running:
            total = os.cpu_count() or 1
            self._control.set_threads(max(1, total - cores) if cores > 0 else 0)

    def set_beta(self, value: float) -> None:
        if self._control is not None and self.is_running:
            self._control.set_beta(value)

    def begin_shutdown(self) -> None:
        """The window is closing: stop the run and cancel the tasks without waiting on this
        (the GUI) thread; ``threads_ended`` says when ``shutdown`` will not block."""
        self._closing = True
        if self._control is not None:
            self._control.stop()
        self.tasks.close()

    @property
    def threads_ended(self) -> bool:
        return self.tasks.idle and (self._worker is None or not self._worker.thread.is_alive())

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Stop any run and join every thread (window closing). True if all joined."""
        self._closing = True
        if self._control is not None:
            self._control.stop()
        tasks_joined = self.tasks.shutdown(timeout_ms / 1000)
        if self._worker is not None:
            self._worker.thread.join(timeout_ms / 1000)
        worker_alive = self._worker is not None and self._worker.thread.is_alive()
        self.poll()  # deliver what they left, so the state ends consistent
        return tasks_joined and not worker_alive

    # -- files -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Save the model to ``path``, which becomes the document's file."""
        path = self._write(Path(path))
        self.document.saved(path)
        return path

    def autosave_on_close(self) -> None:
        """Keep unsaved work in the autosave store when the window closes (never fails)."""
        if not (self.dirty and self.has_model and self.autosave_store is not None):
            return
        path = self._run_autosave or self.autosave_store.new_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write(path)
        except (UserError, OSError):
            pass  # closing must not fail; the per-epoch autosave is still there

    def is_followed(self, path: str | Path | None) -> bool:
        """Whether ``path`` is the file a run being followed keeps rewriting: the window
        never writes there (the other process's newer version would be lost)."""
        if path is None or self.following is None:
            return False
        try:
            return Path(path).resolve() == self.following.resolve() or os.path.samefile(path, self.following)
        except OSError:
            return False

    @property
    def writable_path(self) -> Path | None:
        """The model's own file when the window may write to it (None: untitled, or followed)."""
        path = self.document.path
        return None if self.is_followed(path) else path

    def _write(self, path: Path) -> Path:
        from explorer.training.checkpoint import save_checkpoint

        if self.view_model is None or self.model_config is None or self.data_config is None:
            raise UserError("there is no model to save yet: train one or open a checkpoint first")
        if not getattr(self.view_model, "storable", True):
            raise UserError(CANNOT["save"])
        if self.is_followed(path):
            raise UserError(f"{one_line(path.name)} is the run being followed, which its training process keeps "
                            "rewriting; save under another name")
        class_names = self.data.class_names if self.data is not None else ()
        save_checkpoint(path, self.view_model, self.data_config, self.train_config or TrainConfig(),
                        self.history, class_names, evaluations=[r.to_dict() for r in self.evaluations],
                        timeline=self.timeline, extra_metadata=self.extra_metadata, directions=self.directions)
        return path

    # -- named directions ---------------------------------------------------------------

    def add_direction(self, direction: Direction) -> None:
        """Keep ``direction`` with the current model (unsaved work until the next Save)."""
        if self.model_config is None or direction.dim != self.model_config.latent_dim:
            raise UserError("that direction is not in the current model's code space")
        if len(self.directions) >= MAX_DIRECTIONS:
            raise UserError(f"a model keeps at most {MAX_DIRECTIONS} directions: remove one first")
        self.directions.append(direction)
        self._directions_edited()

    def remove_direction(self, index: int) -> None:
        if 0 <= index < len(self.directions):
            del self.directions[index]
            self._directions_edited()

    def rename_direction(self, index: int, name: str) -> None:
        if not 0 <= index < len(self.directions) or not name.strip():
            return  # a blank name keeps the old one
        renamed = self.directions[index].renamed(name)
        if renamed.name != self.directions[index].name:
            self.directions[index] = renamed
            self._directions_edited()

    def _directions_edited(self) -> None:
        self.document.mark_modified()
        self.directions_changed.emit()

    def _set_directions(self, directions) -> None:
        """Another model's directions (none for a new run): nothing unsaved about them."""
        self.directions = list(directions)
        self.directions_changed.emit()

    def add_evaluation(self, record: Evaluation, stored: bool = False) -> None:
        """Keep ``record`` with the current model. ``stored``: it is already in the model's
        file (written by the task), so nothing new is left to save; otherwise it is."""
        self.evaluations = with_record(self.evaluations, record)
        if not stored:
            self.document.mark_modified()
        self.evaluations_changed.emit()

    def current_evaluation(self) -> Evaluation | None:
        """The record that measures the current weights on their own data, if any."""
        if self.data_config is None:
            return None
        for record in reversed(self.evaluations):
            if (record.dataset, record.binarize, record.step) == (
                    self.data_config.dataset, self.data_config.binarize, self.history.last_step):
                return record
        return None

    def open(self, path: str | Path) -> None:
        """Read, check and build a checkpoint off the GUI thread (a large or hostile file
        took over a second); ``opened`` or ``open_failed`` follows. Its data loads after."""
        from explorer.training.checkpoint import load_checkpoint

        if self.is_running:
            raise UserError("stop the current training run before opening a checkpoint")
        path = Path(path)

        def load(_) -> tuple[object, Autoencoder]:
            ckpt = load_checkpoint(path)
            return ckpt, ckpt.build_model()

        self.tasks.submit("open", load, label=f"Opening {one_line(path.name)}", model_bound=False,
                          on_done=lambda loaded: self._install_opened(path, *loaded),
                          on_failed=lambda message: self.open_failed.emit(path, message))

    def _install_opened(self, path: Path, ckpt, model: Autoencoder) -> None:
        if self.is_running:  # a run started while the file was read: it wins
            self.open_failed.emit(path, "a training run started while the file was read; stop it and open again")
            return
        self.model_config, self.data_config, self.train_config = (ckpt.model_config, ckpt.data_config,
                                                                  ckpt.train_config)
        self.view_model = model
        self.history = ckpt.history
        self.evaluations = records_from_json(ckpt.evaluations)
        self.timeline = ckpt.timeline
        self.timeline_damaged = ckpt.timeline_damaged
        self.extra_metadata = dict(ckpt.extra_metadata)
        self.open_notes = tuple(ckpt.notes)  # what of the file was left out, said once on open
        self._set_directions(ckpt.directions)
        self.document.opened(path)
        self._run_autosave = None  # continuing an opened model starts a new autosave file
        self.data = None
        self.tasks.invalidate()
        self.history_reset.emit()
        self.model_changed.emit()
        self.timeline_changed.emit()
        self.opened.emit(path)
        self._load_data_in_background(ckpt.data_config, ckpt.model_config)

    def install_given(self, model: Autoencoder, data: ImageData | None, *, data_config: DataConfig | None = None,
                      train_config: TrainConfig | None = None, history: History | None = None,
                      path: Path | None = None, class_names: tuple[str, ...] = (),
                      directions: tuple[Direction, ...] | list[Direction] = ()) -> None:
        """A model handed over from Python (explorer.view): a model object with its record,
        or a user's own encoder and decoder (explorer.models.external). ``data`` shown at
        once; None loads ``data_config``'s in the background as for an opened file."""
        if self.is_running:
            raise UserError("stop the current training run before showing another model")
        self.model_config = model.config
        self.data_config = data_config or DataConfig(dataset=data.name if data is not None else "mnist")
        self.train_config = train_config or TrainConfig()
        self.view_model = model
        self.history = history or History(part_names=tuple(model.part_names))
        self.evaluations = []
        self.timeline = None
        self.extra_metadata = {}
        self.open_notes = ()
        self._set_directions(d for d in directions if d.dim == model.config.latent_dim)
        self.document.given(path)
        self._run_autosave = None
        self.data = None
        self.tasks.invalidate()
        self.history_reset.emit()
        self.evaluations_changed.emit()
        self.model_changed.emit()
        self.timeline_changed.emit()
        if data is not None:
            self.data = data
            self.data_changed.emit()
        else:
            self._load_data_in_background(self.data_config, model.config)
        if getattr(model, "trainable", True):
            self.given.emit("Showing the model given from Python")
        else:
            self.given.emit("Showing your encoder and decoder from Python (training, saving and class "
                            "choice are off for them)")

    # -- following a run (gui/state/follow.py) -------------------------------------------

    def install_followed(self, path: Path, ckpt, model: Autoencoder) -> bool:
        """A new version of the followed file ``path``. The first one (or one with another
        architecture) is installed as an opened file; a later one of the same model puts its
        weights into the same view model, like a training snapshot, and replaces the curves,
        timeline and evaluations. The data stays unless its config changed. Incoming versions
        never mark the document modified. False (nothing changed) while a run trains."""
        if self.is_running:
            return False
        same = (self.view_model is not None and self.model_config is not None and self.document.path == path
                and replace(self.model_config, beta=0.0) == replace(ckpt.model_config, beta=0.0))
        if not same:
            self._install_opened(path, ckpt, model)
            return True
        assert self.view_model is not None
        with torch.no_grad():
            self.view_model.load_state_dict(model.state_dict())
        self.view_model.beta = ckpt.model_config.beta
        # The data in hand (or in flight) serves the new version unless its config changed; a
        # load in flight is asked again only if it would drop its result (another beta).
        reload_data = ckpt.data_config != self.data_config or (
            self.data is None and ckpt.model_config != self.model_config)
        self.model_config, self.data_config, self.train_config = (ckpt.model_config, ckpt.data_config,
                                                                  ckpt.train_config)
        self.history = ckpt.history
        self.evaluations = records_from_json(ckpt.evaluations)
        self.timeline = ckpt.timeline
        self.timeline_damaged = ckpt.timeline_damaged
        self.extra_metadata = dict(ckpt.extra_metadata)
        self._set_directions(ckpt.directions)
        self.history_reset.emit()
        self.evaluations_changed.emit()
        self.model_changed.emit()
        self.timeline_changed.emit()
        if reload_data:
            self._load_data_in_background(ckpt.data_config, ckpt.model_config)
        return True

    def _load_data_in_background(self, data_config: DataConfig, model_config: ModelConfig) -> None:
        from explorer.data import load_dataset

        def load(_) -> tuple[ModelConfig, ImageData]:
            warm_view_imports()
            return model_config, load_dataset(data_config)

        self.tasks.submit("data", load,
                          label=f"Loading {data_config.dataset}", on_done=self._on_data_loaded,
                          on_failed=self._on_data_load_failed)

    def _on_data_loaded(self, result: tuple[ModelConfig, ImageData]) -> None:
        model_config, data = result
        if self.model_config != model_config or self.is_running:
            return  # another model was opened or trained meanwhile
        if data.image_shape != model_config.image_shape:
            self.warning.emit(f"The dataset {data.name} now has images of shape {data.image_shape}; "
                              f"the model expects {model_config.image_shape}.")
            return
        self.data = data
        self.data_changed.emit()

    def _on_data_load_failed(self, message: str) -> None:
        self.warning.emit(f"Could not load the model's data: {message}")

    # -- the GUI thread's side of the queues ---------------------------------------------

    def poll(self) -> None:
        """Deliver everything the training worker produced (runs from the timer)."""
        worker = self._worker
        items: list[object] = []
        while worker is not None:
            try:
                items.append(worker.outbox.get_nowait())
            except queue.Empty:
                break
        # Only the newest of several queued snapshots is worth decoding from.
        last_snapshot = max((i for i, item in enumerate(items) if isinstance(item, Snapshot)), default=-1)
        for i, item in enumerate(items):
            if isinstance(item, Snapshot) and i != last_snapshot:
                continue
            self._dispatch(item)
            if isinstance(item, WorkerDone) and worker is not None:
                worker.thread.join()
                self._worker = None
                self._control = None
                self._set_state(IDLE)
        if self._worker is None:
            self._poll_timer.stop()

    def _dispatch(self, item: object) -> None:
        if isinstance(item, StepLoss):
            self._on_step(item)
        elif isinstance(item, Snapshot):
            self._on_snapshot(item)
        elif isinstance(item, EpochEnd):
            self._on_epoch(item)
        elif isinstance(item, TimelineFrame):
            if self.timeline is not None:
                self.timeline.record(item)
                self.timeline_changed.emit()
        elif isinstance(item, DataReady):
            self._on_data_ready(item)
        elif isinstance(item, RunStarted):
            self._on_started(item)
        elif isinstance(item, Paused):
            self._on_paused()
        elif isinstance(item, Resumed):
            self._on_resumed()
        elif isinstance(item, SettingChanged):
            self.setting_changed.emit(item)
        elif isinstance(item, RunResult):
            self._on_finished(item)
        elif isinstance(item, Failed):
            self.error.emit(item.message)
        elif isinstance(item, Notice):
            self.notice.emit(item.message)
        elif isinstance(item, AutosaveFailed):
            self.warning.emit(f"Autosave failed: {item.message}")

    def _on_data_ready(self, ready: DataReady) -> None:
        assert self._pending_run is not None
        self.data_config, self.train_config, continuing = self._pending_run
        self._pending_run = None
        self.data = ready.data
        self.model_config = ready.model_config
        model = build_model(ready.model_config, check=False)  # the worker's model was checked
        model.load_state_dict(ready.initial_state)
        model.eval()
        self.view_model = model
        self.tasks.invalidate()  # a new model: what the views computed for the old one is void
        if not continuing:  # a new, untitled model with curves that name its own loss terms
            self.history = History(part_names=tuple(model.part_names))
            self.evaluations = []
            self.extra_metadata = {}
            self._set_directions(())
            self.evaluations_changed.emit()
            self.document.new_run()
            self.history_reset.emit()
        # A new run records from scratch; a continued one goes on with the timeline it had
        # (Timeline.for_data starts afresh when the points no longer match the data).
        self.timeline = Timeline.for_data(ready.data, previous=self.timeline if continuing else None)
        self.timeline_damaged = False
        self.timeline_changed.emit()
        if ready.skipped:
            folder = self.data_config.dataset if self.data_config is not None else None
            names = "\n".join(f"{one_line(relative_name(n, folder))}: {one_line(why)}"
                              for n, why in ready.skipped[:10])
            more = f"\n... and {len(ready.skipped) - 10} more" if len(ready.skipped) > 10 else ""
            self.warning.emit(f"Skipped {plural(len(ready.skipped), 'entry')} that could not be used:\n{names}{more}")
        for note in ready.notes:
            self.warning.emit(one_line(note, limit=400))
        self.data_changed.emit()
        self.model_changed.emit()

    def _on_started(self, event: RunStarted) -> None:
        self.device = event.device
        self._set_state(TRAINING)
        self.run_started.emit(event)

    def _on_step(self, event: StepLoss) -> None:
        self.document.mark_modified()  # a step changed the weights: there is work to lose
        self.history.record(event)
        if self.view_model is not None:
            self.view_model.beta = event.beta
        self.step.emit(event)

    def _on_epoch(self, event: EpochEnd) -> None:
        self.history.record(event)
        self.epoch.emit(event)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        if self.view_model is None:
            return
        with torch.no_grad():
            self.view_model.load_state_dict(snapshot.state_dict)
        self.document.mark_modified()
        self.model_changed.emit()

    def _on_paused(self) -> None:
        if self.state != STOPPING:
            self._set_state(PAUSED)

    def _on_resumed(self) -> None:
        if self.state != STOPPING:
            self._set_state(TRAINING)

    def _on_finished(self, result: RunResult) -> None:
        self.last_result = result
        if self.model_config is not None:
            self.model_config = replace(self.model_config, beta=result.beta)
        self.run_finished.emit(result)

    def _set_state(self, state: RunState) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
