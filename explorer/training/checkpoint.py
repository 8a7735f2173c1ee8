"""Checkpoints: one safetensors file, weights as tensors, everything else as JSON metadata.

Loading never unpickles anything: safetensors parses a JSON header and raw tensor bytes,
and every config is rebuilt field by field through the frozen dataclasses' validation.
Before a model is built for real, its shapes are checked against a copy built on the
``meta`` device, so a hostile config cannot make us allocate a huge model. Whatever is
wrong with a file, loading raises one :class:`CheckpointError` with a one-line message. Writes go to a
temporary file in the same folder and are renamed into place, so a crash or a full disk
never leaves half a checkpoint where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from explorer import __version__
from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.errors import CheckpointError, ConfigError
from explorer.models.autoencoder import Autoencoder
from explorer.presets import PRESETS
from explorer.training.history import History

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

    def build_model(self) -> Autoencoder:
        """A CPU model with these weights, in eval mode."""
        model = Autoencoder(self.model_config)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model


def save_checkpoint(path: str | Path, model: Autoencoder, data_config: DataConfig, train_config: TrainConfig,
                    history: History | None = None, class_names: tuple[str, ...] = (),
                    beside: str | None = None) -> Path:
    """Write a checkpoint atomically (explorer.atomic) and return where it went.

    With ``beside`` (a tag such as "interrupted"), an existing file at ``path`` is never
    replaced: the checkpoint goes to ``NAME.TAG.safetensors`` beside it (``-2``, ``-3``...
    where taken). A failed write raises CheckpointError and leaves any earlier file as it was.
    """
    path = Path(path)
    from explorer.atomic import atomic_write, write_beside
    from explorer.config import replace

    model_config = replace(model.config, beta=float(model.beta))  # keep a beta changed mid-run
    tensors = {PREFIX + k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_config": model_config.to_json(),
        "data_config": data_config.to_json(),
        "train_config": train_config.to_json(),
        "history": json.dumps((history or History(part_names=model.part_names)).to_dict()),
        "class_names": json.dumps(list(class_names)),
    }
    payload = st_save(tensors, metadata=metadata)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"cannot save {path}: the folder {folder} does not exist")

    def write(fh) -> None:
        fh.write(payload)

    if beside:
        return write_beside(path, write, beside, error=CheckpointError)
    return atomic_write(path, write, error=CheckpointError)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, payload: bytes) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"cannot save {path}: the folder {folder} does not exist")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes it private; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise CheckpointError(f"could not save {path}: {exc.strerror or exc}; any earlier file there is untouched") \
            from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


# Limits on what a file may describe, checked before anything is built or read for real.
# No model this app trains comes near them; a hostile config must not freeze or exhaust us.
MAX_LAYERS = 1000  # hidden plus conv layers: 100000 of them, even on "meta", took about a minute to build
MAX_MESSAGE = 600  # characters; an error message is one line a person reads


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


def _meta_json(metadata: dict[str, str], key: str, path: Path) -> Any:
    if key not in metadata:
        raise CheckpointError(f"{path.name} is missing its {key.replace('_', ' ')}")
    try:
        return json.loads(metadata[key])
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        raise CheckpointError(f"{path.name} has a damaged {key.replace('_', ' ')} (not JSON)") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    with _one_line_errors():
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CheckpointError(f"{path} does not exist") from None
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, not a checkpoint file")
        if size > MAX_BYTES:
            raise CheckpointError(f"{path.name} is {size / 1024**3:.1f} GiB, "
                                  "far larger than any Latent Explorer checkpoint")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
        return parse_checkpoint(raw, path)


def _read_metadata(raw: bytes, path: Path) -> dict[str, str]:
    """Parse only the safetensors header (JSON), so junk is refused before tensors are read."""
    if len(raw) < 8:
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (too short)")
    n = int.from_bytes(raw[:8], "little")
    if n <= 1 or 8 + n > len(raw):
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (not a safetensors file, or truncated)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path.name} is not a Latent Explorer checkpoint (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a safetensors file but not a Latent Explorer checkpoint")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path.name} uses checkpoint format {_quote(repr(metadata.get('format_version')))}; "
                              f"this version of Latent Explorer reads format {FORMAT_VERSION}")
    if not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path.name} has damaged metadata")
    return metadata


def parse_checkpoint(raw: bytes, path: Path = Path("checkpoint")) -> Checkpoint:
    with _one_line_errors():
        return _parse(raw, path)


def _parse(raw: bytes, path: Path) -> Checkpoint:
    metadata = _read_metadata(raw, path)
    try:
        model_config = ModelConfig.from_dict(_meta_json(metadata, "model_config", path))
        data_config = DataConfig.from_dict(_meta_json(metadata, "data_config", path))
        train_config = TrainConfig.from_dict(_meta_json(metadata, "train_config", path))
    except ConfigError as exc:
        raise CheckpointError(f"{path.name} has an invalid config: {_quote(exc, 300)}") from None
    except RecursionError:  # a value nested so deep that its repr() in the message overflows
        raise CheckpointError(f"{path.name} has an invalid config (values nested too deeply)") from None
    if model_config.preset and model_config.preset not in PRESETS:
        raise CheckpointError(f"{path.name} names an unknown model preset {_quote(repr(model_config.preset))}")
    try:
        history = History.from_dict(_meta_json(metadata, "history", path))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise CheckpointError(f"{path.name} has a damaged loss history: {_quote(exc, 200)}") from None
    names = _meta_json(metadata, "class_names", path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path.name} has damaged class names")

    expected = _expected_weights(model_config, path)  # before the weights are read
    try:
        tensors = st_load(raw)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser trips on, the file is damaged
        # (SafetensorError, and a KeyError for dtypes such as F4 that its torch side cannot map)
        raise CheckpointError(f"{path.name} is damaged or truncated ({_quote(exc, 200)})") from None
    state = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    state = _checked_weights(state, expected, path)
    return Checkpoint(model_config=model_config, data_config=data_config, train_config=train_config,
                      state_dict=state, history=history, class_names=tuple(names),
                      created=metadata.get("created", ""), app_version=metadata.get("app_version", ""))


def _expected_weights(config: ModelConfig, path: Path) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """The shapes and dtypes the config's model has, from a copy built on the ``meta``
    device (no memory), refusing models too deep or too large for any real checkpoint."""
    layers = len(config.hidden_dims) + len(config.conv_channels)
    if layers > MAX_LAYERS:
        raise CheckpointError(f"{path.name} describes a model with {layers} layers; "
                              f"Latent Explorer models have at most {MAX_LAYERS}")
    try:
        with torch.device("meta"):
            expected = {k: (v.shape, v.dtype) for k, v in Autoencoder(config).state_dict().items()}
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
        checked[key] = tensor
    return checked
