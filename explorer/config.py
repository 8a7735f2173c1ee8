"""Frozen, JSON-serialisable configs.

They are frozen so that a config handed to another thread, or written into a checkpoint,
can never change under the reader's feet; a changed setting is a new config
(``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from explorer.errors import ConfigError

RECON_LOSSES = ("bce", "mse")
# Input corruption for denoising autoencoders: each kind's key (configs, checkpoints, the
# CLI's --noise) and its name in the window. The CLI, the config check, models.noise and the
# window's menus all read this one table, so a new kind is added in one place.
NOISE_LABELS: dict[str, str] = {"none": "None", "gaussian": "Gaussian", "salt-pepper": "Salt and pepper",
                                "mask": "Masking"}
NOISE_TYPES = tuple(NOISE_LABELS)
# The kinds that actually corrupt (everything but "none"): what a denoising demo can apply.
CORRUPTIONS = tuple(kind for kind in NOISE_TYPES if kind != "none")
# The kinds whose level is a fraction of pixels hit, so at most 1.
FRACTION_NOISES = ("salt-pepper", "mask")
# Binarising the images: each pixel becomes 0 or 255 with probability intensity/255, so a
# Bernoulli (BCE) loss is a true likelihood. "dynamic" redraws the train images every batch
# (the usual choice for MNIST likelihood numbers), "static" draws them once with a fixed seed.
# The test split is binarised once with a fixed seed in both modes (see explorer.data.binarize).
BINARIZE_LABELS: dict[str, str] = {"none": "None", "dynamic": "Dynamic (resampled every batch)",
                                   "static": "Static (one fixed draw)"}
BINARIZE_MODES = tuple(BINARIZE_LABELS)
FAMILIES = ("mlp", "conv")
CODE_ACTIVATIONS = ("linear", "relu")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
# torch.compile of the training step: "auto" compiles on CUDA, where it pays within an epoch;
# on the CPU it pays only on long runs (see benchmarks/README.md), so there it is opt-in.
COMPILE_MODES = ("auto", "on", "off")
# Seeds fit a signed 32-bit int: the GUI's spin boxes, numpy and torch all take them as they are.
MAX_SEED = 2**31 - 1
# A floor on training steps beyond this is a typo, not a plan (10 million steps of a small MLP is days).
MAX_MIN_STEPS = 10_000_000

T = TypeVar("T", bound="_Serialisable")


class _Serialisable:
    """to_dict/from_dict for flat dataclasses whose fields are JSON scalars or tuples."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{cls.__name__} has no {'field' if len(unknown) == 1 else 'fields'} "
                              f"{', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kwargs[name] = tuple(value) if isinstance(value, list) else value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{cls.__name__} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig(_Serialisable):
    """Everything needed to rebuild a model's architecture and its loss.

    Input noise (denoising), the activity penalty (sparse), beta and the reconstruction
    loss are fields here rather than subclasses, so every preset is one class with one
    contract.
    """

    preset: str = "vae"
    family: str = "mlp"
    variational: bool = True
    conditional: bool = False
    latent_dim: int = 20
    hidden_dims: tuple[int, ...] = (400,)
    conv_channels: tuple[int, ...] = ()
    code_activation: str = "linear"
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 0
    beta: float = 1.0
    recon_loss: str = "bce"
    noise: str = "none"
    noise_level: float = 0.0
    sparsity_weight: float = 0.0
    # The reconstruction term's weight: 0 leaves the KL alone (the lecture's "KL only" run).
    # Absent from older configs and checkpoints, which trained with 1.
    recon_weight: float = 1.0
    # A model from an installed plugin (explorer.plugins): its entry-point name ("" for the
    # built-in Autoencoder; then ``preset`` is the plugin's name too), and its settings as
    # canonical JSON (an object of scalars, keys sorted), checked against the plugin's schema
    # where the plugin is installed. Both are left out of to_dict when empty, so files of
    # built-in models stay readable by versions that predate plugins.
    plugin: str = ""
    plugin_params: str = ""

    def __post_init__(self) -> None:
        _check(isinstance(self.preset, str), "preset must be a string")
        _check(self.family in FAMILIES, f"family must be one of {', '.join(FAMILIES)}, not {self.family!r}")
        _check(isinstance(self.variational, bool), "variational must be true or false")
        _check(isinstance(self.conditional, bool), "conditional must be true or false")
        _check(_is_int(self.latent_dim) and 1 <= self.latent_dim <= 65536,
               f"latent size must be a whole number from 1 to 65536, not {self.latent_dim!r}")
        _check(isinstance(self.hidden_dims, tuple) and all(_is_int(h) and 1 <= h <= 65536 for h in self.hidden_dims),
               f"hidden sizes must be positive whole numbers, not {self.hidden_dims!r}")
        _check(isinstance(self.conv_channels, tuple) and all(_is_int(c) and 1 <= c <= 4096 for c in self.conv_channels),
               f"conv channels must be positive whole numbers, not {self.conv_channels!r}")
        _check(self.family != "conv" or len(self.conv_channels) >= 1, "a conv model needs at least one conv layer")
        _check(self.code_activation in CODE_ACTIVATIONS,
               f"code activation must be one of {', '.join(CODE_ACTIVATIONS)}, not {self.code_activation!r}")
        _check(isinstance(self.image_shape, tuple) and len(self.image_shape) == 3
               and all(_is_int(s) and 1 <= s <= 4096 for s in self.image_shape),
               f"image shape must be (channels, height, width), not {self.image_shape!r}")
        _check(self.image_shape[0] in (1, 3), f"images must have 1 or 3 channels, not {self.image_shape[0]}")
        _check(_is_int(self.num_classes) and 0 <= self.num_classes <= 100000, "number of classes must be >= 0")
        _check(not self.conditional or self.num_classes >= 2,
               "a conditional model needs a dataset with at least two classes")
        _check(_is_number(self.beta) and 0 <= self.beta < 1e6, f"beta must be a number >= 0, not {self.beta!r}")
        _check(self.recon_loss in RECON_LOSSES,
               f"reconstruction loss must be one of {', '.join(RECON_LOSSES)}, not {self.recon_loss!r}")
        _check(self.noise in NOISE_TYPES, f"noise must be one of {', '.join(NOISE_TYPES)}, not {self.noise!r}")
        _check(_is_number(self.noise_level) and 0 <= self.noise_level <= 10,
               f"noise level must be between 0 and 10, not {self.noise_level!r}")
        _check(self.noise not in FRACTION_NOISES or self.noise_level <= 1,
               "salt-and-pepper and masking noise levels are fractions of pixels (0 to 1)")
        _check(_is_number(self.sparsity_weight) and 0 <= self.sparsity_weight < 1e6,
               f"sparsity weight must be a number >= 0, not {self.sparsity_weight!r}")
        _check(_is_number(self.recon_weight) and 0 <= self.recon_weight < 1e6,
               f"reconstruction weight must be a number >= 0, not {self.recon_weight!r}")
        _check(isinstance(self.plugin, str) and (self.plugin == "" or PLUGIN_NAME.fullmatch(self.plugin) is not None),
               f"plugin must be a model plugin's name (letters, digits, '.', '_', '-'), not {self.plugin!r}"[:300])
        _check(not self.plugin or self.preset == self.plugin,
               f"a plugin model's preset is its plugin's name ({self.plugin!r}), not {self.preset!r}"[:300])
        _check(isinstance(self.plugin_params, str), "plugin settings must be a JSON string")
        _check(self.plugin or not self.plugin_params, "plugin settings need a plugin")
        if self.plugin_params:
            # Canonical form, so equal settings make equal configs (frozen: set through object).
            object.__setattr__(self, "plugin_params", canonical_params(parse_params(self.plugin_params)))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in ("plugin", "plugin_params"):
            if not out[name]:
                del out[name]
        return out

    @property
    def params(self) -> dict[str, Any]:
        """The plugin's settings as a dict (empty for a built-in model)."""
        return parse_params(self.plugin_params) if self.plugin_params else {}

    @property
    def input_size(self) -> int:
        c, h, w = self.image_shape
        return c * h * w


