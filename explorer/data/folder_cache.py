"""Image folders larger than memory: decoded once into a uint8 cache on disk, then mapped.

A folder of many images (``MEMMAP_MIN_IMAGES`` or more, or more decoded bytes than a
fraction of free memory) is decoded one image at a time into
``cache_dir()/folders/<folder>-<fingerprint>/``: ``images.u8`` (uint8 rows (N, C, S, S), the
test split's rows first, then the train split's), ``labels.npy`` and ``meta.json`` (the row
order's files, class names, shape, split, what the folder report said, and checksums). The
fingerprint hashes the folder's path, every candidate file's relative path, size and mtime,
and the settings (size, channels, split, limit, classes), so the cache is reused while the
folder is unchanged and rebuilt when it changes; the folder's older caches are removed then.
The whole cache folder appears in one rename with ``meta.json`` written last.

The cache's files are not trusted: anything with the user's rights can change them, and the
folder they came from is the source of truth. Every file is opened the way an untrusted file
is (:mod:`explorer.safe_files`: no blocking on a FIFO, ``fstat`` on the descriptor, regular
files of a bounded size only), ``meta.json`` is parsed only when shallow
(:mod:`explorer.bounded_json`) and every field is checked as untrusted input (types, ranges,
agreement with the folder, the settings and the other files' sizes). Checksums written at
build time catch what such checks cannot (a changed pixel, a plausible but wrong split): one
over ``meta.json``'s fields, one over ``labels.npy``, and one per block of about
``BLOCK_BYTES`` of images, of which a spread of ``CHECK_BYTES`` (all of them, in a cache no
larger) is read again on every open. A cache that fails any check is rebuilt from the folder,
with one line in the folder report saying why, never used, never a traceback.

The images come back as tensors viewing the map (a contiguous slice per split, nothing
copied), so training gathers each batch from the page cache. Which files are decoded, the
split, the labels and the skipped-file report are :func:`load_folder`'s own: the cache only
swaps where the decoded images go (:class:`explorer.data.folder.Decoder`).

``LATENT_EXPLORER_FOLDER_CACHE`` = ``auto`` (default), ``always`` or ``never`` overrides the choice.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.atomic import WriteError, atomic_folder, write_text
from explorer.bounded_json import loads_bounded
from explorer.data import folder as _folder
from explorer.data.dataset import ImageData
from explorer.data.folder import DEFAULT_IMAGE_SIZE, FolderReport, load_folder
from explorer.display import one_line
from explorer.errors import DataError
from explorer.paths import cache_dir
from explorer.safe_files import FileRefused, open_regular, read_regular_file, read_up_to

MEMMAP_MIN_IMAGES = 20_000
MEMORY_FRACTION = 0.25  # decoded bytes above this share of free memory also go to the cache
ENV = "LATENT_EXPLORER_FOLDER_CACHE"
FORMAT = 2  # 2: checksums in meta.json; a format-1 cache has another fingerprint, so it is rebuilt
_CHUNK = 4096  # rows copied from the decode-order file into the split-order map at a time
# Images are checksummed in blocks of about this many bytes (whole rows), so an open can check
# a part of a large cache. On every open, all blocks of a cache up to CHECK_BYTES are read again
# and checked; of a larger one, an even spread of blocks (the first and the last among them)
# adding up to about that much. SHA-256 runs at 1 to 2 GB/s: 200,000 images of 28x28 (150 MiB)
# cost about 0.1 s against the 2.4 s the cached load takes (mostly the folder's listing).
BLOCK_BYTES = 4 * 1024**2
CHECK_BYTES = 256 * 1024**2
# meta.json holds a few hundred bytes plus a relative name per image and a path and reason per
# skipped file: far less than this per candidate file. A larger file is not ours (a sparse file
# claiming terabytes, a link to a device) and is not read.
_META_BASE_BYTES = 16 * 1024**2
_META_BYTES_PER_ENTRY = 4096
_META_DEPTH = 8  # a real meta.json nests 4 deep (meta > report > skipped > one pair)
_NPY_HEADER_BYTES = 64 * 1024  # numpy writes labels.npy's header in well under this
_MAX_TEXT = 64 * 1024  # characters in one name, class name, note or reason
_HEX64 = re.compile(r"[0-9a-f]{64}")

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


class _Damaged(Exception):  # noqa: N818 - a verdict, not a failure: the cache is rebuilt
    """A cache that is there but fails a check; the message (one line) says which."""


@dataclass(frozen=True)
class _Stored:
    """Where one decoded image lies in the decode-order file (what ``Decoder.read`` returns here)."""

    path: Path
    offset: int
    shape: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]


def _block_rows(channels: int, size: int) -> int:
    """Rows per checksummed block: whole rows adding up to about BLOCK_BYTES, at least one."""
    return max(1, BLOCK_BYTES // (channels * size * size))


class _BlockDigests:
    """SHA-256 of each ``block_bytes`` of a byte stream, fed in pieces of any length."""

    def __init__(self, block_bytes: int) -> None:
        self.block_bytes = block_bytes
        self.digests: list[str] = []
        self._hash = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view.nbytes:
            take = min(self.block_bytes - self._filled, view.nbytes)
            self._hash.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.block_bytes:
                self._close_block()

    def finish(self) -> list[str]:
        if self._filled:
            self._close_block()
        return self.digests

    def _close_block(self) -> None:
        self.digests.append(self._hash.hexdigest())
        self._hash = hashlib.sha256()
        self._filled = 0


def _meta_digest(body: dict[str, Any]) -> str:
    """The checksum of meta.json's fields (all but ``digest``), over one canonical JSON text:
    parsing and writing again gives the same text, so the file's own layout does not matter."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _sealed(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its checksum added (the last thing written into a cache)."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    return {**body, "digest": _meta_digest(body)}


