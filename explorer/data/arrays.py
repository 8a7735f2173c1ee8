"""Images given as arrays: a NumPy ``.npz`` or ``.npy`` file, or arrays, tensors and
torchvision-style datasets handed over from Python (``explorer.view(images=...)``).

Everything becomes the uint8 ``(N, C, H, W)`` :class:`ImageData` the rest of the app reads,
so a model trained on an array file is the same as one trained on a folder.

Files are untrusted input. They are opened like checkpoints (a regular file, opened
without blocking, of bounded size) and read with ``allow_pickle=False``, so an object
array never runs code. Each array's header (dtype and shape) is checked before its data
is read, so a compressed file that claims a huge array is refused without inflating it.
Every problem (shape, dtype, values out of range, NaN, too many classes) is one line
that says what to change.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.data.dataset import ImageData
from explorer.errors import DataError
from explorer.safe_files import FileRefused, open_regular

ARRAY_SUFFIXES = (".npz", ".npy")
MAX_FILE_BYTES = 16 * 1024**3
MAX_IMAGE_BYTES = 8 * 1024**3  # uint8 pixels held in memory, all splits together
MAX_SIDE = 512  # pixels, as for folders
MIN_SIDE = 4
MAX_CLASSES = 10_000  # as a checkpoint may know
MAX_CLASS_NAME = 1000
# The keys an .npz file may use; anything else in it is ignored (and named in the error
# when no images are found).
IMAGE_KEYS = ("images", "x", "X", "data")
SPLIT_KEYS = ("train_images", "test_images")


def is_array_file(name: str) -> bool:
    return Path(name).suffix.lower() in ARRAY_SUFFIXES


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype


def _peek(fh: Any, what: str, where: str) -> _Header:
    """The dtype and shape from a .npy stream's header, without reading its data."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{where}: {what} is not a NumPy array ({_short(exc)})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: {what} is an object array (pickled Python objects); "
                        "save plain numbers or strings (allow_pickle is never used)")
    return _Header(tuple(int(s) for s in shape), dtype)