# A model plugin's name: its entry point's name, which is also its preset name.
PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_PARAMS_CHARS = 16 * 1024  # a plugin's settings as JSON; a real one is a few hundred characters


def parse_params(text: str) -> dict[str, Any]:
    """A plugin's settings from JSON: an object whose keys are names and whose values are
    numbers, booleans or strings (ConfigError otherwise)."""
    _check(len(text) <= MAX_PARAMS_CHARS, f"plugin settings are over {MAX_PARAMS_CHARS:,} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ConfigError("plugin settings are not valid JSON") from None
    _check(isinstance(data, dict), "plugin settings must be a JSON object")
    for key, value in data.items():
        _check(PARAM_NAME.fullmatch(key) is not None, f"{key[:60]!r} is not a plugin setting's name")
        _check(isinstance(value, (bool, int, float, str))
               and not (isinstance(value, float) and not math.isfinite(value))
               and not (isinstance(value, str) and len(value) > 200),
               f"plugin setting {key} must be a finite number, true/false or a short text")
    return data


def canonical_params(values: dict[str, Any]) -> str:
    """Settings as the one JSON text a config stores: keys sorted, no spaces."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False) if values else ""


PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class DataConfig(_Serialisable):
    """Which images to train on.

    ``dataset`` is a built-in name or a folder path. ``image_size`` and ``channels`` only
    apply to folders (built-in sets keep their native format); ``None`` means automatic.
    """

    dataset: str = "mnist"
    limit: int | None = None
    image_size: int | None = None
    channels: int | None = None
    test_fraction: float = 0.1
    split_seed: int = 0
    classes: tuple[int, ...] | None = None
    # Absent from older checkpoints, where the default (grey levels) is what they trained on.
    binarize: str = "none"

    def __post_init__(self) -> None:
        _check(isinstance(self.dataset, str) and self.dataset != "", "dataset must be a name or a folder")
        _check(self.limit is None or (_is_int(self.limit) and self.limit >= 1),
               f"limit must be a positive whole number, not {self.limit!r}")
        _check(self.image_size is None or (_is_int(self.image_size) and 4 <= self.image_size <= 512),
               f"image size must be from 4 to 512 pixels, not {self.image_size!r}")
        _check(self.channels in (None, 1, 3), f"channels must be 1 or 3, not {self.channels!r}")
        _check(_is_number(self.test_fraction) and 0 < self.test_fraction < 1,
               "test fraction must be between 0 and 1")
        _check(_is_int(self.split_seed) and 0 <= self.split_seed <= MAX_SEED,
               f"split seed must be a whole number from 0 to {MAX_SEED}, not {self.split_seed!r}")
        _check(self.classes is None or (isinstance(self.classes, tuple) and len(self.classes) > 0
                                        and all(_is_int(c) and c >= 0 for c in self.classes)),
               f"classes must be a list of class indices, not {self.classes!r}")
        _check(self.binarize in BINARIZE_MODES,
               f"binarize must be one of {', '.join(BINARIZE_MODES)}, not {self.binarize!r}")


@dataclass(frozen=True)
class TrainConfig(_Serialisable):
    """How to train: optimisation settings and how often to report.

    ``snapshot_interval_s`` is for live views (the GUI); ``None`` sends snapshots only at
    epoch ends.

    ``min_steps`` is a floor on the optimisation steps a model gets: on a small dataset a
    few epochs are a few dozen steps, too few to learn anything, so the engine trains
    more epochs until the model has taken at least this many steps (and says so). 0, the
    default and the CLI's, means epochs are exactly what was asked.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    snapshot_interval_s: float | None = None
    eval_batch_size: int = 1000
    precision: str = "auto"
    compile: str = "auto"
    min_steps: int = 0
    # Record a training timeline (explorer.training.timeline) at every epoch end. Absent from
    # older configs, which load with it on.
    timeline: bool = True

    def __post_init__(self) -> None:
        _check(_is_int(self.epochs) and 1 <= self.epochs <= 100000,
               f"epochs must be a positive whole number, not {self.epochs!r}")
        _check(_is_int(self.batch_size) and 1 <= self.batch_size <= 1_000_000,
               f"batch size must be a positive whole number, not {self.batch_size!r}")
        _check(_is_number(self.lr) and 0 < self.lr < 10, f"learning rate must be between 0 and 10, not {self.lr!r}")
        _check(_is_int(self.seed) and 0 <= self.seed <= MAX_SEED,
               f"seed must be a whole number from 0 to {MAX_SEED}, not {self.seed!r}")
        _check(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        _check(_is_int(self.log_every) and self.log_every >= 1, "log_every must be a positive whole number")
        _check(self.snapshot_interval_s is None
               or (_is_number(self.snapshot_interval_s) and self.snapshot_interval_s > 0),
               "snapshot interval must be a positive number of seconds")
        _check(_is_int(self.eval_batch_size) and self.eval_batch_size >= 1, "eval batch size must be positive")
        _check(self.precision in PRECISIONS,
               f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        _check(self.compile in COMPILE_MODES,
               f"compile must be one of {', '.join(COMPILE_MODES)}, not {self.compile!r}")
        _check(_is_int(self.min_steps) and 0 <= self.min_steps <= MAX_MIN_STEPS,
               f"minimum steps must be a whole number from 0 to {MAX_MIN_STEPS:,}, not {self.min_steps!r}")
        _check(isinstance(self.timeline, bool), f"timeline must be true or false, not {self.timeline!r}")


def replace(config: T, **changes: Any) -> T:
    """``dataclasses.replace`` that reports bad values as :class:`ConfigError`."""
    try:
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def parse_classes(text: str) -> tuple[int, ...]:
    """'0, 1' to (0, 1): sorted, without repeats. The CLI's --classes/--normal and the
    window's class fields all read class lists through here."""
    try:
        values = tuple(sorted({int(v) for v in text.replace(" ", "").split(",") if v}))
    except ValueError:
        raise ConfigError(f"{text!r} is not a list of class numbers like 1 or 0,1") from None
    if not values or values[0] < 0:
        raise ConfigError(f"{text!r} is not a list of class numbers like 1 or 0,1")
    return values


__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "replace", "parse_classes"]


def stage_sizes(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """The feature-map sizes of a conv stack that halves (rounding up) at each stage: what the
    conv model builds and what the memory budget prices, from one rule."""
    sizes = [(height, width)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes
