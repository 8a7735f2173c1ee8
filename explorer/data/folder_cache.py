"""Image folders larger than memory: decoded once into a uint8 cache on disk, then mapped.

A folder of many images (``MEMMAP_MIN_IMAGES`` or more, or more decoded bytes than a
fraction of free memory) is decoded one image at a time into
``cache_dir()/folders/<folder>-<fingerprint>/``: ``images.u8`` (uint8 rows (N, C, S, S), the
test split's rows first, then the train split's), ``labels.npy`` and ``meta.json`` (the row
order's files, class names, shape, split and what the folder report said). The fingerprint
hashes the folder's path, every candidate file's relative path, size and mtime, and the
settings (size, channels, split, limit, classes), so the cache is reused while the folder is
unchanged and rebuilt when it changes; the folder's older caches are removed then. The whole
cache folder appears in one rename with ``meta.json`` written last, and a cache whose meta
or image file does not check out is rebuilt, never used.

The images come back as tensors viewing the map (a contiguous slice per split, nothing
copied), so training gathers each batch from the page cache. Which files are decoded, the
split, the labels and the skipped-file report are :func:`load_folder`'s own: the cache only
swaps where the decoded images go (:class:`explorer.data.folder.Decoder`).

``LATENT_EXPLORER_FOLDER_CACHE`` = ``auto`` (default), ``always`` or ``never`` overrides the choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.atomic import WriteError, atomic_folder, write_text
from explorer.data import folder as _folder
from explorer.data.dataset import ImageData
from explorer.data.folder import DEFAULT_IMAGE_SIZE, FolderReport, load_folder
from explorer.errors import DataError
from explorer.paths import cache_dir

MEMMAP_MIN_IMAGES = 20_000
MEMORY_FRACTION = 0.25  # decoded bytes above this share of free memory also go to the cache
ENV = "LATENT_EXPLORER_FOLDER_CACHE"
FORMAT = 1
_CHUNK = 4096  # rows copied from the decode-order file into the split-order map at a time

Progress = Callable[[int, int], None]
_default_progress: Progress | None = None


def set_default_progress(progress: Progress | None) -> None:
    """The callback ``progress(done, total)`` a cache build reports to when none is given."""
    global _default_progress
    _default_progress = progress


def use_tqdm() -> None:
    """Show a tqdm bar on stderr while a folder is decoded into its cache (for the CLI)."""
    bars: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        from tqdm import tqdm

        bar = bars.get("bar")
        if bar is None:
            bar = bars["bar"] = tqdm(total=total, unit="img", desc="decoding folder", file=sys.stderr,
                                     dynamic_ncols=True, mininterval=0.5)
        bar.update(min(done, total) - bar.n)
        if done >= total:
            bar.close()
            bars.clear()

    set_default_progress(progress)


def cache_mode() -> str:
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        raise DataError(f"{ENV} must be auto, always or never, not {mode!r}")
    return mode


def folders_dir() -> Path:
    return cache_dir() / "folders"


def _candidates(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every candidate file (and every entry skipped while listing), by folder.py's own listing."""
    top = _folder._Listing()
    subdirs = _folder._top_entries(folder, top)
    files, skipped = list(top.files), list(top.skipped)
    for sub in subdirs:
        listing = _folder._walk(sub)
        files += listing.files
        skipped += listing.skipped
    return files, skipped


def _free_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def worth_caching(n_images: int, channels: int | None, size: int) -> bool:
    if n_images >= MEMMAP_MIN_IMAGES:
        return True
    free = _free_memory()
    return free is not None and n_images * (channels or 3) * size * size > MEMORY_FRACTION * free


def _folder_key(folder: Path) -> str:
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]


