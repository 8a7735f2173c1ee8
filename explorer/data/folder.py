"""A user's own folder of images.

Class sub-folders give labels (like torchvision's ImageFolder); a flat folder gives none.
Files that are not readable images are skipped and reported, never fatal, unless no
image at all is left. The held-out test split is drawn with a fixed seed so a checkpoint
evaluates on the same images it was tested on while training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from explorer.data.dataset import ImageData
from explorer.errors import DataError

DEFAULT_IMAGE_SIZE = 32
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
# A guard against decompression bombs: beyond this a single file could exhaust memory.
_MAX_PIXELS = 50_000_000


@dataclass
class FolderReport:
    """What was read and what was skipped, so the caller can tell the user."""

    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


# Arrays that sit beside generated images (``generate --folder`` writes images.npy): not
# images, and not worth a warning. Any other non-image file is reported by name.
_SIDECAR_SUFFIXES = {".npy", ".npz"}


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() not in _SIDECAR_SUFFIXES)


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        if img.width * img.height > _MAX_PIXELS:
            raise ValueError(f"too large ({img.width}x{img.height})")
        img.load()
        return img.copy()


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16-bit and float greyscale to 0-255; Pillow's convert("L") would clip them."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        arr = arr / 257.0
    elif img.mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
        arr = arr * 255.0
    elif arr.size and np.nanmax(arr) > 255:
        arr = arr * (255.0 / np.nanmax(arr))
    return Image.fromarray(np.nan_to_num(arr).clip(0, 255).round().astype(np.uint8), mode="L")


def _convert(img: Image.Image, channels: int, size: int) -> np.ndarray:
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode == "P" or img.mode.endswith("A") or img.mode == "RGBa":
        img = img.convert("RGBA")
    if img.mode == "RGBA" or img.mode == "LA":
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    img = img.convert("L" if channels == 1 else "RGB")
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def load_folder(path: str | Path, image_size: int | None = None, channels: int | None = None,
                test_fraction: float = 0.1, split_seed: int = 0,
                report: FolderReport | None = None) -> ImageData:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images (and not a known dataset name)")
    report = report if report is not None else FolderReport()
    size = image_size or DEFAULT_IMAGE_SIZE

    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    labelled = bool(subdirs)
    sources: list[tuple[Path, int]] = []
    if labelled:
        for label, sub in enumerate(subdirs):
            sources += [(p, label) for p in _image_files(sub)]
        for stray in (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                      and p.suffix.lower() not in _SIDECAR_SUFFIXES):
            report.skipped.append((str(stray), "not inside a class folder"))
    else:
        sources = [(p, -1) for p in _image_files(folder)]

    images: list[Image.Image] = []
    labels: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for file, label in sources:
            try:
                images.append(_open(file))
                labels.append(label)
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
                    Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
                report.skipped.append((str(file), str(exc) or type(exc).__name__))
    if not images:
        raise DataError(f"no readable images in {folder}")
    if len(images) < 2:
        raise DataError(f"{folder} holds only one readable image; at least two are needed (one to train, one to test)")

    if channels is None:
        channels = 1 if all(img.mode in _GREY_MODES for img in images) else 3
    array = np.stack([_convert(img, channels, size) for img in images])
    report.loaded = len(images)

    n = len(array)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    test_idx, train_idx = order[:n_test], order[n_test:]
    x = torch.from_numpy(array)
    y = torch.tensor(labels, dtype=torch.int64) if labelled else None
    class_names = tuple(p.name for p in subdirs) if labelled else ()
    return ImageData(
        name=folder.name or str(folder),
        train_images=x[train_idx].clone(), train_labels=None if y is None else y[train_idx].clone(),
        test_images=x[test_idx].clone(), test_labels=None if y is None else y[test_idx].clone(),
        class_names=class_names,
    )
