"""Images given as arrays: a NumPy ``.npz`` or ``.npy`` file, or arrays, tensors and
torchvision-style datasets handed over from Python (``explorer.view(images=...)``).

Everything becomes the uint8 ``(N, C, H, W)`` :class:`ImageData` the rest of the app reads,
so a model trained on an array file is the same as one trained on a folder.

Files are untrusted input. They are opened like checkpoints (a regular file, opened
without blocking, of bounded size) and never unpickled: an object array is refused from
its header. Each array's header (dtype and shape) is checked before its data is read:
against fixed limits, the file's (or zip member's) real size and the memory free, so a
compressed file that claims a huge array is refused without inflating it; then exactly
the bytes the header gives are read, in bounded chunks, and a zip member's CRC checked.
Every problem (shape, dtype, values out of range, NaN, labels, class names, a damaged
file) is one line that says what to change.
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib
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
MAX_CLASS_NAMES_BYTES = 64 * 1024**2  # what an .npz's class_names may claim, read before its names are checked
MAX_MEMBERS = 64  # arrays in one .npz
# The keys an .npz file may use; anything else in it is ignored (and named in the error
# when no images are found).
IMAGE_KEYS = ("images", "x", "X", "data")
SPLIT_KEYS = ("train_images", "test_images")
LABEL_KEYS = ("labels", "train_labels", "test_labels")
WANTED_KEYS = IMAGE_KEYS + SPLIT_KEYS + LABEL_KEYS + ("class_names",)
# Float values this close outside [0, 1] are rounding (x / 255 done in float32), not a mistake.
FLOAT_SLACK = 1e-6
# What reading a file may leave to everything else, of the memory free (explorer.memory_budget).
HEADROOM = 0.9
READ_CHUNK = 16 * 1024**2
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What a damaged file raises from numpy's header parser, zipfile and zlib (never MemoryError).
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, TypeError,
            RuntimeError, NotImplementedError, SyntaxError, tokenize.TokenError, struct.error, UnicodeError,
            KeyError)


def is_array_file(name: str) -> bool:
    return Path(name).suffix.lower() in ARRAY_SUFFIXES


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool = False

    @property
    def items(self) -> int:
        return math.prod(self.shape)

    @property
    def n_bytes(self) -> int:
        return self.items * self.dtype.itemsize

    def text(self) -> str:
        return f"{' x '.join(f'{s:,}' for s in self.shape) or 'a scalar'} {self.dtype}"


def _shown(name: object) -> str:
    """A file name for a message: on one line, whatever characters it holds."""
    text = str(name)
    return text if text.isprintable() else ascii(text)[1:-1]


def _short(exc: object, limit: int = 160) -> str:
    text = _shown(" ".join(str(exc).split()))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _size(n: float) -> str:
    from explorer.memory_budget import format_bytes

    return format_bytes(n) if n < 1e15 else "over 1,000 TB"


def _peek(fh: Any, what: str, where: str) -> _Header:
    """The dtype and shape from a .npy stream's header, reading nothing past it."""
    try:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise DataError(f"{where}: {what} is in .npy format version {version[0]}.{version[1]}, which this "
                            "NumPy cannot read (versions 1 to 3 are known)")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(fh)
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error) as exc:  # the zip member around it
        raise DataError(f"{where}: {what} is damaged ({_short(exc)})") from None
    except _DAMAGED as exc:
        raise DataError(f"{where}: {what} is not a NumPy array or is damaged ({_short(exc)})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: {what} is an object array (pickled Python objects); "
                        "save plain numbers or strings (allow_pickle is never used)")
    if any(s < 0 for s in shape):
        raise DataError(f"{where}: {what} is damaged (its header gives the shape {tuple(shape)})")
    return _Header(tuple(int(s) for s in shape), dtype, bool(fortran))