class _StreamDecoder(_folder.Decoder):
    """Appends each decoded image to ``raw.u8``; ``build`` writes the split-order map."""

    def __init__(self, where: Path, folder: Path, total: int, progress: Progress | None) -> None:
        self.where, self.folder, self.total, self.progress = where, folder, max(1, total), progress
        self.raw_path = where / "raw.u8"
        # "x": created here, never opened if something is already there (a FIFO would block the open)
        self.fh = open(self.raw_path, "xb")  # noqa: SIM115 - closed in build or close
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
        label_array = np.asarray([labels[i] for i in order], dtype=np.int64) if labelled else None
        try:
            digests = self._write_images(order, arrays, c, size)
            labels_digest = None
            if label_array is not None:
                buffer = io.BytesIO()
                np.save(buffer, label_array, allow_pickle=False)
                labels_digest = hashlib.sha256(buffer.getbuffer()).hexdigest()
                with open(self.where / "labels.npy", "xb") as fh:
                    fh.write(buffer.getbuffer())
            images = _map_images(self.where / "images.u8", (n, c, size, size))
        except (OSError, _Damaged) as exc:  # the half-built folder is ours alone: this is a write failure
            raise _CacheWriteFailed(exc) from exc
        self.meta = {"format": FORMAT, "name": name, "n": n, "n_test": n_test, "channels": c, "size": size,
                     "labelled": labelled, "class_names": list(class_names),
                     "files": [_relative(str(arrays[i].path), self.folder) for i in order],
                     "block_rows": _block_rows(c, size), "image_digests": digests, "labels_digest": labels_digest}
        if self.progress is not None:
            self.progress(self.total, self.total)
        return _data_from(images, label_array, name, n_test, class_names)

    def _write_images(self, order: list[int], arrays: list[Any], c: int, size: int) -> list[str]:
        """Copy the decoded rows into ``images.u8`` in split order; the blocks' checksums."""
        n = len(order)
        digests = _BlockDigests(_block_rows(c, size) * c * size * size)
        fd, length = open_regular(self.raw_path, self.offset)  # the file written above, checked all the same
        try:
            raw = np.frombuffer(mmap.mmap(fd, length, access=mmap.ACCESS_READ), dtype=np.uint8) if length else None
        finally:
            os.close(fd)
        if length != self.offset or raw is None:
            raise _Damaged(f"raw.u8 holds {length:,} bytes, not the {self.offset:,} written")
        with open(self.where / "images.u8", "xb") as out:  # written, not mapped: its pages never count as ours
            for start in range(0, n, _CHUNK):
                rows = order[start:start + _CHUNK]
                chunk = np.empty((len(rows), c, size, size), dtype=np.uint8)
                for j, i in enumerate(rows):
                    st = arrays[i]
                    chunk[j] = raw[st.offset:st.offset + st.nbytes].reshape(st.shape)  # grey broadcasts to 3
                data = chunk.tobytes()
                out.write(data)
                digests.update(data)
            out.flush()
            os.fsync(out.fileno())
        del raw
        return digests.finish()


