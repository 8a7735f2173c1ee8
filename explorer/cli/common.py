"""What every command shares: exit codes, one-line errors, output paths, the checks of names and paths made
before torch is imported, loading a checkpoint, progress bars."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

EXIT_USER_ERROR = 2

EXIT_DIVERGED = 3

EXIT_PROCESS_LOST = 4  # a distributed run lost one of its processes

EXIT_INTERRUPTED = 130

def _one_line(text: object, limit: int = 600) -> str:
    """Text fit for one line on a terminal: control characters and line breaks escaped as
    ``repr`` writes them (so escapes from a file or an argument cannot paint the screen),
    and at most ``limit`` characters."""
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return line if len(line) <= limit else line[:limit - 3] + "..."

def _echo(text: str) -> str:
    """An argument as a message quotes it: escaped and short."""
    return _one_line(repr(text), 40)

def _error(message: object) -> None:
    print(f"latent-explorer: error: {_one_line(message)}", file=sys.stderr)

# -- helpers ------------------------------------------------------------------------------
def _output_path(text: str, allowed: tuple[str, ...]) -> Path:
    """The output file, proven writable now, before any work (explorer.atomic.check_writable)."""
    from explorer.atomic import check_writable
    from explorer.errors import UserError

    path = Path(text)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file name ending in {' or '.join(allowed)}")
    if text.endswith(("/", os.sep)):  # Path() drops the slash: "x.npy/" would pass for a file name
        raise UserError(f"cannot write {_one_line(text, 200)}: that is a folder's name; give a file name ending in "
                        f"{' or '.join(allowed)}")
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise UserError(f"{path.name or path}: the output must end in {' or '.join(allowed)}")
    return check_writable(path)

# -- checks made before torch is imported ---------------------------------------------------------
# Each command's ``check_*`` runs these before the command imports torch (2 s, more on a busy
# machine), so that a mistyped name or path is refused at once, in one line. Nothing here
# imports torch, numpy or Qt (tests/unit/test_cli_early.py runs them in a fresh interpreter).

# The built-in datasets (explorer.data.BUILTIN, whose package imports torch) and their images'
# (channels, height, width): --image-size and --channels do not apply to them.
BUILTIN_DATASETS = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "kmnist": (1, 28, 28),
                    "cifar10": (3, 32, 32)}

ARRAY_SUFFIXES = (".npz", ".npy")  # explorer.data.arrays.ARRAY_SUFFIXES

# The variables torchrun sets (explorer.training.distributed.under_torchrun).
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _other_rank() -> bool:
    """Whether this is a torchrun process other than rank 0, which says nothing: rank 0 says
    what is wrong (explorer.training.distributed.env_rank, without importing torch)."""
    if not all(os.environ.get(k) for k in _TORCHRUN_ENV):
        return False
    rank = os.environ["RANK"].strip()
    return rank.isdigit() and int(rank) != 0


def _shown(text: object) -> str:
    return _one_line(text, 200)


def check_model(name: str, option: str = "--model") -> None:
    """A built-in preset or an installed model plugin's name (read from the packages'
    metadata: no plugin is imported); else ConfigError naming what there is. Whether an
    installed plugin works is found when it is loaded."""
    from explorer.errors import ConfigError
    from explorer.presets import PRESETS

    if name in PRESETS:
        return
    from explorer.plugins import installed

    plugins = sorted({found for found, _, _ in installed()})
    if name in plugins:
        return
    more = f"; model plugins: {', '.join(plugins)}" if plugins else ""
    raise ConfigError(f"{option}: unknown model preset {_echo(name)}; choose one of {', '.join(PRESETS)}{more}")


def check_checkpoint(text: str) -> None:
    """A checkpoint argument that names a regular file (not a folder, a FIFO or a device);
    else CheckpointError in one line. Only the file's type is looked at: reading it, and
    checking what it holds, is load_checkpoint's work."""
    from explorer.errors import CheckpointError
    from explorer.safe_files import kind

    if "\x00" in text:
        raise CheckpointError(f"{_echo(text)} is not a file name (it holds a NUL character)")
    if not text:
        raise CheckpointError("the checkpoint's name is empty; give a .safetensors file")
    try:
        info = os.stat(text)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(text):
            raise CheckpointError(f"{_shown(text)} is a broken link") from None
        raise CheckpointError(f"{_shown(text)} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"{_shown(text)} cannot be read ({exc.strerror or exc})") from None
    except ValueError:  # a name the OS cannot take (too long for a path, say)
        raise CheckpointError(f"{_echo(text)} is not a file name") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{_shown(text)} is a folder, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{_shown(text)} is {kind(info.st_mode)}, not a regular file")


def check_dataset(name: str, image_size: int | None = None, channels: int | None = None,
                  option: str = "--dataset") -> None:
    """A built-in dataset's name, a folder, or a .npz/.npy file that is there; else DataError
    in one line. ``--image-size`` and ``--channels`` (``image_size``, ``channels``) apply to
    folders and NumPy files only: asking a built-in dataset for another size or other
    channels is refused rather than ignored."""
    from explorer.display import plural
    from explorer.errors import DataError
    from explorer.safe_files import kind

    if "\x00" in name:
        raise DataError(f"{option} {_echo(name)} is not a name or a folder (it holds a NUL character)")
    if not name.strip():
        raise DataError(f"{option} is empty; give a dataset's name, a folder of images or a .npz/.npy file")
    shape = BUILTIN_DATASETS.get(name)
    if shape is not None:
        if image_size is not None and image_size != shape[1]:
            raise DataError(f"--image-size applies to image folders and NumPy files; {name} is "
                            f"{shape[1]}x{shape[2]}")
        if channels is not None and channels != shape[0]:
            raise DataError(f"--channels applies to image folders and NumPy files; {name} has "
                            f"{plural(shape[0], 'channel')}")
        return
    choices = f"give {', '.join(BUILTIN_DATASETS)}, a folder of images or a .npz/.npy file"
    shown = name if name.isprintable() else ascii(name)[1:-1]  # as the loaders write a name
    array = Path(name).suffix.lower() in ARRAY_SUFFIXES
    try:
        info = os.stat(name if array else os.path.expanduser(name))  # folders are read with ~ expanded
    except (FileNotFoundError, NotADirectoryError):
        if array:  # the words of explorer.data.arrays
            raise DataError(f"{shown} does not exist") from None
        if any(sep in name for sep in ("/", os.sep, "~")):
            raise DataError(f"{_shown(name)} does not exist; {choices}") from None
        raise DataError(f"{_shown(name)} is not a built-in dataset, and no folder or file of that name is here; "
                        f"{choices}") from None
    except (OSError, ValueError):
        return  # the loader says what is wrong (a name too long, a folder it may not look into)
    if array:  # the words of explorer.data.arrays (explorer.safe_files.open_regular)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{shown} is {kind(info.st_mode)}, not a regular file")
    elif not stat.S_ISDIR(info.st_mode):
        raise DataError(f"{_shown(name)} is not a folder of images, a .npz/.npy file or a built-in dataset; "
                        f"{choices}")


def _save_npy(path: Path, array: Any) -> None:
    from explorer.analysis.export import save_npy

    save_npy(path, array)

def _load(path: str, device: str = "cpu"):  # -> (Checkpoint, Autoencoder, torch.device)
    from explorer.errors import CheckpointError
    from explorer.training.checkpoint import load_checkpoint
    from explorer.training.device import resolve_device

    if "\x00" in path:
        raise CheckpointError(f"{path!r} is not a file name (it holds a NUL character)")
    ckpt = load_checkpoint(path)
    for note in ckpt.notes:  # parts of the file left out on load; the model itself is fine
        print(f"latent-explorer: note: {_one_line(note)}", file=sys.stderr)
    dev = resolve_device(device)
    model = ckpt.build_model().to(dev)
    return ckpt, model, dev

def _load_data(ckpt):  # -> ImageData
    from explorer.data import load_dataset
    from explorer.errors import DataError

    try:
        data = load_dataset(ckpt.data_config)
    except DataError as exc:
        raise DataError(f"cannot load the data this model was trained on ({ckpt.data_config.dataset}): {exc}") \
            from None
    if data.image_shape != ckpt.model_config.image_shape:
        raise DataError(f"the dataset {ckpt.data_config.dataset} now has images of shape {data.image_shape}, "
                        f"but the model was trained on {ckpt.model_config.image_shape}")
    return data

def _strict_json(record: dict[str, Any]) -> str:
    """JSON that other tools can parse: NaN and infinities become null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False)

def _check_room(out: Path, model) -> None:  # model: Autoencoder
    """Refuse to start a run whose checkpoint the disk at ``out`` has no room for (the old
    file stays until the new one is complete, so both must fit)."""
    import shutil

    from explorer.errors import UserError

    need = sum(v.numel() * v.element_size() for v in model.state_dict().values()) + (1 << 20)  # + header
    try:
        free = shutil.disk_usage(out.parent if str(out.parent) else ".").free
    except OSError:
        return
    if free < need:
        raise UserError(f"cannot write {out}: the checkpoint needs about {need / 1024**2:,.1f} MB and only "
                        f"{free / 1024**2:,.1f} MB are free there; free some space or choose another --out")

def _finite_weights(model) -> bool:  # model: Autoencoder
    import torch

    return all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point())

class _Bar:
    """A tqdm bar on stderr driven by fractions, for long evaluations."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1000, file=sys.stderr, dynamic_ncols=True, bar_format="{desc} {percentage:3.0f}%|"
                         "{bar}| {elapsed}<{remaining}")
        self._label = ""

    def update(self, fraction: float, label: str) -> None:
        if label != self._label:
            self._label = label
            self._bar.set_description_str(label, refresh=False)
        self._bar.n = int(1000 * fraction)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

def _progress_bar(wanted: bool) -> _Bar | None:
    return _Bar() if wanted and sys.stderr.isatty() else None
