"""Model plugins: model families that installed packages add (README, "Model plugins").

A package registers a plugin with an entry point in the group :data:`GROUP`::

    [project.entry-points."latent_explorer.models"]
    vqvae = "latent_explorer_vqvae:PLUGIN"

whose object is a :class:`ModelPlugin`: a name (the entry point's), a description, a schema
of settings (:class:`Field`) and ``build``, which turns a :class:`~explorer.config.ModelConfig`
into a model keeping the contract of :class:`explorer.models.base.LatentModel`.

Discovery (:func:`discover`) is lazy and runs once (cached; :func:`refresh` runs it again).
Each entry point is loaded in its own ``try``: one that fails to import, gives something
other than a ModelPlugin, or whose model breaks the contract is listed as broken with one
line, and every other plugin still works. Nothing here runs at ``import explorer``, and this
module imports neither torch nor Qt: :func:`installed` reads the entry points' metadata
without importing any plugin (what ``latent-explorer train --help`` lists).

Checkpoints name a plugin by its entry-point name, with its distribution and version as
metadata for messages; only installed entry points are ever looked up, so nothing a file
says is imported.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from explorer.config import PLUGIN_NAME, ModelConfig, TrainConfig, canonical_params, replace
from explorer.display import with_article
from explorer.errors import ConfigError
from explorer.presets import PRESETS, Preset

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "latent_explorer.models"
FIELD_TYPES = ("int", "float", "bool", "choice")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# A distribution name as PEP 508 spells it: only such a name is offered to pip in a message.
_DISTRIBUTION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
MAX_LINE = 300  # characters in one status or error line


class PluginError(ConfigError):
    """A model plugin that is missing, broken, or refuses a setting (one line)."""


def _line(text: object, limit: int = MAX_LINE) -> str:
    """Text fit for one line: control characters escaped, at most ``limit`` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(str(text).split()))
    return out if len(out) <= limit else out[:limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the spec a plugin gives --------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One setting of a plugin's model: drawn as a form field in the window, stored in the
    config's ``plugin_params`` and handed to ``build`` through ``config.params[name]``.

    ``type`` is "int" (a spin box; ``min``/``max`` bound it), "float" (likewise), "bool" (a
    check box) or "choice" (a list of ``choices``, strings). ``help`` is the field's tooltip,
    ``label`` its caption (default: the name with spaces, capitalised).
    """

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _FIELD_NAME.fullmatch(self.name):
            raise ConfigError(f"a plugin setting's name must be a Python identifier, not {_line(repr(self.name), 80)}")
        if self.type not in FIELD_TYPES:
            raise ConfigError(f"setting {self.name}: type must be one of {', '.join(FIELD_TYPES)}, "
                              f"not {_line(repr(self.type), 40)}")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (self.type not in ("int", "float") or not _is_number(value)):
                raise ConfigError(f"setting {self.name}: {bound} must be a number, for int and float settings only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"setting {self.name}: min {self.min} is above max {self.max}")
        if self.type == "choice":
            if (not isinstance(self.choices, tuple) or not self.choices
                    or not all(isinstance(c, str) and c for c in self.choices)
                    or len(set(self.choices)) != len(self.choices)):
                raise ConfigError(f"setting {self.name}: choices must be a tuple of distinct non-empty strings")
        elif self.choices:
            raise ConfigError(f"setting {self.name}: choices are for choice settings only")
        if not isinstance(self.help, str) or not isinstance(self.label, str):
            raise ConfigError(f"setting {self.name}: help and label must be strings")
        try:
            object.__setattr__(self, "default", self.check(self.default))
        except ConfigError as exc:
            raise ConfigError(f"setting {self.name}: its default is not valid ({exc})") from None

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def check(self, value: Any) -> Any:
        """``value`` as this setting stores it (an int as float for a float setting), or
        ConfigError naming the setting and what it takes."""
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be true or false, not {_line(repr(value), 40)}")
            return value
        if self.type == "choice":
            if value not in self.choices:
                raise ConfigError(f"{self.name} must be one of {', '.join(self.choices)}, not {_line(repr(value), 40)}")
            return value
        if self.type == "int" and not _is_int(value):
            raise ConfigError(f"{self.name} must be a whole number, not {_line(repr(value), 40)}")
        if self.type == "float":
            if not _is_number(value) or value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{self.name} must be a finite number, not {_line(repr(value), 40)}")
            value = float(value)
        if self.min is not None and value < self.min:
            raise ConfigError(f"{self.name} must be at least {self.min:g}, not {value:g}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"{self.name} must be at most {self.max:g}, not {value:g}")
        return value


@dataclass(frozen=True)
class ModelPlugin:
    """What a plugin's entry point gives.

    ``name`` is the entry point's name (and the preset's). ``build(config)`` returns the
    model (an ``nn.Module`` keeping the contract; subclassing
    :class:`explorer.models.base.LatentModel` gives all but the architecture); the config it
    gets has ``config.params``: every schema field's value. ``model`` holds the other
    settings the preset starts from (latent size, reconstruction loss, beta, variational...;
    default ``ModelConfig()``); ``epochs``, ``batch_size`` and ``lr`` its training defaults.
    ``version`` is the plugin's (default: its distribution's).
    """

    name: str
    description: str
    schema: tuple[Field, ...]
    build: Callable[[ModelConfig], Any]
    version: str = ""
    model: ModelConfig | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not PLUGIN_NAME.fullmatch(self.name):
            raise ConfigError(f"a model plugin's name must be letters, digits, '.', '_' or '-' (at most 64), "
                              f"not {_line(repr(self.name), 80)}")
        if not isinstance(self.description, str):
            raise ConfigError(f"plugin {self.name}: description must be a string")
        if not isinstance(self.schema, tuple) or not all(isinstance(f, Field) for f in self.schema):
            raise ConfigError(f"plugin {self.name}: schema must be a tuple of explorer.plugins.Field")
        names = [f.name for f in self.schema]
        if len(set(names)) != len(names):
            raise ConfigError(f"plugin {self.name}: two settings share a name")
        if not callable(self.build):
            raise ConfigError(f"plugin {self.name}: build must be callable (config -> model)")
        if not isinstance(self.version, str):
            raise ConfigError(f"plugin {self.name}: version must be a string")
        if self.model is not None and not isinstance(self.model, ModelConfig):
            raise ConfigError(f"plugin {self.name}: model must be an explorer.config.ModelConfig or None")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)  # the same checks as a run's

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.schema}

    def check_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every setting's value: ``values`` checked against the schema, the rest defaults.
        A name the schema lacks is refused (ConfigError)."""
        fields = {f.name: f for f in self.schema}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"the model plugin {self.name} has no setting {_line(unknown[0], 60)}"
                              + (f" (it has {', '.join(fields)})" if fields else ""))
        return {name: f.check(values[name]) if name in values else f.default for name, f in fields.items()}

    def config(self, **params: Any) -> ModelConfig:
        """The preset's model config, with these settings (the rest defaults)."""
        base = self.model if self.model is not None else ModelConfig()
        return replace(base, preset=self.name, plugin=self.name,
                       plugin_params=canonical_params(self.check_params(params)))

    def complete(self, config: ModelConfig) -> ModelConfig:
        """``config`` (of this plugin) with its settings checked and completed with defaults."""
        if config.plugin != self.name:
            raise ConfigError(f"a config of {_line(config.plugin or config.preset, 60)} is not one of the model "
                              f"plugin {self.name}'s")
        values = self.check_params(config.params)
        return replace(config, plugin_params=canonical_params(values))

    def preset(self) -> Preset:
        return Preset(self.description, self.config(), epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)


