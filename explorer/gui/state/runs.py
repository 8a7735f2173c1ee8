"""Runs side by side: 2 to 4 models on the same data, one linked cursor.

Runs come from saved checkpoints (one by one, or a sweep's folder) or from a sweep trained
in the window (explorer.training.sweep: runs of one MLP architecture train together in one
batched step). Every run keeps its own plane (its codes of one shared, seeded subset of the
test images; principal axes for codes wider than 2-D), its model for decoding and its loss
per epoch. One code is shared: moving the cursor in any plane lifts the point to a full
code through that plane, and every model of that latent size decodes the same code (each
plane shows where that code falls on it). One picked test image is highlighted in every
plane.

Encoding runs through the session's task runner; a sweep trains in a plain thread that
shares nothing with Qt but a queue, drained by a timer. A sweep saves each group's
checkpoints into the autosave folder as soon as the group ends (and a stopped group as
it is), so closing the window never loses its runs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, QTimer, Signal

from explorer.analysis.latents import encode_images, pick_subset
from explorer.analysis.manifold import decode_codes
from explorer.analysis.projection import PlaneAxes, aligned_plane, pca_axes, raw_axes
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data import ImageData
from explorer.display import one_line
from explorer.errors import UserError, describe_failure
from explorer.gui.state.session import TrainingSession
from explorer.models import Autoencoder, build_model
from explorer.paths import data_dir
from explorer.runtime.threads import ModelCopy
from explorer.training.control import TrainingControl

MAX_RUNS = 4
PLANE_POINTS = 2000
ENCODE_INTERVAL_S = 1.0
POLL_MS = 30


@dataclass
class Run:
    """One model beside the others. ``epochs`` holds (epoch, test loss) pairs for the overlay."""

    name: str
    model: Autoencoder
    data_config: DataConfig
    path: Path | None = None
    coords: np.ndarray | None = None  # (N, 2) the shared subset on this run's plane
    axes: PlaneAxes | None = None
    epochs: list[tuple[int, float]] = field(default_factory=list)
    status: str = ""

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.latent_dim)


@dataclass(frozen=True)
class _Encoded:
    name: str
    generation: int
    coords: np.ndarray
    axes: PlaneAxes


def _encode(copy: ModelCopy, images: torch.Tensor, labels: torch.Tensor | None, name: str,
            generation: int, shown: tuple[np.ndarray, PlaneAxes] | None = None) -> _Encoded:
    """The run's codes of the shared subset on its plane; a refit of its principal axes is
    turned to agree with the plane ``shown`` (the subset's codes and the axes on screen),
    so a training run's plane never mirror-flips between encodes."""
    model = copy.build()
    means, _ = encode_images(model, images, labels if model.is_conditional else None)
    codes = means.numpy().astype(np.float64)
    if codes.shape[1] > 2:
        axes = pca_axes(codes)
        if shown is not None:
            axes = aligned_plane(axes, codes, shown[1], shown[0])
    else:
        axes = raw_axes(codes.shape[1])
    return _Encoded(name, generation, axes.project(codes), axes)


def _load_run(path: Path) -> tuple[Run, object]:
    from explorer.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    run = Run(name=path.stem, model=checkpoint.build_model(), data_config=checkpoint.data_config, path=path)
    run.epochs = [(int(e["epoch"]), float(e["test"]["loss"])) for e in checkpoint.history.epochs
                  if isinstance(e.get("test"), dict) and "loss" in e["test"]]
    return run, checkpoint


class RunsState(QObject):
    runs_changed = Signal()  # a run came or went
    coords_changed = Signal(str)  # a run's plane was (re)encoded: its name
    losses_changed = Signal()
    code_changed = Signal()  # the shared cursor moved
    picked_changed = Signal(object)  # the highlighted test image (index) or None
    sweep_changed = Signal(str)  # the sweep's state, in words ("" when none runs)

    def __init__(self, session: TrainingSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runs: list[Run] = []
        self.data: ImageData | None = None
        self.indices: np.ndarray | None = None  # the shared subset of the test split
        self.code: np.ndarray | None = None
        self.picked: int | None = None
        self.generation = 0
        self._last_encode: dict[str, float] = {}
        self._sweep: _SweepThread | None = None
        # Where a sweep started here takes its model, data and training settings from (the
        # window's training panel's configs(); set by the window).
        self.settings_source: Callable[[], tuple[ModelConfig, DataConfig, TrainConfig]] | None = None
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._poll)

    # -- queries ---------------------------------------------------------------------------

    @property
    def labels(self) -> np.ndarray | None:
        if self.data is None or self.data.test_labels is None or self.indices is None:
            return None
        return self.data.test_labels[torch.from_numpy(self.indices)].numpy()

    @property
    def sweeping(self) -> bool:
        return self._sweep is not None

    def run(self, name: str) -> Run | None:
        return next((r for r in self.runs if r.name == name), None)

    def decode(self, run: Run) -> np.ndarray | None:
        """The shared code decoded by ``run``'s model (None when its latent size differs)."""
        if self.code is None or self.code.shape[0] != run.latent_dim:
            return None
        label = 0 if run.model.is_conditional else None
        return decode_codes(run.model, self.code[None], label)[0]

    # -- the cursor ------------------------------------------------------------------------

    def set_point(self, run: Run, x: float, y: float) -> None:
        """The cursor moved to (x, y) on ``run``'s plane: that point, lifted through its axes
        (off-plane coordinates kept from the current code), is every model's code."""
        if run.axes is None:
            return
        reference = self.code if self.code is not None and self.code.shape[0] == run.latent_dim \
            else run.axes.origin.astype(np.float32)
        self.code = run.axes.lift(np.array([x, y]), reference)
        self.code_changed.emit()

    def pick(self, index: int | None) -> None:
        if index != self.picked:
            self.picked = index
            self.picked_changed.emit(index)

    # -- adding runs -----------------------------------------------------------------------

    def clear(self) -> None:
        if self.sweeping:
            raise UserError("stop the sweep before clearing its runs")
        self.runs, self.code, self.data, self.indices = [], None, None, None
        self.generation += 1
        self.pick(None)
        self.runs_changed.emit()
        self.losses_changed.emit()

    def add_checkpoints(self, paths: list[str | Path]) -> None:
        """Load checkpoints in the background, at most MAX_RUNS in all; each lands as it is read."""
        for path in [Path(p) for p in paths][: max(0, MAX_RUNS - len(self.runs))]:
            self.session.tasks.submit(f"runs-open:{path}", lambda _h, p=path: _load_run(p),
                                      label=f"Opening {one_line(path.name, 60)}", model_bound=False,
                                      on_done=lambda loaded: self._adopt(loaded[0]),
                                      on_failed=lambda message, p=path: self.session.warning.emit(
                                          f"Could not open {one_line(p.name, 80)}: {message}"))

    def open_folder(self, folder: str | Path) -> int:
        """A sweep's folder (or any folder of checkpoints): its first MAX_RUNS checkpoints."""
        found = sorted(Path(folder).glob("*.safetensors"))
        if not found:
            raise UserError(f"{folder} holds no checkpoints (.safetensors)")
        self.add_checkpoints(found[:MAX_RUNS])
        return min(len(found), MAX_RUNS)

    def _adopt(self, run: Run) -> None:
        if len(self.runs) >= MAX_RUNS or self.run(run.name) is not None:
            if self.run(run.name) is not None:
                run.name = f"{run.name} ({len(self.runs) + 1})"
            if len(self.runs) >= MAX_RUNS:
                self.session.warning.emit(f"At most {MAX_RUNS} runs side by side; {run.name} was not added.")
                return
        if self.runs and run.model.config.image_shape != self.runs[0].model.config.image_shape:
            self.session.warning.emit(f"{run.name} takes images of another shape than the runs shown; not added.")
            return
        self.runs.append(run)
        self.runs_changed.emit()
        self.losses_changed.emit()
        if self.data is None:
            self._load_data(run)
        else:
            self._encode_run(run)

    def _load_data(self, run: Run) -> None:
        from explorer.data import load_dataset

        config, generation = run.data_config, self.generation

        def work(_h) -> ImageData:
            return load_dataset(config)

        self.session.tasks.submit("runs-data", work, label=f"Loading {one_line(config.dataset, 60)}",
                                  model_bound=False, on_done=lambda data: self._on_data(generation, data),
                                  on_failed=lambda message: self.session.warning.emit(
                                      f"Could not load the runs' data: {message}"))

    def _on_data(self, generation: int, data: ImageData) -> None:
        if generation != self.generation:
            return
        self.data = data
        self.indices = pick_subset(int(data.test_images.shape[0]), PLANE_POINTS, seed=0)
        for run in self.runs:
            self._encode_run(run)

    def _encode_run(self, run: Run, throttle: bool = False) -> None:
        if self.data is None or self.indices is None:
            return
        now = time.monotonic()
        if throttle and now - self._last_encode.get(run.name, 0.0) < ENCODE_INTERVAL_S:
            return
        self._last_encode[run.name] = now
        idx = torch.from_numpy(self.indices)
        images = self.data.test_images[idx]
        labels = self.data.test_labels[idx] if self.data.test_labels is not None else None
        copy, name, generation = ModelCopy.of(run.model), run.name, self.generation
        shown = (run.coords, run.axes) if run.coords is not None and run.axes is not None else None
        self.session.tasks.submit(f"runs-encode:{name}",
                                  lambda _h: _encode(copy, images, labels, name, generation, shown),
                                  label=f"Encoding for {one_line(name, 60)}", model_bound=False,
                                  on_done=self._on_encoded)

    def _on_encoded(self, encoded: _Encoded) -> None:
        run = self.run(encoded.name)
        if run is None or encoded.generation != self.generation:
            return
        run.coords, run.axes = encoded.coords, encoded.axes
        if self.code is None:  # the first plane: the cursor starts at its codes' mean
            self.code = run.axes.origin.astype(np.float32)
            self.code_changed.emit()
        self.coords_changed.emit(run.name)

    # -- a sweep trained here --------------------------------------------------------------

    def train_sweep(self, preset: str, data_config: DataConfig, train_config: TrainConfig,
                    betas: tuple[float, ...] = (), lecture: bool = False, latent_dim: int | None = None,
                    rates: tuple[float, ...] = ()) -> Path:
        """Train 2-4 runs together in the background (a beta sweep, or the lecture's three
        runs); returns the folder their checkpoints are saved into. ``rates``: one learning
        rate for every run, or one per run in order (empty: ``train_config``'s)."""
        from explorer.training.sweep import plan_sweep

        if self.sweeping or self.session.is_running:
            raise UserError("another run is training; stop it first")
        plan = plan_sweep(preset, betas=list(betas) or None, lecture=lecture,
                          latent_dims=[latent_dim] if latent_dim else None, epochs=train_config.epochs,
                          batch_size=train_config.batch_size, lr=train_config.lr, device=train_config.device)
        if not 2 <= len(plan) <= MAX_RUNS:
            raise UserError(f"side by side takes 2 to {MAX_RUNS} runs, not {len(plan)}")
        if len(rates) not in (0, 1, len(plan)):
            raise UserError(f"give one learning rate for every run or one for each of the {len(plan)} runs, "
                            f"not {len(rates)}")
        if rates:
            per_run = rates * len(plan) if len(rates) == 1 else rates
            plan = [replace(run, train_config=replace(run.train_config, lr=float(lr)))
                    for run, lr in zip(plan, per_run, strict=True)]
        store = self.session.autosave_store
        root = store.folder if store is not None else data_dir() / "sweeps"
        folder = root / f"sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        self.clear()
        self._sweep = _SweepThread(plan, data_config, folder)
        self._sweep.start()
        self._timer.start()
        self.sweep_changed.emit(f"Training {len(plan)} runs together...")
        return folder

    def stop_sweep(self) -> None:
        if self._sweep is not None:
            self._sweep.control.stop()

    def shutdown(self, timeout_s: float = 15.0) -> None:
        """The window is closing: stop a sweep (its runs so far are saved) and wait for it."""
        self._timer.stop()
        if self._sweep is not None:
            self._sweep.control.stop()
            self._sweep.join(timeout_s)
            self._sweep = None

    def _poll(self) -> None:
        sweep = self._sweep
        if sweep is None:
            self._timer.stop()
            return
        from explorer.training.events import EpochEnd, RunStarted, Snapshot

        losses = decoded = False  # signalled once per drain, however many epochs ended
        while True:
            try:
                item = sweep.outbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Prepared):
                for name, model, data_config in item.runs:
                    self.runs.append(Run(name=name, model=model, data_config=data_config, status="training"))
                self.data = item.data
                self.indices = pick_subset(int(item.data.test_images.shape[0]), PLANE_POINTS, seed=0)
                self.runs_changed.emit()
            elif isinstance(item, _Done):
                self._sweep = None
                self._timer.stop()
                for run in self.runs:
                    run.status = "saved" if item.error is None else run.status
                    if item.error is None:
                        run.path = item.folder / f"{run.name}.safetensors"
                self.runs_changed.emit()
                self.sweep_changed.emit(f"Saved the runs to {item.folder}" if item.error is None
                                        else f"The sweep failed: {item.error}")
            else:
                name, event = item
                run = self.run(name)
                if run is None:
                    continue
                if isinstance(event, RunStarted):
                    run.status = "training"
                elif isinstance(event, EpochEnd):
                    run.epochs.append((event.epoch, float(event.test["loss"])))
                    losses = True
                elif isinstance(event, Snapshot):
                    with torch.no_grad():
                        run.model.load_state_dict(event.state_dict)
                    self._encode_run(run, throttle=True)
                    decoded = True  # the decoded images change with the weights
        if losses:
            self.losses_changed.emit()
        if decoded:
            self.code_changed.emit()