def _short(exc: object, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read_member(fh: Any, header: _Header, what: str, where: str) -> np.ndarray:
    n_bytes = math.prod(header.shape) * header.dtype.itemsize
    if n_bytes > MAX_IMAGE_BYTES * 8:  # float64 pixels are 8 times their uint8 form
        raise DataError(f"{where}: {what} claims {n_bytes / 1024**3:.1f} GiB, more than this app loads")
    try:
        return np.lib.format.read_array(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where}: {what} is damaged or truncated ({_short(exc)})") from None


def read_array_file(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (by key) or an ``.npy`` (as ``images``), checked and read
    without unpickling; DataError (one line) for anything else."""
    path = Path(path)
    where = path.name
    try:
        fd, _ = open_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except FileRefused as exc:
        raise DataError(str(exc)) from None
    with open(fd, "rb", closefd=True) as raw:
        if path.suffix.lower() == ".npy":
            header = _peek(raw, "the file", where)
            raw.seek(0)
            return {"images": _read_member(raw, header, "the file", where)}
        try:
            archive = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DataError(f"{where} is not an .npz file (NumPy's zip of arrays: {_short(exc)})") from None
        with archive:
            arrays: dict[str, np.ndarray] = {}
            names = [n for n in archive.namelist() if n.endswith(".npy")]
            if len(names) > 64:
                raise DataError(f"{where} holds {len(names)} arrays; an image file needs a few")
            wanted = set(IMAGE_KEYS + SPLIT_KEYS + ("labels", "train_labels", "test_labels", "class_names"))
            for name in names:
                key = name[:-4]
                if key not in wanted:
                    continue
                try:
                    with archive.open(name) as member:
                        header = _peek(member, f"the array {key!r}", where)
                    with archive.open(name) as member:
                        arrays[key] = _read_member(io.BufferedReader(member), header, f"the array {key!r}", where)
                except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
                    raise DataError(f"{where}: the array {key!r} is damaged ({_short(exc)})") from None
            if not arrays and names:
                found = ", ".join(repr(n[:-4]) for n in names[:8])
                raise DataError(f"{where} has no array named 'images' (it has {found}); save the images as "
                                "images=..., with optional labels=... and class_names=...")
            if not names:
                raise DataError(f"{where} holds no arrays")
            return arrays


def to_uint8_images(array: Any, what: str = "images", where: str = "the data") -> torch.Tensor:
    """Any of N x H x W, N x C x H x W or N x H x W x C (C 1 or 3), uint8 0-255, bool, or
    floats in [0, 1], as uint8 (N, C, H, W)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise DataError(f"{where}: {what} are Python objects, not numbers")
    if array.dtype.kind not in "buif":
        raise DataError(f"{where}: {what} have dtype {array.dtype}; give uint8 (0-255) or floats in [0, 1]")
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[1] not in (1, 3) and array.shape[3] in (1, 3):
            array = np.moveaxis(array, 3, 1)  # N x H x W x C
        elif array.shape[1] not in (1, 3):
            raise DataError(f"{where}: {what} have shape {array.shape}; images need 1 or 3 channels "
                            "(N x H x W, N x C x H x W or N x H x W x C)")
    else:
        raise DataError(f"{where}: {what} have shape {array.shape}; give N x H x W, N x C x H x W "
                        "or N x H x W x C")
    n, _, h, w = array.shape
    if n == 0:
        raise DataError(f"{where}: {what} hold no images")
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise DataError(f"{where}: {what} are {h}x{w} pixels; Latent Explorer takes {MIN_SIDE} to {MAX_SIDE} "
                        "pixels a side")
    if array.size > MAX_IMAGE_BYTES:
        raise DataError(f"{where}: {what} hold {array.size / 1024**3:.1f} G pixels, more than this app loads")
    if array.dtype.kind == "b":
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8) * np.uint8(255))
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"{where}: {what} contain NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0 or hi > 1:
            hint = " (divide by 255)" if hi <= 255 and lo >= 0 else ""
            raise DataError(f"{where}: float {what} must lie in [0, 1]; these range from {lo:g} to {hi:g}{hint}")
        return torch.from_numpy(np.ascontiguousarray(np.rint(array * 255.0), dtype=np.uint8))
    lo, hi = int(array.min()), int(array.max())
    if lo < 0 or hi > 255:
        raise DataError(f"{where}: integer {what} must lie in 0-255; these range from {lo} to {hi}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))


def to_labels(array: Any, n: int, what: str = "labels", where: str = "the data") -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind == "f" and array.size and np.isfinite(array).all() and (array == np.rint(array)).all():
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise DataError(f"{where}: {what} must be a 1-D array of whole numbers (dtype {array.dtype}, "
                        f"shape {array.shape})")
    if len(array) != n:
        raise DataError(f"{where}: there are {len(array):,} {what} for {n:,} images")
    if n and (int(array.min()) < 0 or int(array.max()) >= MAX_CLASSES):
        raise DataError(f"{where}: {what} must be class numbers from 0 to {MAX_CLASSES - 1} "
                        f"(these range from {int(array.min())} to {int(array.max())})")
    return torch.from_numpy(array.astype(np.int64))


def to_class_names(names: Any, labels: Sequence[torch.Tensor | None], where: str = "the data") -> tuple[str, ...]:
    """Names for classes 0..K-1: given (as many as the labels need), or the numbers."""
    top = max((int(lab.max()) for lab in labels if lab is not None and lab.numel()), default=-1)
    if names is None:
        return tuple(str(i) for i in range(top + 1))
    array = np.asarray(names)
    if array.dtype.kind not in "US" or array.ndim != 1:
        raise DataError(f"{where}: class_names must be a 1-D array of strings")
    out = tuple(str(v if isinstance(v, str) else v.decode("utf-8", "replace")) for v in array.tolist())
    if len(out) > MAX_CLASSES or any(len(s) > MAX_CLASS_NAME for s in out):
        raise DataError(f"{where}: class_names has too many or too long names")
    if len(out) <= top:
        raise DataError(f"{where}: class_names names {len(out)} classes, but the labels go up to {top}")
    return out


def split(images: torch.Tensor, labels: torch.Tensor | None, test_fraction: float, seed: int
          ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """A seeded random train/test split (at least one image in each when there are two)."""
    n = images.shape[0]
    if n < 2:
        raise DataError("the data has one image; training needs at least two (one to test on)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    pick = (lambda t, idx: None if t is None else t[idx])  # noqa: E731 - a two-line helper
    return images[train], pick(labels, train), images[test], pick(labels, test)


def image_data_from_arrays(arrays: dict[str, Any], name: str, test_fraction: float = 0.1, split_seed: int = 0,
                           where: str | None = None) -> ImageData:
    """ImageData from a dict of arrays as an .npz file holds them: ``images`` (split here
    with the seed) or ``train_images`` and ``test_images`` (kept), optional labels
    (``labels``, or ``train_labels`` and ``test_labels``) and ``class_names``."""
    where = where or name
    if "train_images" in arrays or "test_images" in arrays:
        if not ("train_images" in arrays and "test_images" in arrays):
            raise DataError(f"{where}: give both train_images and test_images, or one images array")
        train = to_uint8_images(arrays["train_images"], "train_images", where)
        test = to_uint8_images(arrays["test_images"], "test_images", where)
        if train.shape[1:] != test.shape[1:]:
            raise DataError(f"{where}: train_images are {tuple(train.shape[1:])} and test_images "
                            f"{tuple(test.shape[1:])}; they must match")
        has = ("train_labels" in arrays, "test_labels" in arrays)
        if any(has) and not all(has):
            raise DataError(f"{where}: give both train_labels and test_labels, or neither")
        train_labels = to_labels(arrays["train_labels"], len(train), "train_labels", where) if all(has) else None
        test_labels = to_labels(arrays["test_labels"], len(test), "test_labels", where) if all(has) else None
    else:
        key = next((k for k in IMAGE_KEYS if k in arrays), None)
        if key is None:
            raise DataError(f"{where} has no array named 'images'")
        images = to_uint8_images(arrays[key], key, where)
        labels = to_labels(arrays["labels"], len(images), "labels", where) if "labels" in arrays else None
        train, train_labels, test, test_labels = split(images, labels, test_fraction, split_seed)
    names = to_class_names(arrays.get("class_names"), (train_labels, test_labels), where)
    return ImageData(name, train, train_labels, test, test_labels, names if train_labels is not None else ())


def load_array_file(path: str | Path, test_fraction: float = 0.1, split_seed: int = 0) -> ImageData:
    """An ``.npz``/``.npy`` file of images as ImageData (see :func:`image_data_from_arrays`)."""
    path = Path(path)
    return image_data_from_arrays(read_array_file(path), str(path), test_fraction, split_seed, where=path.name)


def resized(data: ImageData, size: int | None, channels: int | None) -> ImageData:
    """``data`` at ``size`` x ``size`` pixels and ``channels`` channels (None: as it is)."""
    import dataclasses

    import torch.nn.functional as F

    def convert(images: torch.Tensor) -> torch.Tensor:
        out = images
        if channels is not None and out.shape[1] != channels:
            if channels == 1:
                weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
                out = (out.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
            else:
                out = out.expand(-1, 3, -1, -1).contiguous()
        if size is not None and out.shape[-2:] != (size, size):
            out = F.interpolate(out.float(), size=(size, size), mode="area" if out.shape[-1] > size else "bilinear",
                                **({} if out.shape[-1] > size else {"align_corners": False}))
            out = out.round().clamp(0, 255).to(torch.uint8)
        return out

    if size is None and channels is None:
        return data
    return dataclasses.replace(data, train_images=convert(data.train_images), test_images=convert(data.test_images))


def image_data_for_viewing(images: Any, labels: Any = None, class_names: Sequence[str] | None = None,
                           name: str = "your images") -> ImageData:
    """What ``explorer.view(images=...)`` shows: every image given, in both splits (the
    plane shows the test split), from an array, a tensor, or a torchvision-style dataset
    (``len`` and ``[i] -> (image, label)``, images as PIL images, arrays or tensors)."""
    if not isinstance(images, (np.ndarray, torch.Tensor)) and hasattr(images, "__getitem__") \
            and hasattr(images, "__len__") and not isinstance(images, (list, tuple)):
        images, found = _from_dataset(images)
        labels = found if labels is None else labels
    elif isinstance(images, (list, tuple)):
        images = np.stack([_image_array(i) for i in images])
    pixels = to_uint8_images(images, "images", name)
    labels_t = to_labels(labels, len(pixels), "labels", name) if labels is not None else None
    names = to_class_names(np.asarray(list(class_names)) if class_names is not None else None, (labels_t,), name) \
        if labels_t is not None else ()
    return ImageData(name, pixels, labels_t, pixels, labels_t, names)


def _image_array(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (1, 3) and array.shape[0] not in (1, 3):
        array = np.moveaxis(array, -1, 0)  # a PIL colour image is H x W x C
    if array.dtype == np.uint8 or array.dtype.kind == "b":
        return array.astype(np.uint8) * (255 if array.dtype.kind == "b" else 1)
    return array


MAX_DATASET_ITEMS = 100_000


def _from_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray | None]:
    n = len(dataset)
    if n > MAX_DATASET_ITEMS:
        raise DataError(f"the dataset has {n:,} items; give at most {MAX_DATASET_ITEMS:,} (a Subset) to view")
    images, labels = [], []
    for i in range(n):
        item = dataset[i]
        image, label = (item[0], item[1]) if isinstance(item, (tuple, list)) and len(item) >= 2 else (item, None)
        array = _image_array(image)
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        images.append(array.astype(np.float32, copy=False))
        labels.append(label)
    stacked = np.stack(images)
    have = [lab is not None for lab in labels]
    if all(have):
        return stacked, np.asarray([int(lab) for lab in labels], dtype=np.int64)
    return stacked, None