def _data_from(images: np.ndarray, labels: np.ndarray | None, name: str, n_test: int,
               class_names: list[str] | tuple[str, ...]) -> ImageData:
    """The splits as tensors viewing ``images`` (the map), nothing copied but the labels."""
    tensor_labels = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return ImageData(
        name=name,
        train_images=torch.from_numpy(images[n_test:]),
        train_labels=None if tensor_labels is None else tensor_labels[n_test:].clone(),
        test_images=torch.from_numpy(images[:n_test]),
        test_labels=None if tensor_labels is None else tensor_labels[:n_test].clone(),
        class_names=tuple(class_names),
    )


def _map_images(path: Path, shape: tuple[int, int, int, int], check: Callable[[int], None] | None = None) \
        -> np.ndarray:
    """``path`` mapped as uint8 rows of ``shape``, when it is a regular file of exactly that
    many bytes. Copy-on-write: a writable array (torch wants one) whose pages stay the file's
    unless written. ``check(fd)`` runs on the descriptor first (the blocks' checksums), so
    what is checked is the file that is mapped, whatever is renamed over the path meanwhile."""
    expected = shape[0] * shape[1] * shape[2] * shape[3]
    try:
        fd, length = open_regular(path, expected)
    except FileNotFoundError:
        raise _Damaged(f"{path.name} is missing") from None
    except OSError as exc:
        raise _Damaged(_refusal(path, exc)) from None
    try:
        if length != expected:
            raise _Damaged(f"{path.name} holds {length:,} bytes; {shape[0]:,} images of {shape[1]}x{shape[2]}x"
                           f"{shape[3]} need {expected:,}")
        if check is not None:
            check(fd)
        mapped = mmap.mmap(fd, expected, access=mmap.ACCESS_COPY)
    except OSError as exc:  # a read error while checking, or a map refused
        raise _Damaged(_refusal(path, exc)) from None
    finally:
        os.close(fd)
    return np.frombuffer(mapped, dtype=np.uint8).reshape(shape)  # the array keeps the map alive


def _refusal(path: Path, exc: OSError) -> str:
    """Why a cache file could not be opened, naming the file but not the whole cache path."""
    if isinstance(exc, FileRefused):
        return f"{path.name} {exc.reason}"
    return f"{path.name} cannot be read ({exc.strerror or exc})"


@dataclass(frozen=True)
class _Expect:
    """What a cache must agree with: the settings it was built for and the folder's listing."""

    size: int
    channels: int | None
    candidates: int  # candidate image files listed in the folder: each row was one of them
    listed_skips: int  # entries skipped while listing

    @property
    def meta_bytes(self) -> int:
        return _META_BASE_BYTES + _META_BYTES_PER_ENTRY * (self.candidates + self.listed_skips)


@dataclass(frozen=True)
class _Meta:
    """meta.json's fields, each checked."""

    name: str
    n: int
    n_test: int
    channels: int
    size: int
    labelled: bool
    class_names: tuple[str, ...]
    loaded: int
    skipped: list[tuple[str, str]]
    notes: list[str]
    block_rows: int
    image_digests: list[str]
    labels_digest: str | None


_META_KEYS = frozenset({"format", "name", "n", "n_test", "channels", "size", "labelled", "class_names", "files",
                        "report", "block_rows", "image_digests", "labels_digest", "digest"})


def _field(meta: dict[str, Any], key: str, kind: type) -> Any:
    value = meta[key]
    if type(value) is not kind:  # not isinstance: True is not a count, nor 1.0 a size
        raise _Damaged(f"meta.json's {key} is {type(value).__name__}, not {kind.__name__}")
    return value


def _count(meta: dict[str, Any], key: str, low: int, high: int) -> int:
    value = _field(meta, key, int)
    if not low <= value <= high:
        raise _Damaged(f"meta.json's {key} is {value}, outside {low} to {high}")
    return value


def _texts(value: Any, what: str) -> list[str]:
    if type(value) is not list or any(type(v) is not str or len(v) > _MAX_TEXT for v in value):
        raise _Damaged(f"meta.json's {what} is not a list of names")
    return value


