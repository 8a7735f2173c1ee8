"""What every command shares: exit codes, one-line errors, output paths, loading a checkpoint, progress bars."""

from __future__ import annotations

import json
import math
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
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise UserError(f"{path.name or path}: the output must end in {' or '.join(allowed)}")
    return check_writable(path)

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
