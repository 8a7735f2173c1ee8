"""Generated images as a dataset: an image folder the app loads back (``class/0001.png``,
or flat without classes) plus the same images as NPY beside the PNGs.

The folder loader ignores the ``.npy`` files, so the folder can be opened as a dataset
as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from explorer.analysis.export import save_npy
from explorer.errors import UserError


def _safe_name(name: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or fallback


def write_image_folder(folder: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
                       class_names: tuple[str, ...] = ()) -> list[Path]:
    """Write (N, C, H, W) images in [0, 1]; ``labels`` put each in its class's sub-folder.
    Refuses a folder that already has files, so nothing is overwritten."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder} already exists and is not empty; choose a new or empty folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        counters: dict[str, int] = {}
        pixels = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
        for i, image in enumerate(pixels):
            sub = folder
            if labels is not None:
                k = int(labels[i])
                sub = folder / _safe_name(class_names[k] if k < len(class_names) else str(k), str(k))
                sub.mkdir(exist_ok=True)
            counters[str(sub)] = counters.get(str(sub), 0) + 1
            path = sub / f"{counters[str(sub)]:04d}.png"
            array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
            Image.fromarray(array).save(path, format="PNG")
            written.append(path)
    except OSError as exc:
        raise UserError(f"could not write into {folder}: {exc.strerror or exc}") from None
    save_npy(folder / "images.npy", images)
    if labels is not None:
        np.save(folder / "labels.npy", np.asarray(labels, dtype=np.int64), allow_pickle=False)
    return written