def _checked_meta(text: str, expect: _Expect) -> _Meta:
    """meta.json's fields, each checked as untrusted input: types, ranges, agreement with the
    settings and the folder's listing, and at the end the checksum over them all."""
    try:
        meta = loads_bounded(text, _META_DEPTH)
    except ValueError as exc:
        raise _Damaged(f"meta.json is {exc}") from None
    if type(meta) is not dict:
        raise _Damaged("meta.json does not hold an object")
    if set(meta) != _META_KEYS:
        odd = sorted(set(meta) ^ _META_KEYS)[0]
        raise _Damaged(f"meta.json {'lacks' if odd in _META_KEYS else 'has an unknown'} field {odd!r}")
    if _field(meta, "format", int) != FORMAT:
        raise _Damaged(f"meta.json is format {meta['format']}, not {FORMAT}")
    name = _field(meta, "name", str)
    if len(name) > _MAX_TEXT:
        raise _Damaged("meta.json's name is too long")
    n = _count(meta, "n", 1, max(1, expect.candidates))
    n_test = _count(meta, "n_test", 0, n)
    channels = _field(meta, "channels", int)
    if channels not in (1, 3) or expect.channels not in (None, channels):
        raise _Damaged(f"meta.json's channels is {channels}, not {expect.channels or '1 or 3'}")
    size = _count(meta, "size", expect.size, expect.size)
    labelled = _field(meta, "labelled", bool)
    class_names = _texts(meta["class_names"], "class names")
    if labelled != bool(class_names) or len(class_names) > expect.candidates:  # each class had an image file
        raise _Damaged(f"meta.json lists {len(class_names)} classes for {'labelled' if labelled else 'unlabelled'} "
                       f"images")
    if len(_texts(meta["files"], "files")) != n:
        raise _Damaged(f"meta.json names {len(meta['files'])} files for {n} images")
    report = meta["report"]
    if type(report) is not dict or set(report) != {"loaded", "skipped", "notes"}:
        raise _Damaged("meta.json's report is not the folder report")
    loaded = _count(report, "loaded", n, n)
    skipped = report["skipped"]
    if type(skipped) is not list or any(type(p) is not list or len(p) != 2 for p in skipped):
        raise _Damaged("meta.json's skipped files are not (name, reason) pairs")
    for pair in skipped:
        _texts(pair, "skipped files")
    notes = _texts(report["notes"], "notes")
    block_rows = _count(meta, "block_rows", _block_rows(channels, size), _block_rows(channels, size))
    digests = meta["image_digests"]
    blocks = -(-n // block_rows)
    if type(digests) is not list or len(digests) != blocks or \
            any(type(d) is not str or not _HEX64.fullmatch(d) for d in digests):
        raise _Damaged(f"meta.json's image checksums are not {blocks} SHA-256 digests")
    labels_digest = meta["labels_digest"]
    if labelled != (type(labels_digest) is str and bool(_HEX64.fullmatch(labels_digest))) or \
            (not labelled and labels_digest is not None):
        raise _Damaged("meta.json's labels checksum does not fit its labels")
    digest = meta["digest"]
    if type(digest) is not str or digest != _meta_digest({k: v for k, v in meta.items() if k != "digest"}):
        raise _Damaged("meta.json's fields do not match their checksum (changed since the cache was built)")
    return _Meta(name, n, n_test, channels, size, labelled, tuple(class_names), loaded,
                 [(a, b) for a, b in skipped], list(notes), block_rows, list(digests), labels_digest)


def _checked_labels(where: Path, meta: _Meta) -> np.ndarray:
    """labels.npy's labels: its bytes match the checksum before numpy parses them, and then
    they are integers, one per image, each naming one of the cache's classes."""
    path = where / "labels.npy"
    try:
        raw = read_regular_file(path, 8 * meta.n + _NPY_HEADER_BYTES)
    except FileNotFoundError:
        raise _Damaged("labels.npy is missing") from None
    except OSError as exc:
        raise _Damaged(_refusal(path, exc)) from None
    if hashlib.sha256(raw).hexdigest() != meta.labels_digest:
        raise _Damaged("labels.npy does not match its checksum (changed since the cache was built)")
    fh = io.BytesIO(raw)
    try:  # the header alone first: numpy would allocate whatever shape it claims before reading
        if np.lib.format.read_magic(fh) != (1, 0):
            raise ValueError("not the version written")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    except Exception:  # noqa: BLE001 - numpy's header parser raises many kinds; any of them is damage
        raise _Damaged("labels.npy is not a numpy array file as written") from None
    if dtype.kind not in "iu" or shape != (meta.n,):
        raise _Damaged(f"labels.npy holds {dtype} of shape {shape}, not {meta.n} integers")
    body = raw[fh.tell():]
    if len(body) != meta.n * dtype.itemsize:
        raise _Damaged(f"labels.npy holds {len(body):,} bytes of labels, not {meta.n * dtype.itemsize:,}")
    labels = np.frombuffer(body, dtype=dtype)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= len(meta.class_names):
        raise _Damaged(f"labels.npy holds label {low if low < 0 else high}; the cache has "
                       f"{len(meta.class_names)} classes")
    return labels.astype(np.int64)  # a writable copy: the bytes read are read-only


def _blocks_to_check(count: int, block_bytes: int) -> list[int]:
    """Every block when they add up to at most CHECK_BYTES; else an even spread of that many
    bytes' worth, the first and the last among them (the same blocks on every open)."""
    budget = max(2, CHECK_BYTES // block_bytes)
    if count <= budget:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, budget).round()})