def _check_claim(header: _Header, key: str, what: str, where: str, used: int) -> int:
    """Refuse, from the header alone, an array no image file needs or this machine cannot
    hold (a compressed member that claims gigabytes is never inflated). Returns the bytes
    it will take with its conversion, to add to ``used``."""
    if header.dtype.itemsize == 0:
        raise DataError(f"{where}: {what} has dtype {header.dtype}, of no bytes; save numbers (or, for class_names, "
                        "non-empty strings)")
    if len(header.shape) > 8:
        raise DataError(f"{where}: {what} has {len(header.shape)} dimensions; images have 3 or 4, labels and "
                        "class_names 1")
    if key == "class_names":
        if header.items > MAX_CLASSES or header.n_bytes > MAX_CLASS_NAMES_BYTES:
            raise DataError(f"{where}: class_names claims {header.text()} ({_size(header.n_bytes)}); give at most "
                            f"{MAX_CLASSES:,} names of at most {MAX_CLASS_NAME} characters")
    elif header.items > MAX_IMAGE_BYTES or max(header.shape, default=0) > MAX_IMAGE_BYTES:
        raise DataError(f"{where}: {what} claims {header.text()} ({_size(header.n_bytes)}), more than the "
                        f"{MAX_IMAGE_BYTES / 1024**3:.0f} G values Latent Explorer loads")
    # Float pixels are scaled in their own dtype and kept as uint8 as well.
    extra = header.items * (header.dtype.itemsize + 1) if header.dtype.kind == "f" else header.items
    needed = used + header.n_bytes + extra
    from explorer.memory_budget import host_available

    free = host_available()
    if free is not None and needed > free * HEADROOM:
        raise DataError(f"{where}: {what} claims {header.text()} ({_size(header.n_bytes)}); loading it needs "
                        f"about {_size(needed)} of memory and {_size(free)} is free; save fewer images, "
                        "smaller ones, or uint8 pixels")
    return needed - used


def _read_data(fh: Any, header: _Header, what: str, where: str) -> np.ndarray:
    """The array whose header ``fh`` was just read past: exactly its bytes, in bounded reads."""
    buffer = np.empty(header.n_bytes, np.uint8)
    view = memoryview(buffer)
    done = 0
    try:
        while done < header.n_bytes:
            got = fh.readinto(view[done:done + READ_CHUNK])
            if not got:
                break
            done += got
    except _DAMAGED as exc:
        raise DataError(f"{where}: {what} is damaged ({_short(exc)})") from None
    finally:
        view.release()
    if done < header.n_bytes:
        raise DataError(f"{where}: {what} is truncated (its header gives {header.text()}, "
                        f"{_size(header.n_bytes)}; the data stops after {_size(done)})")
    try:
        array = buffer.view(header.dtype)
        if header.fortran:
            return array.reshape(header.shape[::-1]).transpose()
        return array.reshape(header.shape)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: {what} is damaged (its header gives {header.text()}: {_short(exc)})") from None


def _not_npz(head: bytes, where: str, exc: object) -> DataError:
    if head.startswith(NPY_MAGIC):
        return DataError(f"{where} is a single .npy array, not an .npz file; rename it to .npy")
    if head.startswith(ZIP_MAGIC):
        return DataError(f"{where} is a damaged or truncated .npz file ({_short(exc)})")
    return DataError(f"{where} is not an .npz file (NumPy's zip of arrays, written by numpy.savez): "
                     f"{_short(exc)}")