@dataclass(frozen=True)
class _Prepared:
    runs: tuple[tuple[str, Autoencoder, DataConfig], ...]
    data: ImageData


@dataclass(frozen=True)
class _Done:
    folder: Path
    error: str | None = None


class _SweepThread(threading.Thread):
    """Loads the data, builds the runs' models (CPU copies go to the window), trains the
    sweep with run_sweep (which saves each group as it ends), and says when it is done."""

    def __init__(self, plan: list, data_config: DataConfig, folder: Path) -> None:
        super().__init__(name="latent-explorer-sweep", daemon=True)
        self.plan, self.data_config, self.folder = plan, data_config, folder
        self.control = TrainingControl()
        self.outbox: queue.SimpleQueue[object] = queue.SimpleQueue()

    def run(self) -> None:
        from explorer.data import load_dataset
        from explorer.runtime.threads import lower_this_thread_priority
        from explorer.training.sweep import run_sweep

        lower_this_thread_priority()
        try:
            data = load_dataset(self.data_config)
            from explorer.models import config_for_data

            shown = []
            for run in self.plan:
                config: ModelConfig = config_for_data(run.model_config, data.image_shape, data.num_classes)
                shown.append((run.name, build_model(config, check=False).eval(), self.data_config))
            self.outbox.put(_Prepared(tuple(shown), data))
            run_sweep(self.plan, self.data_config, self.folder, control=self.control, data=data,
                      on_event=lambda run, event: self.outbox.put((run.name, event)))
        except Exception as exc:  # noqa: BLE001 - whatever failed is said in the window, in one line
            self.outbox.put(_Done(self.folder, describe_failure(exc)))
            return
        self.outbox.put(_Done(self.folder))