def _check_image_blocks(meta: _Meta) -> Callable[[int], None]:
    """What :func:`_map_images` runs on the descriptor: the chosen blocks' checksums."""

    def check(fd: int) -> None:
        row = meta.channels * meta.size * meta.size
        block_bytes = meta.block_rows * row
        total = meta.n * row
        for i in _blocks_to_check(len(meta.image_digests), block_bytes):
            start = i * block_bytes
            length = min(block_bytes, total - start)
            os.lseek(fd, start, os.SEEK_SET)
            data = read_up_to(fd, length, "images.u8")
            if len(data) != length or hashlib.sha256(data).hexdigest() != meta.image_digests[i]:
                raise _Damaged(f"images.u8 does not match its checksum in rows {i * meta.block_rows:,} to "
                               f"{min(meta.n, (i + 1) * meta.block_rows) - 1:,} (changed since the cache was built)")

    return check


def _open(where: Path, report: FolderReport | None, expect: _Expect) -> ImageData | None:
    """The cache in ``where``; None when there is none; :class:`_Damaged` when it is there but
    fails a check (incomplete, changed or hostile), never a partial or unchecked one."""
    meta_path = where / "meta.json"
    try:
        raw = read_regular_file(meta_path, expect.meta_bytes)
    except FileNotFoundError:
        if os.path.lexists(where):
            raise _Damaged("meta.json is missing (the cache was not finished)") from None
        return None
    except OSError as exc:
        raise _Damaged(_refusal(meta_path, exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Damaged("meta.json is not UTF-8 text") from None
    meta = _checked_meta(text, expect)
    labels = _checked_labels(where, meta) if meta.labelled else None
    images = _map_images(where / "images.u8", (meta.n, meta.channels, meta.size, meta.size), _check_image_blocks(meta))
    data = _data_from(images, labels, meta.name, meta.n_test, meta.class_names)
    if report is not None:
        report.loaded = meta.loaded
        report.skipped.extend(meta.skipped)
        report.notes.extend(meta.notes)
    return data


def _tell(report: FolderReport | None, message: str) -> None:
    """One line for the user: into the folder report (the CLI prints its notes as warnings, the
    window shows them), or on stderr when nobody asked for a report."""
    line = one_line(message, 400)
    if report is not None:
        report.notes.append(line)
    else:
        print(f"latent-explorer: warning: {line}", file=sys.stderr)


def _remove(path: Path) -> None:
    """Remove an old or damaged cache entry, whatever it is (a folder, a file, a link, a FIFO)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass  # a later build fails to rename onto it, and the folder loads into memory


def load_folder_cached(path: str | Path, image_size: int | None = None, channels: int | None = None,
                       test_fraction: float = 0.1, split_seed: int = 0, report: FolderReport | None = None,
                       limit: int | None = None, classes: tuple[int, ...] | None = None,
                       progress: Progress | None = None, mode: str | None = None) -> tuple[ImageData, bool]:
    """:func:`load_folder`'s result, from the disk cache when the folder is large (or ``mode``
    says "always"); the flag says whether the images are memory-mapped. A cache that fails a
    check is rebuilt from the folder, with one line in ``report`` saying why."""
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
    expect = _Expect(size, channels, len(files), len(listed_skips))
    key = _folder_key(folder)
    root = folders_dir()
    target = root / f"{key}-{fingerprint(folder, files, listed_skips, settings)}"
    try:
        data = _open(target, report, expect)
    except _Damaged as exc:
        _tell(report, f"the cache of {folder.name or folder} failed a check ({exc}); decoding the folder again")
    else:
        if data is not None:
            return data, True
    for old in root.glob(f"{key}-*") if root.is_dir() else ():
        _remove(old)  # older versions of this folder, or this one half-built or damaged
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
            meta["report"] = {"loaded": inner.loaded, "skipped": [list(p) for p in inner.skipped],
                              "notes": list(inner.notes)}
            sealed = _sealed(meta)
            write_text(tmp / "meta.json", lambda fh: json.dump(sealed, fh))  # last: it makes the cache valid
    except _CacheWriteFailed:
        return in_memory()
    except WriteError:
        pass  # another process built it first (the rename found a folder), or the cache is not writable
    try:
        data = _open(target, report, expect)
    except _Damaged:
        data = None
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
