"""Pure-PyTorch models: one :class:`Autoencoder` class configured by presets."""

from explorer.models.autoencoder import Autoencoder
from explorer.models.base import LatentDist, ModelOutput
from explorer.models.registry import PRESETS, Preset, build_model, config_for_data, get_preset

__all__ = ["Autoencoder", "LatentDist", "ModelOutput", "PRESETS", "Preset", "build_model",
           "config_for_data", "get_preset"]
