"""Generated images as a dataset: an image folder the app loads back (``class/0001.png``,
or flat without classes) plus the same images as NPY beside the PNGs.

The folder loader ignores the ``.npy`` files, so the folder can be opened as a dataset
as it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from explorer.analysis.export import save_array, save_npy
from explorer.atomic import atomic_folder, check_writable_folder


def _safe_name(name: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or fallback


def _class_folders(labels: np.ndarray, class_names: tuple[str, ...]) -> dict[int, str]:
    """A folder name per class: its name made safe, and distinct from every other class's
    (ignoring case, as some file systems do), so two classes never merge into one folder."""
    used = {"images.npy", "labels.npy"}
    folders: dict[int, str] = {}
    for k in sorted({int(v) for v in np.asarray(labels).tolist()}):
        base = _safe_name(class_names[k] if 0 <= k < len(class_names) else str(k), str(k))
        name, n = base, 1
        while name.lower() in used:
            name = f"{base}-{k}" if n == 1 else f"{base}-{k}-{n}"
            n += 1
        used.add(name.lower())
        folders[k] = name
    return folders


def write_image_folder(folder: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
                       class_names: tuple[str, ...] = ()) -> list[Path]:
    """Write (N, C, H, W) images in [0, 1]; ``labels`` put each in its class's sub-folder.

    Refuses a folder that already has files, so nothing is overwritten. The folder is built
    beside its place and renamed there when complete (explorer.atomic.atomic_folder): a full
    disk or an interrupt leaves no half-written folder."""
    folder = Path(folder)
    check_writable_folder(folder)
    written: list[str] = []
    pixels = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
    subs = _class_folders(labels, class_names) if labels is not None else {}
    with atomic_folder(folder) as tmp:
        counters: dict[str, int] = {}
        for i, image in enumerate(pixels):
            sub = ""
            if labels is not None:
                sub = subs[int(labels[i])]
                (tmp / sub).mkdir(exist_ok=True)
            counters[sub] = counters.get(sub, 0) + 1
            name = f"{sub}/{counters[sub]:04d}.png" if sub else f"{counters[sub]:04d}.png"
            array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
            with open(tmp / name, "wb") as fh:
                Image.fromarray(array).save(fh, format="PNG")
                fh.flush()
                os.fsync(fh.fileno())
            written.append(name)
        save_npy(tmp / "images.npy", images)
        if labels is not None:
            save_array(tmp / "labels.npy", np.asarray(labels, dtype=np.int64))
    return [folder / name for name in written]