# -- discovery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginInfo:
    """One installed entry point: its plugin, or why it is broken (one line)."""

    name: str
    distribution: str = ""
    dist_version: str = ""
    target: str = ""  # the entry point's "module:object", for messages
    plugin: ModelPlugin | None = field(default=None, repr=False)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.plugin is not None and not self.error

    @property
    def version(self) -> str:
        return (self.plugin.version if self.plugin is not None and self.plugin.version else "") or self.dist_version

    @property
    def source(self) -> str:
        """'latent-explorer-vqvae 0.1.0', or what is known of it."""
        return " ".join(p for p in (self.distribution or self.target, self.version) if p)

    def line(self) -> str:
        """One line for a listing: name, status, where it comes from, what it is or why broken."""
        what = _line(self.plugin.description, 120) if self.ok and self.plugin is not None else f"broken: {self.error}"
        return f"{self.name}  {'ok' if self.ok else 'BROKEN'}  ({_line(self.source, 120)})  {what}"

    def record(self) -> dict[str, str]:
        """What a checkpoint stores about it (names only, never anything to import)."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version}


def _entry_points() -> list[EntryPoint]:
    """The installed entry points of GROUP: the one source discovery reads (tests replace it)."""
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    try:
        return str(dist.metadata["Name"] or getattr(dist, "name", "") or ""), str(dist.version or "")
    except Exception:  # noqa: BLE001 - damaged metadata: the plugin is still usable, unnamed
        return "", ""


def installed() -> list[tuple[str, str, str]]:
    """(name, distribution, version) of each installed entry point, from metadata only:
    no plugin is imported (for ``--help``). Empty when the metadata cannot be read."""
    try:
        eps = _entry_points()
    except Exception:  # noqa: BLE001 - a broken environment lists nothing rather than failing --help
        return []
    out = []
    for ep in eps:
        distribution, version = _dist_of(ep)
        out.append((_line(ep.name, 64), _line(distribution, 100), _line(version, 64)))
    return sorted(set(out))


def _load(ep: EntryPoint) -> PluginInfo:
    distribution, version = _dist_of(ep)
    info = PluginInfo(name=_line(ep.name, 64), distribution=_line(distribution, 100),
                      dist_version=_line(version, 64), target=_line(getattr(ep, "value", ""), 200))

    def broken(why: str) -> PluginInfo:
        return replace_info(info, error=_line(why))

    if not PLUGIN_NAME.fullmatch(ep.name):
        return broken("its entry point's name is not a plugin name (letters, digits, '.', '_', '-')")
    if ep.name in PRESETS:
        return broken(f"its name clashes with the built-in preset {ep.name}")
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin that fails to import is listed as broken
        return broken(f"cannot be imported ({_describe(exc)})")
    if not isinstance(obj, ModelPlugin):
        return broken(f"{info.target} is {with_article(type(obj).__name__)}, not an explorer.plugins.ModelPlugin")
    if obj.name != ep.name:
        return broken(f"its entry point is named {ep.name} but the plugin calls itself {_line(obj.name, 64)}")
    info = replace_info(info, plugin=obj)
    try:
        from explorer.models.contract import check_plugin

        check_plugin(obj)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the plugin's code does, it is one line
        from explorer.models.contract import ContractError

        if isinstance(exc, ContractError):
            return broken(f"its model breaks the contract: {_describe(exc)}")
        return broken(_describe(exc))
    return info


def replace_info(info: PluginInfo, **changes: Any) -> PluginInfo:
    import dataclasses

    return dataclasses.replace(info, **changes)


def _describe(exc: BaseException) -> str:
    from explorer.errors import UserError

    text = _line(exc, 240)
    if isinstance(exc, UserError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_lock = threading.Lock()
_found: tuple[PluginInfo, ...] | None = None


def discover() -> tuple[PluginInfo, ...]:
    """Every installed plugin, loaded and checked once (cached; thread-safe). Slow the first
    time when plugins import heavy modules: the window calls it off the GUI thread."""
    global _found
    with _lock:
        if _found is None:
            _found = _discover()
        return _found


def _discover() -> tuple[PluginInfo, ...]:
    try:
        eps = _entry_points()
    except Exception:  # noqa: BLE001 - unreadable metadata: no plugins, the app still starts
        return ()
    infos: list[PluginInfo] = []
    seen: dict[str, PluginInfo] = {}
    for ep in sorted(eps, key=lambda e: (e.name, getattr(e, "value", ""))):
        if ep.name in seen:
            first = seen[ep.name]
            distribution, version = _dist_of(ep)
            infos.append(PluginInfo(name=_line(ep.name, 64), distribution=_line(distribution, 100),
                                    dist_version=_line(version, 64), target=_line(getattr(ep, "value", ""), 200),
                                    error=f"the name is taken by {_line(first.source or first.target, 120)}"))
            continue
        info = _load(ep)
        seen[ep.name] = info
        infos.append(info)
    return tuple(infos)


def refresh() -> tuple[PluginInfo, ...]:
    """Forget what was found and discover again (after installing a plugin)."""
    global _found
    with _lock:
        _found = None
    return discover()


def loaded() -> bool:
    """Whether discovery has run (so :func:`discover` returns at once)."""
    return _found is not None


def find(name: str) -> PluginInfo | None:
    """The installed plugin of that name (ok or broken), or None."""
    for info in discover():
        if info.name == name:
            return info
    return None


def usable() -> dict[str, ModelPlugin]:
    """The plugins that work, by name."""
    return {i.name: i.plugin for i in discover() if i.ok and i.plugin is not None}


def get_plugin(name: str) -> ModelPlugin:
    """The working plugin ``name``, or PluginError in one line (missing or broken)."""
    return require(name)


def require(name: str, distribution: str = "") -> ModelPlugin:
    """The working plugin ``name``; else PluginError: "needs the model plugin 'vqvae' from the
    package 'latent-explorer-vqvae' (not installed): pip install latent-explorer-vqvae" (the
    package as a file names it, when it does and the name is a valid package name), or why
    the installed one is broken. The message starts with "needs", so callers put what needs
    it in front. Only installed entry points are looked up: nothing named here is imported."""
    info = find(name)
    if info is not None and info.ok and info.plugin is not None:
        return info.plugin
    quoted = repr(_line(name, 64))
    dist = distribution if _DISTRIBUTION.fullmatch(distribution or "") else ""
    where = f" from the package {dist!r}" if dist else ""
    if info is not None:
        raise PluginError(f"needs the model plugin {quoted}{where}, which is installed "
                          f"({_line(info.source, 120)}) but broken: {info.error}")
    advice = f": pip install {dist}" if dist else "; the file does not say which package provides it"
    raise PluginError(f"needs the model plugin {quoted}{where} (not installed){advice}")


def record_of(name: str) -> dict[str, str]:
    """What a checkpoint of plugin ``name``'s model stores about the plugin."""
    info = find(name)
    return info.record() if info is not None else {"name": name, "distribution": "", "version": ""}


