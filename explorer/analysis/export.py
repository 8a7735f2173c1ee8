"""Writing arrays people take elsewhere: float32 NPY, and CSV with a header row.

The CLI and the GUI write codes through here so a file from either reads the same.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from explorer.errors import UserError


def save_npy(path: str | Path, array: np.ndarray) -> None:
    try:
        np.save(path, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    except OSError as exc:
        raise UserError(f"could not write {path}: {exc.strerror or exc}") from None


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
    try:
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            if labels is not None:
                writer.writerow(["label", *header])
                for label, row in zip(np.asarray(labels).tolist(), codes.tolist()):
                    writer.writerow([label, *(f"{v:.6g}" for v in row)])
            else:
                writer.writerow(header)
                writer.writerows([f"{v:.6g}" for v in row] for row in codes.tolist())
    except OSError as exc:
        raise UserError(f"could not write {path}: {exc.strerror or exc}") from None
