"""Turning a preset name plus the user's overrides into a ready model, data and config.

The CLI and the GUI both start runs through :func:`prepare_run`, so a setting means the
same thing in both and a run started either way is reproducible from its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data import FolderReport, ImageData, load_dataset
from explorer.errors import ConfigError
from explorer.memory_budget import check_model, check_training
from explorer.models import Autoencoder, build_model, config_for_data, get_preset
from explorer.plugins import require


@dataclass
class PreparedRun:
    model: Autoencoder
    data: ImageData
    data_config: DataConfig
    train_config: TrainConfig
    folder_report: FolderReport


def model_config_for(preset: str, settings: dict[str, Any] | None = None, **overrides: Any) -> ModelConfig:
    """The preset's model config with any non-None overrides applied, and for a model
    plugin's preset, ``settings`` of its schema (the rest stay its defaults)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    config = replace(get_preset(preset).model, **changes)
    if settings:
        if not config.plugin:
            raise ConfigError(f"{preset} is a built-in preset: it has no plugin settings to set "
                              f"({', '.join(sorted(settings))})")
        config = require(config.plugin).config(**{**config.params, **settings})
        config = replace(config, **changes)
    return config


def train_config_for(preset: str, **overrides: Any) -> TrainConfig:
    """A TrainConfig using the preset's epochs, batch size and learning rate unless overridden."""
    p = get_preset(preset)
    base = TrainConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def prepare_run(model_config: ModelConfig, data_config: DataConfig, train_config: TrainConfig,
                data: ImageData | None = None, ui: str = "cli") -> PreparedRun:
    """The model, data and configs of a run, refused (MemoryBudgetError) when the model or
    the run would not fit in free memory; ``ui`` ("cli" or "window") words that advice."""
    report = FolderReport()
    if data is None:
        data = load_dataset(data_config, report)
    config = config_for_data(model_config, data.image_shape, data.num_classes)
    check_budget(config, data, train_config, ui)
    torch.manual_seed(train_config.seed)  # weights initialise reproducibly
    return PreparedRun(build_model(config), data, data_config, train_config, report)


def check_budget(config: ModelConfig, data: ImageData, train_config: TrainConfig, ui: str = "cli") -> None:
    """Refuse (MemoryBudgetError, one line) a model or a run that would not fit in the free
    memory of the host, or of the device it will train on, before anything is built."""
    from explorer.training.device import resolve_device

    check_model(config, ui=ui)
    try:
        device = resolve_device(train_config.device)
    except ConfigError:
        device = torch.device("cpu")  # the engine says what is wrong with the device
    check_training(config, tuple(data.train_images.shape), train_config.batch_size, device=device, ui=ui)
