"""What a model object carries besides its weights when it travels through the API.

``explorer.load`` and ``explorer.train`` return plain :class:`~explorer.models.Autoencoder`
modules; the configs, the loss history and the timeline ride along as ``model.record``, so
``explorer.save(model, path)`` writes everything a checkpoint holds, and a loaded model
saved again loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.analysis.directions import Direction
from explorer.config import DataConfig, TrainConfig
from explorer.data.dataset import ImageData
from explorer.training.history import History
from explorer.training.timeline import Timeline


@dataclass
class TrainingRecord:
    data_config: DataConfig
    train_config: TrainConfig
    history: History
    class_names: tuple[str, ...] = ()
    evaluations: list[Any] = field(default_factory=list)
    timeline: Timeline | None = None
    extra_metadata: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the file it was loaded from or last saved to
    # The images it was trained on, when they were given in memory (arrays, not a name the
    # loader can find again): what explorer.view shows when no images are given. Not saved.
    data: ImageData | None = field(default=None, repr=False)
    # Named directions in the code space (explorer.direction): saved with the model.
    directions: list[Direction] = field(default_factory=list)


def record_of(model: Any) -> TrainingRecord | None:
    record = getattr(model, "record", None)
    return record if isinstance(record, TrainingRecord) else None
