"""Building models from configs; the presets themselves live in :mod:`explorer.presets`."""

from __future__ import annotations

from explorer.config import ModelConfig, replace
from explorer.errors import ConfigError
from explorer.models.autoencoder import Autoencoder
from explorer.presets import PRESETS, Preset, get_preset

__all__ = ["PRESETS", "Preset", "build_model", "config_for_data", "get_preset"]


def config_for_data(config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> ModelConfig:
    """Fit a preset's config to a dataset's image shape and class count."""
    if config.conditional and num_classes < 2:
        found = "found 1" if num_classes == 1 else "found none"
        raise ConfigError(f"{config.preset or 'this model'} is conditional: it needs at least two classes ({found}; "
                          "for your own images, one sub-folder per class)")
    return replace(config, image_shape=tuple(image_shape), num_classes=num_classes if config.conditional else 0)


def build_model(config: ModelConfig) -> Autoencoder:
    return Autoencoder(config)
