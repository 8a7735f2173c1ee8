"""``explorer.train``: the engine the CLI and the window drive, from a script or a notebook.

A run here is a :class:`TrainingRun`: the prepared model and data (the same
:func:`~explorer.training.runs.prepare_run` as everywhere, so the memory checks and the
seeded initialisation are the same), the history and the timeline it records. The CLI's
``train`` command builds one and adds its own printing, periodic saves and signal handling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from explorer.api.record import TrainingRecord
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data import ImageData
from explorer.errors import ConfigError
from explorer.models import Autoencoder
from explorer.training.events import Event
from explorer.training.history import History
from explorer.training.runs import PreparedRun, model_config_for, prepare_run, train_config_for
from explorer.training.timeline import Timeline

_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - {"preset", "image_shape", "num_classes"}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_DATA_FIELDS = {f.name for f in dataclasses.fields(DataConfig)} - {"dataset"}
MAX_LISTED = 12


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Keyword settings sorted into model, training and data config fields (None: default);
    an unknown name is one line listing what there is."""
    model, train, data = {}, {}, {}
    for key, value in settings.items():
        if value is None:
            continue
        if key in _MODEL_FIELDS:
            model[key] = tuple(value) if isinstance(value, list) else value
        elif key in _TRAIN_FIELDS:
            train[key] = value
        elif key in _DATA_FIELDS:
            data[key] = tuple(value) if isinstance(value, list) else value
        else:
            known = sorted(_MODEL_FIELDS | _TRAIN_FIELDS | _DATA_FIELDS)
            raise ConfigError(f"train() has no setting {key!r}; settings are {', '.join(known)}")
    return model, train, data


def data_for(data: Any, data_settings: dict[str, Any]) -> tuple[DataConfig, ImageData | None]:
    """What ``data=`` names: a dataset name, a folder or an .npz/.npy path (loaded by the
    engine's loader), a DataConfig, ready ImageData, or arrays (an images array or tensor,
    or a dict as an .npz file holds them), split with ``test_fraction`` and ``split_seed``."""
    if data is None:
        return DataConfig(**data_settings), None
    if isinstance(data, DataConfig):
        return replace(data, **data_settings) if data_settings else data, None
    if isinstance(data, (str, Path)):
        return DataConfig(dataset=str(data), **data_settings), None
    if isinstance(data, ImageData):
        return DataConfig(dataset=data.name, **data_settings), data
    from explorer.data.arrays import image_data_from_arrays

    config = DataConfig(dataset="arrays", **data_settings)
    arrays = data if isinstance(data, dict) else {"images": data}
    images = image_data_from_arrays(arrays, "arrays", config.test_fraction, config.split_seed)
    return config, images.only_classes(config.classes).limited(config.limit)


class TrainingRun:
    """One run of the engine with what it records: build it, ``drive`` it, keep the model."""

    def __init__(self, model_config: ModelConfig, data_config: DataConfig, train_config: TrainConfig,
                 data: ImageData | None = None, *, record_timeline: bool = True, ui: str = "cli") -> None:
        self.given_data = data  # images handed over in memory (kept with the model for viewing)
        self.prepared: PreparedRun = prepare_run(model_config, data_config, train_config, data=data, ui=ui)
        self.model: Autoencoder = self.prepared.model
        self.history = History(part_names=self.model.part_names)
        self.timeline = Timeline.for_data(self.prepared.data) if train_config.timeline and record_timeline else None

    @property
    def train_config(self) -> TrainConfig:
        return self.prepared.train_config

    def record(self, event: Event) -> None:
        """Every event the engine yields goes through here: the history and the timeline."""
        self.history.record(event)
        if self.timeline is not None:
            self.timeline.record(event)

    def drive(self, on_event: Callable[[Event], None] | None = None, dist: Any = None, control: Any = None):
        """Train to the end (or until ``on_event`` or a signal raises), recording as it goes;
        returns the engine's RunResult."""
        from explorer.training.engine import drive, train

        def each(event: Event) -> None:
            self.record(event)
            if on_event is not None:
                on_event(event)

        return drive(train(self.model, self.prepared.data, self.train_config, control=control, dist=dist), each)

    def finished_model(self) -> Autoencoder:
        """The model on the CPU in eval mode, its record attached (what ``explorer.save`` writes)."""
        model = self.model.cpu().eval()
        model.record = TrainingRecord(self.prepared.data_config, self.train_config, self.history,
                                      self.prepared.data.class_names, [], self.timeline, data=self.given_data)
        return model


def train(preset_or_config: str | ModelConfig = "vae", data: Any = None, *, epochs: int | None = None,
          on_event: Callable[[Event], None] | None = None, **settings: Any) -> Autoencoder:
    """Train a model with the engine the CLI and the window use, and return it.

    ``preset_or_config``: a preset name (``"vae"``, ``"conv-vae"``...) or a ModelConfig.
    ``data``: None (the bundled MNIST), a dataset name, a folder or ``.npz``/``.npy`` path,
    an images array or tensor (with ``labels`` in a dict: ``{"images": x, "labels": y}``),
    or ImageData. ``epochs`` and any setting of the model, training or data configs
    (``latent_dim=2``, ``beta=4``, ``lr``, ``batch_size``, ``seed``, ``device``, ``limit``...)
    as keywords. ``on_event`` gets every event (StepLoss, EpochEnd, ...) as it happens.

    The model comes back on the CPU in eval mode with ``model.record`` (configs, history,
    timeline), ready for ``explorer.save`` and ``explorer.view``.
    """
    model_settings, train_settings, data_settings = split_settings({"epochs": epochs, **settings})
    if isinstance(preset_or_config, ModelConfig):
        model_config = replace(preset_or_config, **model_settings)
        preset = preset_or_config.preset or "vae"
        base = train_config_for(preset) if preset in _presets() else TrainConfig()
        train_config = replace(base, **train_settings)
    else:
        model_config = model_config_for(preset_or_config, **model_settings)
        train_config = train_config_for(preset_or_config, **train_settings)
    data_config, images = data_for(data, data_settings)
    run = TrainingRun(model_config, data_config, train_config, images)
    run.drive(on_event)
    return run.finished_model()


def _presets() -> dict[str, Any]:
    from explorer.presets import PRESETS

    return PRESETS
