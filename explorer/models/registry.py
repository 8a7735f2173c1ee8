"""Building models from configs; the presets themselves live in :mod:`explorer.presets`.

:func:`build_model` is the one place a model is made from a config: a built-in preset's
config makes an :class:`Autoencoder`, a model plugin's (``config.plugin``) goes to that
installed plugin's ``build`` and is checked against the contract
(:mod:`explorer.models.contract`) before anyone uses it.
"""

from __future__ import annotations

from typing import Any

from explorer.config import ModelConfig, replace
from explorer.errors import ConfigError, UserError
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import LatentModel
from explorer.plugins import PluginError, find_preset, require
from explorer.presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "build_model", "build_plugin_model", "config_for_data", "get_preset"]


def get_preset(name: str) -> Preset:
    """A built-in preset or an installed model plugin's (ConfigError for neither)."""
    return find_preset(name)


def config_for_data(config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> ModelConfig:
    """Fit a preset's config to a dataset's image shape and class count."""
    if config.conditional and num_classes < 2:
        found = "found 1" if num_classes == 1 else "found none"
        raise ConfigError(f"{config.preset or 'this model'} is conditional: it needs at least two classes ({found}; "
                          "for your own images, one sub-folder per class, or labels= in a NumPy file)")
    return replace(config, image_shape=tuple(image_shape), num_classes=num_classes if config.conditional else 0)


def build_model(config: ModelConfig, *, check: bool = True) -> LatentModel:
    """The model ``config`` describes, with fresh weights. A plugin's model is checked
    against the contract (``check``: a two-image CPU forward; off for a ``meta`` build); a
    missing or broken plugin is a PluginError in one line."""
    if not config.plugin:
        return Autoencoder(config)
    return build_plugin_model(require(config.plugin), config, check=check)


def build_plugin_model(plugin: Any, config: ModelConfig, *, check: bool = True) -> LatentModel:
    """``plugin``'s model for ``config`` (its settings checked and completed first)."""
    from explorer.models.contract import ContractError, check_contract

    config = plugin.complete(config)
    try:
        model = plugin.build(config)
    except (UserError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the plugin's code: one line, naming the plugin
        text = " ".join(str(exc).split())[:200]
        raise PluginError(f"the model plugin {plugin.name} could not build its model "
                          f"({type(exc).__name__}: {text})") from None
    if check:
        try:
            check_contract(model, config)
        except ContractError as exc:
            raise PluginError(f"the model of the plugin {plugin.name} breaks the model contract: {exc}") from None
    return model  # type: ignore[no-any-return]
