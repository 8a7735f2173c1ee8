"""Checkpoints: one safetensors file, weights as tensors, everything else as JSON metadata.

Loading never unpickles anything: safetensors parses a JSON header and raw tensor bytes,
and every config is rebuilt field by field through the frozen dataclasses' validation.
Before a model is built for real, its shapes are checked against a copy built on the
``meta`` device, so a hostile config cannot make us allocate a huge model. Whatever is
wrong with a file, loading raises one :class:`CheckpointError` with a one-line message. Writes go to a
temporary file in the same folder and are renamed into place, so a crash or a full disk
never leaves half a checkpoint where a good one was.

Opening a file is bounded at every step: only a regular file is read (a FIFO, a device such
as a link to ``/dev/zero``, a socket or a folder is refused after an ``fstat`` of the
descriptor, opened without blocking); the safetensors header's length is checked against
:data:`MAX_HEADER_BYTES` before it is read, and the tensor data's against what the config's
model can hold; JSON is parsed only when nested at most :data:`MAX_JSON_DEPTH` deep; the
loss history is thinned to a bounded number of points; class counts and image shapes are
bounded; what the model will need is priced by :mod:`explorer.memory_budget` before the
weights are read; and a model counts as loaded only when its weights are finite, within
:data:`MAX_WEIGHT`, and a forward pass of one small batch gives finite values everywhere.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from explorer import __version__
from explorer.analysis.directions import MAX_DIRECTIONS, Direction, from_records, to_records
from explorer.bounded_json import json_depth
from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.errors import CheckpointError, ConfigError
from explorer.memory_budget import MemoryBudgetError, check_open
from explorer.models.base import LatentModel, loss_part_names
from explorer.models.registry import build_model
from explorer.presets import PRESETS
from explorer.safe_files import FileRefused, open_regular, read_up_to
from explorer.training.history import MAX_STEP_POINTS, History
from explorer.training.timeline import MAX_TIMELINE_BYTES, Timeline
from explorer.training.timeline import PREFIX as TIMELINE_PREFIX

FORMAT = "latent-explorer/checkpoint"
FORMAT_VERSION = "1"
PREFIX = "model."
# Larger than any model this app builds by far; refuse before reading a giant file into memory.
MAX_BYTES = 2 * 1024**3


@dataclass
class Checkpoint:
    model_config: ModelConfig
    data_config: DataConfig
    train_config: TrainConfig
    state_dict: dict[str, torch.Tensor]
    history: History = field(default_factory=History)
    class_names: tuple[str, ...] = ()
    created: str = ""
    app_version: str = ""
    # Evaluation records as parsed JSON (explorer.evaluation.record reads them): kept apart
    # from the weights' validation, so a damaged record costs only itself.
    evaluations: list[Any] = field(default_factory=list)
    # The training timeline (explorer.training.timeline), or None: trained before timelines,
    # with them off, or stored damaged (dropped on load; the model is fine).
    timeline: Timeline | None = None
    # The file held a timeline that failed its checks and was dropped (``notes`` says why):
    # kept apart from "none stored" so messages never blame an old version for damage.
    timeline_damaged: bool = False
    # Named directions in the code space (explorer.analysis.directions), each checked on load:
    # a damaged one is dropped with a note, the rest and the model are kept.
    directions: tuple[Direction, ...] = ()
    # Metadata entries this version does not know (written by a later one): kept as they are
    # and written back by a save of this checkpoint, so no version drops another's data.
    extra_metadata: dict[str, str] = field(default_factory=dict)
    # One line for each part of the file that was left out on load (the model itself is fine).
    notes: tuple[str, ...] = ()

    def build_model(self) -> LatentModel:
        """A CPU model with these weights, in eval mode (a model plugin's through that
        installed plugin: explorer.models.registry.build_model)."""
        model = build_model(self.model_config)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model


def save_checkpoint(path: str | Path, model: LatentModel, data_config: DataConfig, train_config: TrainConfig,
                    history: History | None = None, class_names: tuple[str, ...] = (),
                    beside: str | None = None, evaluations: list[dict[str, Any]] | None = None,
                    timeline: Timeline | None = None, extra_metadata: dict[str, str] | None = None,
                    directions: tuple[Direction, ...] | list[Direction] = ()) -> Path:
    """Write a checkpoint atomically (explorer.atomic) and return where it went.

    With ``beside`` (a tag such as "interrupted"), an existing file at ``path`` is never
    replaced: the checkpoint goes to ``NAME.TAG.safetensors`` beside it (``-2``, ``-3``...
    where taken). A failed write raises CheckpointError and leaves any earlier file as it was.
    ``extra_metadata``: entries of a file this version did not write (Checkpoint.extra_metadata),
    kept; they never replace an entry this version writes. ``directions``: named directions in
    the code space (at most MAX_DIRECTIONS), as the ``directions.vectors`` tensor and a
    ``directions`` metadata entry.
    """
    path = Path(path)
    from explorer.atomic import atomic_write, write_beside
    from explorer.config import replace

    model_config = replace(model.config, beta=float(model.beta))  # keep a beta changed mid-run
    # A signal that lands inside autocast's own enter/exit (Ctrl+C mid-step) can leave CPU
    # autocast switched on; under it, stacking the timeline's fp16 tensors fails. The save
    # after an interrupt is the one that must work, so it never depends on that state.
    with torch.autocast("cpu", enabled=False):
        tensors = _tensors(model, timeline)
    history_record, steps = _split_history(history or History(part_names=model.part_names))
    if steps is not None:
        tensors[HISTORY_STEPS] = steps
    metadata = {k: v for k, v in (extra_metadata or {}).items() if k not in KNOWN_KEYS}
    metadata |= {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_config": model_config.to_json(),
        "data_config": data_config.to_json(),
        "train_config": train_config.to_json(),
        "history": json.dumps(history_record),
        "class_names": json.dumps(list(class_names)),
    }
    if evaluations:
        metadata["evaluations"] = json.dumps(evaluations)
    if timeline is not None and timeline.frames:
        metadata["timeline"] = timeline.metadata()
    if directions:
        if len(directions) > MAX_DIRECTIONS:
            raise CheckpointError(f"a checkpoint keeps at most {MAX_DIRECTIONS} directions, not {len(directions)}")
        if any(d.dim != model_config.latent_dim for d in directions):
            raise CheckpointError(f"a direction to save is not in this model's {model_config.latent_dim}-D code space")
        vectors, records = to_records(directions)
        tensors[DIRECTIONS_TENSOR] = torch.from_numpy(vectors)
        metadata[DIRECTIONS_KEY] = json.dumps(records)
    if model_config.plugin:
        # Names only (the entry point, its package and version), for messages: never code to import.
        from explorer.plugins import record_of

        metadata[PLUGIN_KEY] = json.dumps(record_of(model_config.plugin))
    payload = st_save(tensors, metadata=metadata)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"cannot save {path}: the folder {folder} does not exist")

    def write(fh) -> None:
        fh.write(payload)

    if beside:
        return write_beside(path, write, beside, error=CheckpointError)
    return atomic_write(path, write, error=CheckpointError)


# The step curve lives in the tensor body (float64 rows: step, loss, *parts): 4000 rows as JSON
# were about 0.3 MB to parse on open, and a foreign file's million rows held the GUI for a second.
HISTORY_STEPS = "history.steps"
MAX_HISTORY_COLUMNS = 34  # step, loss and up to 32 named terms
MAX_HISTORY_JSON = 4 * 1024**2  # 10,000 epoch records are about 2.5 MB; the app writes no more


def _split_history(history: History) -> tuple[dict[str, Any], torch.Tensor | None]:
    """The history's JSON record, whose step rows are left empty (so an older reader still
    opens the file, without the step curve), and those rows as one tensor."""
    record = history.to_dict()
    rows = record.pop("steps")
    record["steps"] = []
    if not rows:
        return record, None
    width = max(len(r) for r in rows)
    if all(len(r) == width for r in rows):  # the app's own rows: one call
        steps = torch.tensor(rows, dtype=torch.float64)
    else:  # a loaded older history may have ragged rows: pad with NaN
        steps = torch.full((len(rows), width), float("nan"), dtype=torch.float64)
        for i, row in enumerate(rows):
            steps[i, :len(row)] = torch.tensor(row, dtype=torch.float64)
    record["steps_tensor"] = HISTORY_STEPS
    return record, steps


def _tensors(model: LatentModel, timeline: Timeline | None) -> dict[str, torch.Tensor]:
    """The weights (``model.``) and the timeline's stacked frames (``timeline.``), on the CPU."""
    tensors = {PREFIX + k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if timeline is not None and timeline.frames:
        tensors.update(timeline.to_tensors())
    return tensors


MAX_LAYERS = 1000  # hidden plus conv layers: 100000 of them, even on "meta", took about a minute to build
MAX_MESSAGE = 600  # characters; an error message is one line a person reads
# The safetensors header (JSON: tensor offsets plus all metadata). A real one is tens of KB;
# 100,000 epochs of history make about 25 MB. A 200 MB header once took 1.7 GB to parse.
MAX_HEADER_BYTES = 32 * 1024**2
MAX_JSON_DEPTH = 32  # a real header nests 4 deep; Python's parser recurses once per level
MAX_HISTORY_STEPS = MAX_STEP_POINTS  # more rows are thinned on load (every k-th, and the last)
MAX_HISTORY_EPOCHS = 10_000  # likewise for per-epoch records
MAX_CLASSES = 10_000  # classes a checkpoint may know (a one-hot input per class, in every batch)
MAX_CLASS_NAME = 1000  # characters in one class name
MAX_CHANNELS = 4
MAX_SIDE = 1024  # pixels; folders load at most 512, the built-in datasets at 32
# Trained weights stay within a few tens; beyond this a file is damaged or hostile (3e38
# loaded once, then gave NaN losses, infinite codes and an SVD that did not converge).
MAX_WEIGHT = 1e4


def _quote(value: object, limit: int = 120) -> str:
    """Text from a file, fit for a one-line message: control characters and line breaks
    escaped as ``repr`` writes them, and at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """The last guard: whatever a file put into a message, it leaves as one short line."""
    try:
        yield
    except CheckpointError as exc:
        message = str(exc)
        if message.splitlines() != [message] or len(message) > MAX_MESSAGE:
            raise CheckpointError(_quote(message, MAX_MESSAGE)) from None
        raise


def _bounded_json(text: str, what: str, path: Path) -> Any:
    if json_depth(text) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{path.name} has a damaged {what} (nested more than {MAX_JSON_DEPTH} deep)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        raise CheckpointError(f"{path.name} has a damaged {what} (not JSON)") from None


def _meta_json(metadata: dict[str, str], key: str, path: Path) -> Any:
    if key not in metadata:
        raise CheckpointError(f"{path.name} is missing its {key.replace('_', ' ')}")
    return _bounded_json(metadata[key], key.replace("_", " "), path)


def _size(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _open_regular(path: Path) -> tuple[int, int]:
    """A descriptor of ``path`` and its size, only when it is a regular file of at most
    :data:`MAX_BYTES`.

    :func:`explorer.safe_files.open_regular` opens it with O_NONBLOCK, so a FIFO without a
    writer cannot hang us, then checks it with ``fstat`` on the descriptor itself (no race
    with a file swapped in between): a link to ``/dev/zero`` or a FIFO is refused before a
    byte is read. Its refusals are worded here for a checkpoint, and the size is checked
    here so that the message says how large the file is.
    """
    try:
        fd, size = open_regular(path, 2**63 - 1)  # no cap there: MAX_BYTES is checked below
    except FileNotFoundError:
        if path.is_symlink():
            raise CheckpointError(f"{path} is a broken link") from None
        raise CheckpointError(f"{path} does not exist") from None
    except FileRefused as exc:
        if path.is_dir():  # Windows refuses to open a folder with a permission error
            raise CheckpointError(f"{path} is a folder, not a checkpoint file") from None
        raise CheckpointError(f"{path} {exc.reason}") from None
    if size > MAX_BYTES:
        os.close(fd)
        raise CheckpointError(f"{path.name} is {_size(size)}, far larger than any Latent Explorer checkpoint")
    return fd, size


def _read_up_to(fd: int, n: int, path: Path) -> bytes:
    """Exactly ``n`` bytes from ``fd`` (fewer only at the end of the file), never more
    (:func:`explorer.safe_files.read_up_to`, its refusal a CheckpointError)."""
    try:
        return read_up_to(fd, n, path)
    except FileRefused as exc:
        raise CheckpointError(f"{path} {exc.reason}") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    with _one_line_errors():
        raw, front, _ = _read_checked(path)
        return _finish(front, raw, path)


def _read_checked(path: Path) -> tuple[bytes, _Front, tuple[int, int, int]]:
    """The file's bytes and its checked header, read within every bound above, and the
    file's (size, mtime_ns, inode) as read (a rewrite refuses to replace a newer file)."""
    fd, size = _open_regular(path)
    try:
        info = os.fstat(fd)
        head = _read_up_to(fd, 8, path)
        n = _header_length(head, size, path)
        header = _read_up_to(fd, n, path)
        if len(header) < n:
            raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (truncated)")
        front = _parse_front(header, path)
        _check_budget(front, size - 8 - n, size, path)
        rest = _read_up_to(fd, size - 8 - n, path)  # what fstat said; a file that grows is cut there
    finally:
        os.close(fd)
    return head + header + rest, front, (info.st_size, info.st_mtime_ns, info.st_ino)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


# The metadata entries this version writes and reads; any other is a later version's, kept.
KNOWN_KEYS = frozenset({"format", "format_version", "app_version", "created", "model_config", "data_config",
                        "train_config", "history", "class_names", "evaluations", "timeline", "model_plugin",
                        "directions"})
# Named directions: their unit vectors as one (k, latent) tensor, the rest as a JSON list.
DIRECTIONS_TENSOR = "directions.vectors"
DIRECTIONS_KEY = "directions"
# A model plugin's checkpoint: {"name", "distribution", "version"} of the plugin that made it.
PLUGIN_KEY = "model_plugin"
# The metadata keys a rewrite may change; everything else in a file passes through untouched.
REWRITABLE_KEYS = frozenset({"evaluations"})


def rewrite_checkpoint(path: str | Path, change: Callable[[Checkpoint], dict[str, Any]]) -> Path:
    """Change some of a checkpoint's metadata in place and keep everything else exactly.

    The one way a file on disk is rewritten (evaluation records today): the weights, the
    timeline and any tensor are written back byte for byte, and every metadata entry not
    named in ``changes`` (configs, history, class names, entries a later version adds) is
    kept as stored. ``change`` gets the checkpoint as read and returns a dict mapping keys of
    :data:`REWRITABLE_KEYS` to their new JSON values (None removes one), so a merge is made
    with what the file holds at that moment. The file is read and checked as :func:`load_checkpoint` does, written
    atomically, and left alone, with CheckpointError, when another process replaced it
    while we worked (a run saving ``--checkpoint-every`` beside an evaluation).
    """
    path = Path(path)
    from explorer.atomic import atomic_write

    with _one_line_errors():
        raw, front, signature = _read_checked(path)
        tensors = _tensors_of(raw, path)  # parsed once: checked below, then written back as they are
        changes = change(_finish(front, raw, path, tensors))  # checked as an open is: damaged files stay
        unknown = set(changes) - REWRITABLE_KEYS
        if unknown:
            raise ValueError(f"rewrite_checkpoint cannot change {sorted(unknown)}")
        metadata = dict(front.metadata)
        for key, value in changes.items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = json.dumps(value)
        payload = st_save(tensors, metadata=metadata)

        def write(fh) -> None:
            fh.write(payload)
            if _signature(path) != signature:
                raise CheckpointError(f"{path.name} was replaced by another process while it was being updated; "
                                      "it was left as that process wrote it")

        return atomic_write(path, write, error=CheckpointError)


def _header_length(head: bytes, size: int, path: Path) -> int:
    """The safetensors header's length from the file's first 8 bytes, checked against the
    cap and the file's size before a byte of the header is read."""
    if len(head) < 8:
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (too short)")
    n = int.from_bytes(head[:8], "little")
    if n > MAX_HEADER_BYTES and 8 + n <= size:
        raise CheckpointError(f"{path.name} has a header of {_size(n)}; a Latent Explorer checkpoint's is at "
                              f"most {_size(MAX_HEADER_BYTES)}")
    if n <= 1 or 8 + n > size:
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (not a safetensors file, or truncated)")
    return n


def _header_metadata(header_bytes: bytes, path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The metadata and the tensor entries of a safetensors header."""
    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (unreadable header)") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (unreadable header)")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a safetensors file but not a Latent Explorer checkpoint")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path.name} uses checkpoint format {_quote(repr(metadata.get('format_version')))}; "
                              f"this version of Latent Explorer reads format {FORMAT_VERSION}")
    if not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path.name} has damaged metadata")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    return metadata, entries


def parse_checkpoint(raw: bytes, path: Path = Path("checkpoint")) -> Checkpoint:
    with _one_line_errors():
        n = _header_length(raw[:8], len(raw), path)
        front = _parse_front(raw[8:8 + n], path)
        _check_budget(front, len(raw) - 8 - n, len(raw), path)
        return _finish(front, raw, path)


@dataclass
class _Front:
    """What the header says, checked, before any weight is read."""

    model_config: ModelConfig
    data_config: DataConfig
    train_config: TrainConfig
    history: History
    class_names: tuple[str, ...]
    expected: dict[str, tuple[torch.Size, torch.dtype]]
    metadata: dict[str, str]
    entries: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    history_unread: bool = False  # a foreign, oversized JSON history was left unread


def _parse_front(header_bytes: bytes, path: Path) -> _Front:
    metadata, entries = _header_metadata(header_bytes, path)
    try:
        model_config = ModelConfig.from_dict(_meta_json(metadata, "model_config", path))
        data_config = DataConfig.from_dict(_meta_json(metadata, "data_config", path))
        train_config = TrainConfig.from_dict(_meta_json(metadata, "train_config", path))
    except ConfigError as exc:
        raise CheckpointError(f"{path.name} has an invalid config: {_quote(exc, 300)}") from None
    except RecursionError:  # a value nested so deep that its repr() in the message overflows
        raise CheckpointError(f"{path.name} has an invalid config (values nested too deeply)") from None
    notes: list[str] = []
    if model_config.plugin:
        model_config = _plugin_config(model_config, metadata, path, notes)
    elif model_config.preset and model_config.preset not in PRESETS:
        raise CheckpointError(f"{path.name} names an unknown model preset {_quote(repr(model_config.preset))}")
    _check_shape_and_classes(model_config, path)
    if len(metadata.get("history", "")) > MAX_HISTORY_JSON:
        # Parsing it would hold the interpreter (and so the window) for a second or more.
        notes.append(f"its loss history ({_size(len(metadata['history']))}) is far longer than Latent Explorer "
                     "writes and was not read; the curves start empty")
        history = History(part_names=loss_part_names(model_config.variational, model_config.sparsity_weight > 0))
    else:
        try:
            history = History.from_dict(_thinned_history(_meta_json(metadata, "history", path)))
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise CheckpointError(f"{path.name} has a damaged loss history: {_quote(exc, 200)}") from None
    names = _meta_json(metadata, "class_names", path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path.name} has damaged class names")
    if len(names) > MAX_CLASSES:
        raise CheckpointError(f"{path.name} names {len(names):,} classes; Latent Explorer models know at most "
                              f"{MAX_CLASSES:,}")
    if any(len(n) > MAX_CLASS_NAME for n in names):
        raise CheckpointError(f"{path.name} has a class name over {MAX_CLASS_NAME} characters long")
    if model_config.conditional and names and len(names) != model_config.num_classes:
        raise CheckpointError(f"{path.name} names {len(names):,} classes for a model of "
                              f"{model_config.num_classes:,} classes")
    if data_config.classes is not None and len(data_config.classes) > MAX_CLASSES:
        raise CheckpointError(f"{path.name} selects {len(data_config.classes):,} classes; Latent Explorer "
                              f"datasets have at most {MAX_CLASSES:,}")
    expected = _expected_weights(model_config, path)  # before the weights are read
    return _Front(model_config, data_config, train_config, history, tuple(names), expected, metadata, entries,
                  notes, history_unread=len(metadata.get("history", "")) > MAX_HISTORY_JSON)


def _plugin_config(config: ModelConfig, metadata: dict[str, str], path: Path, notes: list[str]) -> ModelConfig:
    """A model plugin's config, its settings checked by the installed plugin of that name.
    Only installed entry points are looked up (explorer.plugins): the package and version
    the file names are words for the message, never anything to import. A missing plugin is
    refused in one line naming the package to install."""
    from explorer.plugins import find, parse_record, require

    record = parse_record(metadata.get(PLUGIN_KEY, ""))
    try:
        plugin = require(config.plugin, record["distribution"])
        config = plugin.complete(config)
    except ConfigError as exc:  # PluginError included: missing, broken, or a setting it refuses
        text = str(exc)
        raise CheckpointError(f"{path.name} {text}" if text.startswith("needs ") else
                              f"{path.name} has an invalid config: {_quote(text, 300)}") from None
    info = find(config.plugin)
    if info is not None and record["version"] and info.version and record["version"] != info.version:
        notes.append(f"it was made with the model plugin {config.plugin} {_quote(record['version'], 40)}; "
                     f"{_quote(info.version, 40)} is installed")
    return config


def _check_shape_and_classes(config: ModelConfig, path: Path) -> None:
    c, h, w = config.image_shape
    if c > MAX_CHANNELS or h > MAX_SIDE or w > MAX_SIDE:
        raise CheckpointError(f"{path.name} describes images of {c}x{h}x{w}; Latent Explorer models take at most "
                              f"{MAX_CHANNELS} channels of {MAX_SIDE}x{MAX_SIDE} pixels")
    if config.num_classes > MAX_CLASSES:
        raise CheckpointError(f"{path.name} describes a model of {config.num_classes:,} classes; Latent Explorer "
                              f"models know at most {MAX_CLASSES:,}")


def _thin(rows: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``rows``: every k-th, and always the last."""
    k = math.ceil(len(rows) / limit)
    kept = rows[::k]
    if kept[-1] is not rows[-1]:
        kept[-1] = rows[-1]
    return kept


def _thinned_history(data: Any) -> Any:
    """A history dict with at most MAX_HISTORY_STEPS step rows and MAX_HISTORY_EPOCHS epoch
    records, thinned before they are validated one by one (a million rows took seconds)."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    steps, epochs = data.get("steps"), data.get("epochs")
    if isinstance(steps, list) and len(steps) > MAX_HISTORY_STEPS:
        k = math.ceil(len(steps) / MAX_HISTORY_STEPS)
        data["steps"] = _thin(steps, MAX_HISTORY_STEPS)
        stride = data.get("stride", 1)
        if isinstance(stride, int) and not isinstance(stride, bool) and 1 <= stride < 2**40:
            data["stride"] = stride * k
    if isinstance(epochs, list) and len(epochs) > MAX_HISTORY_EPOCHS:
        data["epochs"] = _thin(epochs, MAX_HISTORY_EPOCHS)
    return data


# Bytes per number a file may store its weights in (float64 is the widest that loads).
_WIDEST = 8


def _check_budget(front: _Front, data_bytes: int, file_bytes: int, path: Path) -> None:
    """Refuse, before reading them, tensor data larger than the config's model could be
    stored in, and a model this machine's free memory cannot hold."""
    timeline = sum(1 for k in front.entries if k.startswith(TIMELINE_PREFIX))
    steps_bytes = MAX_HISTORY_STEPS * MAX_HISTORY_COLUMNS * 8 if HISTORY_STEPS in front.entries else 0
    steps_bytes += MAX_DIRECTIONS * front.model_config.latent_dim * _WIDEST if DIRECTIONS_TENSOR in front.entries else 0
    # A timeline stacks at most one tensor per decoder weight, plus six of its own.
    if len(front.entries) - timeline > len(front.expected) + 16 or timeline > len(front.expected) + 6:
        raise CheckpointError(f"{path.name} holds {len(front.entries):,} tensors; the model its config describes "
                              f"has {len(front.expected)}")
    numbers = sum(shape.numel() for shape, _ in front.expected.values())
    if data_bytes > numbers * _WIDEST + 64 * 1024 + steps_bytes + (MAX_TIMELINE_BYTES if timeline else 0):
        raise CheckpointError(f"{path.name} holds {_size(data_bytes)} of tensor data; the model its config "
                              f"describes has only {_size(numbers * 4)} of weights")
    try:
        check_open(front.model_config, file_bytes)
    except MemoryBudgetError as exc:
        raise CheckpointError(f"{path.name}: {exc}") from None


def _tensors_of(raw: bytes, path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checked file, as stored (dtypes kept)."""
    try:
        with torch.autocast("cpu", enabled=False):
            return st_load(raw)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser trips on, the file is damaged
        # (SafetensorError, and a KeyError for dtypes such as F4 that its torch side cannot map)
        raise CheckpointError(f"{path.name} is damaged or truncated ({_quote(exc, 200)})") from None


def _finish(front: _Front, raw: bytes, path: Path, tensors: dict[str, torch.Tensor] | None = None) -> Checkpoint:
    """The checkpoint from a checked header and its file's bytes (``tensors``: already parsed
    from them; read here otherwise). The tensors themselves are not changed."""
    if tensors is None:
        tensors = _tensors_of(raw, path)
    state = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    state = _checked_weights(state, front.expected, path)
    if not front.history_unread:  # the step rows belong to the JSON record they were saved with
        _steps_from_tensor(front, tensors.get(HISTORY_STEPS), path)
    _check_forward(front.model_config, state, path)
    metadata = front.metadata
    timeline, damage = _timeline(tensors, metadata, front.model_config, front.class_names)
    if damage:  # said where notes are said (the CLI's commands, the window on open)
        front.notes.append(TIMELINE_DAMAGED_NOTE.format(why=damage))
    directions, direction_notes = _directions(tensors, metadata, front.model_config.latent_dim)
    front.notes.extend(direction_notes)
    return Checkpoint(model_config=front.model_config, data_config=front.data_config,
                      train_config=front.train_config, state_dict=state, history=front.history,
                      class_names=front.class_names, created=metadata.get("created", ""),
                      app_version=metadata.get("app_version", ""), evaluations=_evaluations(metadata, path),
                      timeline=timeline, timeline_damaged=bool(damage), directions=tuple(directions),
                      extra_metadata={k: v for k, v in metadata.items() if k not in KNOWN_KEYS},
                      notes=tuple(front.notes))


def _steps_from_tensor(front: _Front, steps: torch.Tensor | None, path: Path) -> None:
    """Put the stored step rows into ``front.history``: checked as the JSON rows are (numbers,
    a finite step count first) and thinned to MAX_HISTORY_STEPS."""
    if steps is None:
        return
    if steps.dim() != 2 or not 2 <= steps.shape[1] <= MAX_HISTORY_COLUMNS or not steps.is_floating_point():
        raise CheckpointError(f"{path.name} has a damaged loss history (its step rows have shape "
                              f"{tuple(steps.shape)})")
    steps = steps.to(torch.float64)
    if not bool(torch.isfinite(steps[:, 0]).all()) or bool((steps[:, 0] < 0).any()):
        raise CheckpointError(f"{path.name} has a damaged loss history (a step count is not a whole number)")
    history = front.history
    if len(steps) > MAX_HISTORY_STEPS:
        k = math.ceil(len(steps) / MAX_HISTORY_STEPS)
        steps = torch.cat([steps[:-1:k], steps[-1:]])
        history._stride = history._stride * k
    history.steps = steps.tolist()
    last = int(steps[-1, 0]) if len(steps) else 0
    history._latest_step = max(history._latest_step, last)


# The note a damaged timeline leaves (Checkpoint.notes); explorer.training.film quotes it.
TIMELINE_DAMAGED_NOTE = "its training timeline is damaged ({why}) and was dropped; the model is fine"


def timeline_classes(config: ModelConfig, class_names: tuple[str, ...]) -> int:
    """How many classes a checkpoint's timeline labels may name: a conditional model's own
    count, else the stored class names', else MAX_CLASSES (all a checkpoint may know)."""
    if config.conditional:
        return config.num_classes
    return len(class_names) if class_names else MAX_CLASSES


def _timeline(tensors: dict[str, torch.Tensor], metadata: dict[str, str], config: ModelConfig,
              class_names: tuple[str, ...]) -> tuple[Timeline | None, str]:
    """The stored training timeline, or None when there is none or it is damaged (a replay
    is lost, never the model), and for a damaged one why (one line; empty otherwise), so no
    message calls a damaged timeline absent."""
    parts = {k: v for k, v in tensors.items() if k.startswith(TIMELINE_PREFIX)}
    if not parts and "timeline" not in metadata:
        return None, ""
    try:
        if not parts or "timeline" not in metadata:
            raise ValueError("the timeline lacks its " + ("tensors" if not parts else "metadata"))
        if json_depth(metadata["timeline"]) > MAX_JSON_DEPTH:
            raise ValueError(f"the timeline's metadata is nested more than {MAX_JSON_DEPTH} deep")
        return Timeline.from_parts(parts, metadata["timeline"], config,
                                   classes=timeline_classes(config, class_names)), ""
    except MemoryError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        return None, _quote(exc, 200) or "it failed its checks"


def _directions(tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                dim: int) -> tuple[list[Direction], list[str]]:
    """The stored named directions, each checked on its own (explorer.analysis.directions.
    from_records), and a note for what was dropped: a damaged direction costs only itself."""
    vectors, text = tensors.get(DIRECTIONS_TENSOR), metadata.get(DIRECTIONS_KEY)
    if vectors is None and text is None:
        return [], []
    if vectors is None or text is None:
        return [], [f"its directions lack their {'vectors' if vectors is None else 'names'} and were dropped"]
    if not vectors.is_floating_point() or vectors.dim() != 2 or vectors.shape[0] > MAX_DIRECTIONS:
        return [], [f"its directions are damaged (vectors of shape {tuple(vectors.shape)}) and were dropped"]
    if json_depth(text) > MAX_JSON_DEPTH:
        return [], ["its directions are damaged (nested too deep) and were dropped"]
    try:
        records = json.loads(text)
    except (ValueError, RecursionError):
        return [], ["its directions are damaged (not JSON) and were dropped"]
    return from_records(vectors.to(torch.float64).numpy(), records, dim)


def _evaluations(metadata: dict[str, str], path: Path) -> list[Any]:
    """The stored evaluation records, or none when the entry is missing or damaged (the
    numbers are recomputed; the model itself is fine)."""
    if "evaluations" not in metadata:
        return []
    try:
        records = _bounded_json(metadata["evaluations"], "evaluation", path)
    except CheckpointError:
        return []
    return records if isinstance(records, list) else []


def _check_forward(config: ModelConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    """A forward pass of two images through a model sharing ``state`` (no copy): every
    layer's output, the code, its sample and the loss terms must be finite, or the first
    layer whose output is not is named."""
    try:
        with torch.device("meta"):
            model = build_model(config, check=False)
        model.load_state_dict(state, assign=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the shapes were checked; anything left is a damaged file
        raise CheckpointError(f"{path.name} does not match its config ({_quote(exc, 200)})") from None
    model.eval()
    bad: list[str] = []

    def watch(name: str):
        def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
            if not bad and isinstance(output, torch.Tensor) and not bool(torch.isfinite(output).all()):
                bad.append(name)
        return hook

    handles = [m.register_forward_hook(watch(name)) for name, m in model.named_modules()
               if name and not list(m.children())]
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, *config.image_shape, generator=generator)
    y = torch.tensor([0, config.num_classes - 1]) if config.conditional else None
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            torch.manual_seed(0)
            parts, logits, z = model.loss_parts(x, y)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path.name}: its model does not run on a test batch ({_quote(exc, 200)})") from None
    finally:
        for handle in handles:
            handle.remove()
    if bad:
        raise CheckpointError(f"{path.name}: the weights of layer {bad[0]} are out of range "
                              "(its outputs on a test batch are not finite)")
    values = {"code": z, "reconstruction": logits, **{f"{k} loss": v for k, v in parts.items()}}
    for what, value in values.items():
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path.name}: the weights are out of range (the {what} of a test batch "
                                  "is not finite)")


def _expected_weights(config: ModelConfig, path: Path) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """The shapes and dtypes the config's model has, from a copy built on the ``meta``
    device (no memory), refusing models too deep or too large for any real checkpoint."""
    layers = len(config.hidden_dims) + len(config.conv_channels)
    if layers > MAX_LAYERS:
        raise CheckpointError(f"{path.name} describes a model with {layers} layers; "
                              f"Latent Explorer models have at most {MAX_LAYERS}")
    try:
        with torch.device("meta"):
            expected = {k: (v.shape, v.dtype) for k, v in build_model(config, check=False).state_dict().items()}
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a config the model classes cannot build is a bad file
        raise CheckpointError(f"{path.name} describes a model that cannot be built: {_quote(exc, 200)}") from None
    n_bytes = sum(shape.numel() * torch.empty((), dtype=dtype).element_size() for shape, dtype in expected.values())
    if n_bytes > MAX_BYTES:
        size = f"{n_bytes / 1024**3:.1f} GiB" if n_bytes >= 1024**3 else f"{n_bytes / 1024**2:.1f} MiB"
        raise CheckpointError(f"{path.name} describes a model of {size}, larger than any Latent Explorer model")
    return expected


def _checked_weights(state: dict[str, torch.Tensor], expected: dict[str, tuple[torch.Size, torch.dtype]],
                     path: Path) -> dict[str, torch.Tensor]:
    """The weights, each checked against the config and converted to the model's dtype
    (float16, bfloat16, float64 and float8 files load); NaN and infinity are refused after
    the conversion, so a float64 1e300 that would become inf in float32 is refused too."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{path.name} does not match its config: weights for {missing[0]} are missing")
    if extra:
        raise CheckpointError(f"{path.name} does not match its config: unexpected weights {_quote(extra[0])}")
    checked: dict[str, torch.Tensor] = {}
    for key, (shape, dtype) in expected.items():
        tensor = state[key]
        if tensor.shape != shape:
            raise CheckpointError(f"{path.name} does not match its config: {key} has shape {tuple(tensor.shape)}, "
                                  f"the config needs {tuple(shape)}")
        if not tensor.is_floating_point():
            raise CheckpointError(f"{path.name} is damaged: {key} is not floating point")
        tensor = tensor.to(dtype)
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path.name} holds weights that are NaN or infinite ({key})")
        if tensor.numel() and float(tensor.abs().max()) > MAX_WEIGHT:
            layer = key.rsplit(".", 1)[0]
            raise CheckpointError(f"{path.name}: the weights of layer {layer} are out of range (up to "
                                  f"{float(tensor.abs().max()):.3g}; trained weights stay within ±{MAX_WEIGHT:g})")
        checked[key] = tensor
    return checked