def read_array_file(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (by key) or an ``.npy`` (as ``images``), checked and read
    without unpickling; DataError (one line) for anything else."""
    path = Path(path)
    where = _shown(path.name or path)
    try:
        fd, size = open_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise DataError(f"{_shown(path)} does not exist") from None
    except FileRefused as exc:
        raise DataError(str(exc)) from None
    with open(fd, "rb", closefd=True) as raw:
        try:
            head = raw.read(8)
            raw.seek(0)
        except OSError as exc:
            raise DataError(f"{where} cannot be read ({_short(exc)})") from None
        if path.suffix.lower() == ".npy":
            return {"images": _read_npy(raw, head, size, where)}
        return _read_npz(raw, head, where)


def _read_npy(raw: Any, head: bytes, size: int, where: str) -> np.ndarray:
    if head.startswith(ZIP_MAGIC):
        raise DataError(f"{where} is an .npz file (a zip of arrays), not a single .npy array; rename it to .npz")
    if not head:
        raise DataError(f"{where} is empty")
    header = _peek(raw, "the file", where)
    left = size - raw.tell()
    if header.n_bytes > left:
        raise DataError(f"{where} is truncated (its header gives {header.text()}, {_size(header.n_bytes)}; "
                        f"the file holds {_size(left)} of data)")
    _check_claim(header, "images", "the file", where, 0)
    return _read_data(raw, header, "the file", where)


def _read_npz(raw: Any, head: bytes, where: str) -> dict[str, np.ndarray]:
    if not head:
        raise DataError(f"{where} is empty")
    try:
        archive = zipfile.ZipFile(raw)
    except _DAMAGED as exc:
        raise _not_npz(head, where, exc) from None
    with archive:
        members = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
        if not members:
            raise DataError(f"{where} holds no arrays (an .npz file is written by numpy.savez)")
        if len(members) > MAX_MEMBERS:
            raise DataError(f"{where} holds {len(members):,} arrays; an image file needs a few")
        wanted = [key for key in members if key in WANTED_KEYS]
        if not wanted:
            found = ", ".join(repr(_shown(k)) for k in list(members)[:8])
            raise DataError(f"{where} has no array named 'images' (it has {found}); save the images as "
                            "images=..., with optional labels=... and class_names=...")
        arrays: dict[str, np.ndarray] = {}
        used = 0
        for key in wanted:
            info = members[key]
            what = f"the array {key!r}"
            if info.flag_bits & 0x1:
                raise DataError(f"{where}: {what} is encrypted (a password-protected zip); save the arrays with "
                                "numpy.savez or numpy.savez_compressed")
            try:
                with archive.open(info) as member:
                    header = _peek(member, what, where)
                    used += _check_claim(header, key, what, where, used)
                    if header.n_bytes > info.file_size:
                        raise DataError(f"{where}: {what} is damaged (its header gives {header.text()}, "
                                        f"{_size(header.n_bytes)}; the zip holds {_size(info.file_size)})")
                    arrays[key] = _read_data(member, header, what, where)
                    member.read(1)  # to the end of the member, where zipfile checks its CRC
            except DataError:
                raise
            except _DAMAGED as exc:
                raise DataError(f"{where}: {what} is damaged ({_short(exc)})") from None
        return arrays


def _as_array(value: Any, what: str, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype not in (torch.float16, torch.float32, torch.float64):
            value = value.float()  # bfloat16 and the like have no NumPy dtype
        value = value.numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where}: {what} cannot be read as one array ({_short(exc)})") from None


def to_uint8_images(array: Any, what: str = "images", where: str = "the data") -> torch.Tensor:
    """Any of N x H x W, N x C x H x W or N x H x W x C (C 1 or 3), uint8 0-255, bool, or
    floats in [0, 1], as uint8 (N, C, H, W)."""
    array = _as_array(array, what, where)
    given = array.shape
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
        hint = ""
        if array.ndim == 2 and array.shape[1] > 0 and math.isqrt(array.shape[1]) ** 2 == array.shape[1]:
            side = math.isqrt(array.shape[1])
            hint = f" (flattened images? save {what}.reshape(-1, {side}, {side}))"
        raise DataError(f"{where}: {what} have shape {array.shape}; give N x H x W, N x C x H x W "
                        f"or N x H x W x C{hint}")
    n, _, h, w = array.shape
    if n == 0:
        raise DataError(f"{where}: {what} is empty (shape {given}, no images)")
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise DataError(f"{where}: {what} are {h}x{w} pixels; Latent Explorer takes {MIN_SIDE} to {MAX_SIDE} "
                        "pixels a side")
    if array.size > MAX_IMAGE_BYTES:
        raise DataError(f"{where}: {what} hold {array.size / 1024**3:.1f} G pixels, more than this app loads")
    if array.dtype.kind == "b":
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8) * np.uint8(255))
    if array.dtype.kind == "f":
        lo, hi = float(np.min(array)), float(np.max(array))  # NaN propagates to both
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise DataError(f"{where}: {what} contain {bad:,} NaN or infinite values; give finite floats in [0, 1]")
        if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
            hint = ""
            if 10 < hi <= 255 and lo >= 0:
                hint = " (divide by 255)"
            elif -1 - FLOAT_SLACK <= lo < 0 and hi <= 1 + FLOAT_SLACK:
                hint = " (scaled to [-1, 1]? save (x + 1) / 2)"
            raise DataError(f"{where}: float {what} must lie in [0, 1]; these range from {lo:g} to {hi:g}{hint}")
        scaled = np.multiply(array, 255.0, dtype=np.float32 if array.itemsize <= 4 else np.float64)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0, 255, out=scaled)
        return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.uint8))
    lo, hi = int(np.min(array)), int(np.max(array))
    if lo < 0 or hi > 255:
        raise DataError(f"{where}: integer {what} must lie in 0-255; these range from {lo} to {hi}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))


def to_labels(array: Any, n: int, what: str = "labels", where: str = "the data") -> torch.Tensor:
    """Class numbers 0..MAX_CLASSES-1, one per image, as int64 (whole floats and bools too)."""
    array = _as_array(array, what, where)
    if array.ndim == 2 and array.shape[0] == n and array.dtype.kind in "buif":
        raise DataError(f"{where}: {what} have shape {array.shape}; give one class number per image "
                        f"(one-hot labels? save {what}.argmax(1))")
    if array.ndim != 1 or array.dtype.kind not in "buif":
        raise DataError(f"{where}: {what} must be a 1-D array of class numbers (these have dtype {array.dtype}, "
                        f"shape {array.shape})")
    if len(array) != n:
        raise DataError(f"{where}: there are {len(array):,} {what} for {n:,} images")
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"{where}: {what} contain NaN or infinite values; give class numbers 0, 1, 2, ...")
        if not (array == np.rint(array)).all():
            raise DataError(f"{where}: {what} must be whole class numbers (these have fractions, e.g. "
                            f"{float(array[array != np.rint(array)][0]):g})")
    lo, hi = array.min(), array.max()
    if lo < 0 or hi >= MAX_CLASSES:
        shown = (lambda v: f"{v:g}") if array.dtype.kind == "f" else int  # noqa: E731 - a one-line helper
        raise DataError(f"{where}: {what} must be class numbers from 0 to {MAX_CLASSES - 1} "
                        f"(these range from {shown(lo)} to {shown(hi)})")
    return torch.from_numpy(array.astype(np.int64))


def to_class_names(names: Any, labels: Sequence[torch.Tensor | None], where: str = "the data") -> tuple[str, ...]:
    """Names for classes 0..K-1: given (as many as the labels need), or the numbers."""
    top = max((int(lab.max()) for lab in labels if lab is not None and lab.numel()), default=-1)
    if names is None:
        return tuple(str(i) for i in range(top + 1))
    array = _as_array(names, "class_names", where)
    if array.dtype.kind not in "US" or array.ndim != 1:
        raise DataError(f"{where}: class_names must be a 1-D array of strings (it has dtype {array.dtype}, "
                        f"shape {array.shape})")
    if len(array) > MAX_CLASSES:
        raise DataError(f"{where}: class_names has {len(array):,} names; Latent Explorer knows at most "
                        f"{MAX_CLASSES:,} classes")
    out = tuple(v if isinstance(v, str) else v.decode("utf-8", "replace") for v in array.tolist())
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        if not name.strip():
            raise DataError(f"{where}: class_names[{i}] is empty; give every class a name")
        if len(name) > MAX_CLASS_NAME:
            raise DataError(f"{where}: class_names[{i}] is {len(name):,} characters long; give names of at most "
                            f"{MAX_CLASS_NAME}")
        if not name.isprintable():
            raise DataError(f"{where}: class_names[{i}] ({_short(repr(name), 60)}) holds a line break or control "
                            "character; give names on one line")
        if name in seen:
            raise DataError(f"{where}: class_names names classes {seen[name]} and {i} both "
                            f"{_short(repr(name), 60)}; give each class its own name")
        seen[name] = i
    if len(out) <= top:
        raise DataError(f"{where}: class_names names {len(out)} classes, but the labels go up to {top} "
                        f"(give {top + 1} names, for classes 0 to {top})")
    return out


def split(images: torch.Tensor, labels: torch.Tensor | None, test_fraction: float, seed: int,
          where: str = "the data") -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """A seeded random train/test split (at least one image in each when there are two)."""
    n = images.shape[0]
    if n < 2:
        raise DataError(f"{where} has one image; training needs at least two (one to test on)")
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
    where = _shown(where or name)
    image_key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if "train_images" in arrays or "test_images" in arrays:
        if image_key is not None:
            raise DataError(f"{where} has both {image_key} and train_images/test_images; give one images array "
                            "(split with the seed) or the two split arrays")
        if "labels" in arrays:
            raise DataError(f"{where}: labels goes with one images array; with train_images and test_images "
                            "give train_labels and test_labels")
        if not ("train_images" in arrays and "test_images" in arrays):
            raise DataError(f"{where}: give both train_images and test_images, or one images array")
        train = to_uint8_images(arrays["train_images"], "train_images", where)
        test = to_uint8_images(arrays["test_images"], "test_images", where)
        if train.shape[1:] != test.shape[1:]:
            raise DataError(f"{where}: train_images are {tuple(train.shape[1:])} and test_images "
                            f"{tuple(test.shape[1:])} (C, H, W); they must match")
        has = ("train_labels" in arrays, "test_labels" in arrays)
        if any(has) and not all(has):
            raise DataError(f"{where}: give both train_labels and test_labels, or neither")
        train_labels = to_labels(arrays["train_labels"], len(train), "train_labels", where) if all(has) else None
        test_labels = to_labels(arrays["test_labels"], len(test), "test_labels", where) if all(has) else None
    else:
        if image_key is None:
            found = ", ".join(repr(_shown(k)) for k in list(arrays)[:8]) or "nothing"
            raise DataError(f"{where} has no array named 'images' (it has {found}); give images=..., with "
                            "optional labels=... and class_names=...")
        if "train_labels" in arrays or "test_labels" in arrays:
            raise DataError(f"{where}: train_labels and test_labels go with train_images and test_images; with "
                            f"one {image_key} array give labels")
        images = to_uint8_images(arrays[image_key], image_key, where)
        labels = to_labels(arrays["labels"], len(images), "labels", where) if "labels" in arrays else None
        train, train_labels, test, test_labels = split(images, labels, test_fraction, split_seed, where)
    if train_labels is None and arrays.get("class_names") is not None:
        raise DataError(f"{where} has class_names but no labels; give labels=... (a class number per image) too")
    names = to_class_names(arrays.get("class_names"), (train_labels, test_labels), where)
    return ImageData(name, train, train_labels, test, test_labels, names if train_labels is not None else ())


def load_array_file(path: str | Path, test_fraction: float = 0.1, split_seed: int = 0) -> ImageData:
    """An ``.npz``/``.npy`` file of images as ImageData (see :func:`image_data_from_arrays`)."""
    path = Path(path)
    return image_data_from_arrays(read_array_file(path), str(path), test_fraction, split_seed,
                                  where=path.name or str(path))


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
