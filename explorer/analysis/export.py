"""Writing arrays people take elsewhere: float32 NPY, and CSV with a header row.

The CLI and the GUI write codes through here so a file from either reads the same. Both
are written atomically (explorer.atomic): a full disk leaves an earlier file as it was.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from explorer.atomic import atomic_write, write_text
from explorer.errors import UserError


def save_array(path: str | Path, array: np.ndarray) -> None:
    """Any array as ``.npy`` (no pickles), written atomically."""
    array = np.ascontiguousarray(array)
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def save_npy(path: str | Path, array: np.ndarray) -> None:
    save_array(path, np.ascontiguousarray(array, dtype=np.float32))


def save_codes(path: str | Path, codes: np.ndarray, labels: Sequence[int] | np.ndarray | None = None) -> None:
    """Codes (N, D) as ``.npy`` (float32) or ``.csv`` (``label`` column first when given)."""
    path = Path(path)
    codes = np.asarray(codes, dtype=np.float32)
    if path.suffix.lower() == ".npy":
        save_npy(path, codes)
        return
    if path.suffix.lower() != ".csv":
        raise UserError(f"{path.name}: codes are written as .npy or .csv")
    header = [f"z{i}" for i in range(codes.shape[1])]

    def write(fh) -> None:
        writer = csv.writer(fh)
        if labels is not None:
            writer.writerow(["label", *header])
            for label, row in zip(np.asarray(labels).tolist(), codes.tolist()):
                writer.writerow([label, *(f"{v:.6g}" for v in row)])
        else:
            writer.writerow(header)
            writer.writerows([f"{v:.6g}" for v in row] for row in codes.tolist())

    write_text(path, write, newline="")