def fingerprint(folder: Path, files: list[Path], skipped: list[tuple[str, str]], settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "folder": str(folder.resolve()), **settings}, sort_keys=True).encode())
    for file in files:
        name = str(file)
        try:
            info = os.stat(name)
            stamp = f"{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            stamp = "?"
        h.update(f"\0{_relative(name, folder)}\0{stamp}".encode("utf-8", "surrogateescape"))
    for name, why in skipped:
        h.update(f"\1{name}\0{why}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24]


def _relative(name: str, folder: Path) -> str:
    """``name`` (a file found under ``folder``) relative to it; a plain slice, as relpath is slow."""
    prefix = str(folder) + os.sep
    return name[len(prefix):] if name.startswith(prefix) else os.path.relpath(name, folder)


class _CacheWriteFailed(BaseException):  # noqa: N818 - BaseException: folder.py skips a file on any Exception
    """Writing the cache failed (say, a full disk); the folder then loads into memory as before."""


@dataclass(frozen=True)
class _Stored:
    """Where one decoded image lies in the decode-order file (what ``Decoder.read`` returns here)."""

    path: Path
    offset: int
    shape: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]


class _StreamDecoder(_folder.Decoder):
    """Appends each decoded image to ``raw.u8``; ``build`` writes the split-order map."""

    def __init__(self, where: Path, folder: Path, total: int, progress: Progress | None) -> None:
        self.where, self.folder, self.total, self.progress = where, folder, max(1, total), progress
        self.raw_path = where / "raw.u8"
        self.fh = open(self.raw_path, "wb")  # noqa: SIM115 - closed in build or close
        self.offset = 0
        self.done = 0
        self.meta: dict[str, Any] | None = None
        if progress is not None:
            progress(0, self.total)

    def read(self, path: Path, channels: int | None, size: int) -> Any:
        array = _folder._read(path, channels, size)
        self._write(np.ascontiguousarray(array).tobytes())
        stored = _Stored(path, self.offset, tuple(array.shape))  # type: ignore[arg-type]
        self.offset += array.size
        self.done += 1
        if self.progress is not None and (self.done % 256 == 0 or self.done >= self.total):
            self.progress(min(self.done, self.total), self.total)
        return stored

    def _write(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as exc:  # a full disk is not a bad image file: end the build, not just this file
            raise _CacheWriteFailed(exc) from exc

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()

    def build(self, name: str, arrays: list[Any], labels: list[int], labelled: bool, class_names: list[str],
              test_idx: torch.Tensor, train_idx: torch.Tensor, channels: int | None) -> ImageData:
        self.close()
        c = 3 if any(a.shape[0] == 3 for a in arrays) else 1
        size = arrays[0].shape[1]
        order = test_idx.tolist() + train_idx.tolist()
        n, n_test = len(order), len(test_idx)
        raw = np.memmap(self.raw_path, dtype=np.uint8, mode="r")
        with open(self.where / "images.u8", "wb") as out:  # written, not mapped: its pages never count as ours
            for start in range(0, n, _CHUNK):
                rows = order[start:start + _CHUNK]
                chunk = np.empty((len(rows), c, size, size), dtype=np.uint8)
                for j, i in enumerate(rows):
                    st = arrays[i]
                    chunk[j] = raw[st.offset:st.offset + st.nbytes].reshape(st.shape)  # grey broadcasts to 3
                out.write(chunk.tobytes())
            out.flush()
            os.fsync(out.fileno())
        del raw
        if labelled:
            np.save(self.where / "labels.npy", np.asarray([labels[i] for i in order], dtype=np.int64))
        self.meta = {"format": FORMAT, "name": name, "n": n, "n_test": n_test, "channels": c, "size": size,
                     "labelled": labelled, "class_names": list(class_names),
                     "files": [_relative(str(arrays[i].path), self.folder) for i in order]}
        if self.progress is not None:
            self.progress(self.total, self.total)
        return _data_from(self.where, self.meta)


def _data_from(where: Path, meta: dict[str, Any]) -> ImageData:
    n, n_test, c, s = meta["n"], meta["n_test"], meta["channels"], meta["size"]
    # Copy-on-write: a writable array (torch wants one) whose pages stay the file's unless written.
    images = np.memmap(where / "images.u8", dtype=np.uint8, mode="c", shape=(n, c, s, s))
    labels = torch.from_numpy(np.load(where / "labels.npy")) if meta["labelled"] else None
    return ImageData(
        name=meta["name"],
        train_images=torch.from_numpy(images[n_test:]),
        train_labels=None if labels is None else labels[n_test:].clone(),
        test_images=torch.from_numpy(images[:n_test]),
        test_labels=None if labels is None else labels[:n_test].clone(),
        class_names=tuple(meta["class_names"]),
    )


def _open(where: Path, report: FolderReport | None) -> ImageData | None:
    """The cache in ``where`` if it is complete and consistent, else None (never a partial one)."""
    try:
        meta = json.loads((where / "meta.json").read_text(encoding="utf-8"))
        n, c, s = meta["n"], meta["channels"], meta["size"]
        if meta.get("format") != FORMAT or (where / "images.u8").stat().st_size != n * c * s * s:
            return None
        if meta["labelled"]:
            labels = np.load(where / "labels.npy", mmap_mode="r")
            if labels.shape != (n,) or labels.dtype != np.int64:
                return None
        told = meta["report"]
        loaded, notes = int(told["loaded"]), [str(note) for note in told["notes"]]
        skipped = [(str(a), str(b)) for a, b in told["skipped"]]
        data = _data_from(where, meta)
    except (OSError, ValueError, KeyError, TypeError, DataError):
        return None
    if report is not None:
        report.loaded = loaded
        report.skipped.extend(skipped)
        report.notes.extend(notes)
    return data


def load_folder_cached(path: str | Path, image_size: int | None = None, channels: int | None = None,
                       test_fraction: float = 0.1, split_seed: int = 0, report: FolderReport | None = None,
                       limit: int | None = None, classes: tuple[int, ...] | None = None,
                       progress: Progress | None = None, mode: str | None = None) -> tuple[ImageData, bool]:
    """:func:`load_folder`'s result, from the disk cache when the folder is large (or ``mode``
    says "always"); the flag says whether the images are memory-mapped."""
    args = (path, image_size, channels, test_fraction, split_seed)

    def in_memory() -> tuple[ImageData, bool]:
        return load_folder(*args, report=report, limit=limit, classes=classes), False

    mode = mode or cache_mode()
    folder = Path(path).expanduser()
    try:
        if mode == "never" or not folder.is_dir():
            return in_memory()
        files, listed_skips = _candidates(folder)
    except (OSError, DataError):
        return in_memory()  # load_folder says what is wrong
    size = image_size or DEFAULT_IMAGE_SIZE
    expected = len(files) if limit is None else min(len(files), 2 * limit)
    if mode == "auto" and not worth_caching(expected, channels, size):
        return in_memory()
    settings = {"size": size, "channels": channels, "test_fraction": test_fraction, "split_seed": split_seed,
                "limit": limit, "classes": list(classes) if classes is not None else None}
    key = _folder_key(folder)
    root = folders_dir()
    target = root / f"{key}-{fingerprint(folder, files, listed_skips, settings)}"
    data = _open(target, report)
    if data is not None:
        return data, True
    for old in root.glob(f"{key}-*") if root.is_dir() else ():
        shutil.rmtree(old, ignore_errors=True)  # older versions of this folder, or this one half-built
    inner = FolderReport()
    try:
        with atomic_folder(target) as tmp:
            decoder = _StreamDecoder(tmp, folder, expected, progress or _default_progress)
            token = _folder._decoder.set(decoder)
            try:
                built = load_folder(*args, report=inner, limit=limit, classes=classes)
            finally:
                _folder._decoder.reset(token)
                decoder.close()
            del built  # its map lies in the temporary folder: reopened below from the final one
            (tmp / "raw.u8").unlink()
            meta = dict(decoder.meta or {})
            meta["report"] = {"loaded": inner.loaded, "skipped": inner.skipped, "notes": inner.notes}
            write_text(tmp / "meta.json", lambda fh: json.dump(meta, fh))  # last: it makes the cache valid
    except _CacheWriteFailed:
        return in_memory()
    except WriteError:
        pass  # another process built it first (the rename found a folder), or the cache is not writable
    data = _open(target, report)
    if data is None:  # cannot cache here: load into memory as before
        return in_memory()
    return data, True


def is_memmapped(images: torch.Tensor) -> bool:
    """Whether ``images`` lies in a mapping of a cache's ``images.u8`` (Linux; tests and benchmarks)."""
    ptr = images.data_ptr()
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return False
    for line in maps:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].endswith("images.u8"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= ptr < hi:
                return True
    return False