def parse_record(text: str) -> dict[str, str]:
    """A checkpoint's stored plugin record, each value a bounded string ("" where damaged)."""
    try:
        data = json.loads(text) if len(text) <= 4096 else None
    except (ValueError, RecursionError):
        data = None
    data = data if isinstance(data, dict) else {}
    return {k: v if isinstance(v, str) and len(v) <= 200 else "" for k, v in
            ((k, data.get(k, "")) for k in ("name", "distribution", "version"))}


def preset_names() -> list[str]:
    """Built-in presets, then the working plugins' names."""
    return [*PRESETS, *sorted(usable())]


def find_preset(name: str) -> Preset:
    """A built-in preset or a working plugin's (discovering plugins only for a name that is
    not built in); ConfigError naming what there is."""
    if name in PRESETS:
        return PRESETS[name]
    info = find(name)
    if info is not None:
        return require(name).preset()
    plugins = sorted(usable())
    more = f"; model plugins: {', '.join(plugins)}" if plugins else ""
    raise ConfigError(f"unknown model preset {_line(repr(name), 60)}; choose one of {', '.join(PRESETS)}{more}")


__all__ = ["GROUP", "Field", "ModelPlugin", "PluginError", "PluginInfo", "discover", "refresh", "installed",
           "find", "find_preset", "get_plugin", "require", "usable", "loaded", "preset_names"]
