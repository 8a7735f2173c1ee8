"""A user's own folder of images.

Class sub-folders give labels (like torchvision's ImageFolder); a flat folder gives none.
Files that are not readable images are skipped and reported, never fatal, unless no
image at all is left. The held-out test split is drawn with a fixed seed so a checkpoint
evaluates on the same images it was tested on while training.

Loading is all or nothing: either a complete :class:`ImageData` comes back (and the
caller's report is filled in) or an exception does, and nothing is written to disk.

Listing never raises on an entry it cannot look at (a ``/proc``-like tree answers
``PermissionError`` to a plain ``stat``): the entry is skipped and reported. Files are
opened without blocking and read only when ``fstat`` says they are regular and not empty.
With a ``limit`` only the images that will be used are decoded, per split. JPEG photos of
any size Pillow opens are decoded at 1/2 to 1/8 scale (``draft``) when the target is
small, so only formats that must be decoded whole meet the pixel limit.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.data.dataset import ImageData
from explorer.display import plural
from explorer.errors import DataError

DEFAULT_IMAGE_SIZE = 32
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"P", "PA", "LA", "La", "RGBA", "RGBa"}
# A guard against decompression bombs: beyond this a single file could exhaust memory. It
# applies to the pixels actually decoded: a JPEG is first drafted down towards the target
# size (a 54 or 108 MP photo decodes at 1/8 scale), so it is what formats decoded whole meet.
# Pillow's own warning (89 MP, before any draft) is silenced; its error (179 MP) still refuses.
_MAX_PIXELS = 50_000_000


@dataclass
class FolderReport:
    """What was read and what was skipped, so the caller can tell the user."""

    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Warnings about what was loaded (one line each), e.g. class folders whose names differ
    # only by case or Unicode form: they load as two classes but would merge on another system.
    notes: list[str] = field(default_factory=list)


# Arrays that sit beside generated images (``generate --folder`` writes images.npy), and the
# thumbnail caches Windows drops into picture folders: not images the user put there, and not
# worth a warning. Any other non-image file is reported by name.
_SIDECAR_SUFFIXES = {".npy", ".npz"}
_SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini"}


class _TooLarge(ValueError):
    pass


class _NotAnImageFile(ValueError):
    """A file skipped before Pillow sees it; the message is the whole reason."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def _open_regular(path: Path):  # -> BinaryIO
    """``path`` opened for reading only if it is a regular file with something in it: opened
    without blocking (a FIFO cannot hang us), then checked with ``fstat`` on the descriptor.
    ``/proc``-style files claim size 0 and are skipped as empty, so none is read forever."""
    fh = open(path, "rb", opener=lambda name, flags: os.open(name, _OPEN_FLAGS))
    try:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _NotAnImageFile("not a regular file")
        if info.st_size == 0:
            raise _NotAnImageFile("an empty file")
    except BaseException:
        fh.close()
        raise
    return fh


def _why_not(exc: OSError) -> str:
    return f"cannot read it ({exc.strerror or type(exc).__name__})"


@dataclass
class _Listing:
    """Candidate image files under a folder, plus what could not even be tried."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # hidden and system files, silently passed over


def _is_quiet(name: str) -> bool:
    return Path(name).suffix.lower() in _SIDECAR_SUFFIXES or name.lower() in _SYSTEM_FILES


def _sort_entry(root: Path, name: str, listing: _Listing) -> None:
    """File one directory entry that is not a followed folder: a candidate, ignored, or skipped.

    Only regular files are candidates: opening a FIFO or a device would block or read forever,
    and a broken or looping link cannot be opened at all.
    """
    path = root / name
    if name.startswith(".") or _is_quiet(name):
        listing.ignored += 1
        return
    try:
        info = os.stat(path)  # follows a link
    except OSError as exc:
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            link = False
        broken = link and (isinstance(exc, (FileNotFoundError, NotADirectoryError)) or exc.errno == errno.ELOOP)
        listing.skipped.append((str(path), "a broken or looping link" if broken else _why_not(exc)))
        return
    if stat.S_ISREG(info.st_mode):
        listing.files.append(path)
    else:
        listing.skipped.append((str(path), "not a regular file"))


def _walk(folder: Path) -> _Listing:
    """Every candidate file under ``folder``, sorted, skipping hidden files and folders.

    ``os.walk`` rather than ``Path.rglob``: it reports folders it cannot read (rglob drops
    them silently). Links to folders are reported, not followed, so a link loop cannot make
    the walk endless or load the same images twice.
    """
    listing = _Listing()

    def unreadable(exc: OSError) -> None:
        listing.skipped.append((str(exc.filename), f"cannot read this folder ({exc.strerror})"))

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        here = Path(root)
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                listing.ignored += 1
                continue
            try:
                link = stat.S_ISLNK(os.lstat(here / d).st_mode)
            except OSError as exc:
                listing.skipped.append((str(here / d), f"cannot read this folder ({exc.strerror or exc})"))
                continue
            if link:
                listing.skipped.append((str(here / d), "a link to a folder (not followed)"))
            else:
                keep.append(d)
        dirs[:] = keep
        for name in sorted(names):
            _sort_entry(here, name, listing)
    listing.files.sort()
    return listing


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
    """``img`` as a (channels, size, size) uint8 array, transparency composited on black.

    Palette and greyscale images that mark a transparent colour (``info["transparency"]``)
    go through RGBA like images with an alpha channel, so a transparent pixel is black
    whichever way the file stored it.
    """
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    img = img.convert("L" if channels == 1 else "RGB")
    factor = min(img.width, img.height) // (2 * size)
    if factor >= 2:  # far larger than the target: average boxes down first (fast), keep 2x for the resize
        img = img.reduce(factor)
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


class Decoder:
    """Where decoded images go: kept in memory (this class, the default) or streamed to a
    cache on disk (:mod:`explorer.data.folder_cache`). ``read`` decodes one file; ``build``
    makes the :class:`ImageData` from what ``read`` returned (test rows, then train rows)."""

    def read(self, path: Path, channels: int | None, size: int) -> Any:
        return _read(path, channels, size)

    def build(self, name: str, arrays: list[Any], labels: list[int], labelled: bool, class_names: list[str],
              test_idx: torch.Tensor, train_idx: torch.Tensor, channels: int | None) -> ImageData:
        if channels is None and any(a.shape[0] == 3 for a in arrays):
            arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
        x = torch.from_numpy(np.stack(arrays))
        y = torch.tensor(labels, dtype=torch.int64) if labelled else None
        return ImageData(
            name=name,
            train_images=x[train_idx].clone(), train_labels=None if y is None else y[train_idx].clone(),
            test_images=x[test_idx].clone(), test_labels=None if y is None else y[test_idx].clone(),
            class_names=tuple(class_names),
        )


_IN_MEMORY = Decoder()
_decoder: ContextVar[Decoder | None] = ContextVar("folder_decoder", default=None)


def _current() -> Decoder:
    return _decoder.get() or _IN_MEMORY


def _decode(path: Path, channels: int | None, size: int) -> Any:
    return _current().read(path, channels, size)


def _read(path: Path, channels: int | None, size: int) -> np.ndarray:
    """One file as a (C, size, size) array, converted at once so a folder of big photos never
    sits in memory at full size. With ``channels`` None, C is 1 for greyscale files and 3 for
    the rest; the caller widens the grey ones if any colour file turns up.
    """
    with _open_regular(path) as fh, Image.open(fh) as img:
        width, height = img.size
        img.draft(None, (size, size))  # JPEG only: decode at 1/2-1/8 scale when that still covers size
        if img.width * img.height > _MAX_PIXELS:
            raise _TooLarge(f"{width}x{height} pixels; the limit is {_MAX_PIXELS // 1_000_000} megapixels "
                            "for images that cannot be decoded small (JPEG photos can)")
        ImageOps.exif_transpose(img, in_place=True)  # camera photos stored sideways
        if channels is None:
            channels = 1 if img.mode in _GREY_MODES else 3
        return _convert(img, channels, size)


# How common image files start: a file that does and still cannot be identified is a damaged
# image (say, a bad checksum), not some other kind of file, and the message should say so.
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"II*\x00": "TIFF",
               b"MM\x00*": "TIFF"}


def _unidentified(path: Path) -> str:
    try:
        with _open_regular(path) as fh:
            head = fh.read(8)
    except (OSError, _NotAnImageFile):
        head = b"?"
    if not head:
        return "an empty file"
    kind = next((name for magic, name in _SIGNATURES.items() if head.startswith(magic)), None)
    return f"a damaged {kind} file" if kind else "not an image (or not a format Pillow can read)"


def _reason(path: Path, exc: Exception) -> str:
    """Why a file was skipped, in a few words (Pillow's messages repeat the full path)."""
    if isinstance(exc, _NotAnImageFile):
        return str(exc)
    if isinstance(exc, _TooLarge):
        return f"too large ({exc})"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        return f"too large ({int(pixels[1]):,} pixels)" if pixels else "too large"
    if isinstance(exc, UnidentifiedImageError):
        return _unidentified(path)
    if isinstance(exc, OSError) and exc.strerror:
        return _why_not(exc)
    return f"damaged or unsupported ({str(exc) or type(exc).__name__})"


def _load_files(files: list[Path], channels: int | None, size: int,
                skipped: list[tuple[str, str]]) -> list[np.ndarray]:
    """The readable files as arrays; each unreadable one adds (path, reason) to ``skipped``."""
    arrays = []
    for file in files:
        try:
            arrays.append(_decode(file, channels, size))
        except MemoryError:
            raise
        # Pillow's decoders raise a zoo of types on damaged files (OSError, SyntaxError,
        # EOFError, struct.error, IndexError, ValueError...): one bad file costs only itself.
        except Exception as exc:  # noqa: BLE001
            skipped.append((str(file), _reason(file, exc)))
    return arrays


def relative_name(name: str, folder: str | Path | None) -> str:
    """``name`` relative to ``folder`` when it lies inside it, else as given: short in a
    message about skipped files, yet two files of one name in different class folders
    still read apart."""
    if folder is None:
        return name
    try:
        return str(Path(name).relative_to(folder))
    except ValueError:
        return name


def _named(folder: Path, skipped: list[tuple[str, str]], limit: int = 3) -> str:
    shown = "; ".join(f"{relative_name(name, folder)}: {why}" for name, why in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"{len(skipped)} skipped ({shown}{more})"


def _nothing_found(folder: Path, skipped: list[tuple[str, str]], ignored: int) -> str:
    if skipped:
        return _named(folder, skipped)
    if ignored:
        return (f"only {plural(ignored, 'hidden or system file')}, which {'is' if ignored == 1 else 'are'} ignored "
                "(names starting with '.', Thumbs.db, desktop.ini, .npy arrays)")
    return "the folder is empty"


def _quoted(name: str) -> str:
    """A file name fit for a one-line message: control characters escaped."""
    return repr(name) if not name.isprintable() else f"'{name}'"


def _name_clashes(names: list[str]) -> list[str]:
    """One note per group of class names that differ only by case or Unicode normalisation:
    distinct folders here, one folder on Windows and macOS (and after ``generate --folder``)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
    notes = []
    for same in groups.values():
        if len(same) > 1:
            listed = " and ".join(_quoted(n) for n in same)
            notes.append(f"the class folders {listed} differ only by case or Unicode form: they are "
                         f"{len(same)} classes here, but would be one folder on Windows or macOS; rename them apart")
    return notes


def _top_entries(folder: Path, top: _Listing) -> list[Path]:
    """The class-folder candidates directly in ``folder``; everything else is filed in ``top``.
    An entry that cannot even be looked at (``stat`` refused) is reported, never raised."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read the folder {folder}: {exc.strerror or exc}") from None
    try:
        here = folder.resolve()
    except (OSError, RuntimeError):
        here = folder.absolute()
    subdirs = []
    for entry in entries:
        try:
            is_dir = stat.S_ISDIR(os.stat(entry).st_mode) and not entry.name.startswith(".")
        except OSError:
            _sort_entry(folder, entry.name, top)  # hidden, a broken link, or "cannot read it (...)"
            continue
        if is_dir:
            # A linked class folder is followed (datasets are often assembled from links),
            # unless it leads back to this folder or above: that would nest the folder in itself.
            try:
                loops = entry.is_symlink() and here.is_relative_to(entry.resolve())
            except (OSError, RuntimeError) as exc:
                top.skipped.append((str(entry), f"cannot read this folder ({getattr(exc, 'strerror', None) or exc})"))
                continue
            if loops:
                top.skipped.append((str(entry), "a link back into this folder (not followed)"))
            else:
                subdirs.append(entry)
        else:
            _sort_entry(folder, entry.name, top)
    return subdirs


def _try_read(file: Path, channels: int | None, size: int, skipped: list[tuple[str, str]]) -> np.ndarray | None:
    try:
        return _decode(file, channels, size)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - as in _load_files: one bad file costs only itself
        skipped.append((str(file), _reason(file, exc)))
        return None


def _load_limited(folder: Path, subdirs: list[Path], top: _Listing, form: tuple[int | None, int],
                  split: tuple[float, int] | None, limit: int | None, classes: tuple[int, ...] | None,
                  skipped: list[tuple[str, str]], ignored: int, class_filter: set[str] | None = None
                  ) -> tuple[list[np.ndarray], list[int], list[str], list[Path], int, int]:
    """Decode only what a ``limit`` (and a class filter) will use: each class folder's first
    readable file (which makes it a class), then, along each split's seeded order, images
    until ``limit`` per split have been read. Returns the arrays and labels (test split first,
    then train, each in split order), the class names, the image-less folders, the count of
    ignored files and the number of test images.

    With ``split`` None the folder is one split of a folder that has its own (see
    :func:`_own_split_dirs`): no image is held out, all go along one fixed seeded order, and
    ``limit`` None reads them all. ``class_filter`` keeps classes by name rather than index
    (a test split whose classes are a subset of the train split's)."""
    channels, size = form
    test_fraction, split_seed = split if split is not None else (0.0, _OWN_SPLIT_ORDER_SEED)
    cache: dict[Path, np.ndarray | None] = {}
    candidates: list[tuple[Path, int]] = []
    class_names: list[str] = []
    imageless: list[Path] = []
    for sub in subdirs:
        listing = _walk(sub)
        skipped += listing.skipped
        ignored += listing.ignored
        readable = False
        for file in listing.files:
            cache[file] = _try_read(file, channels, size, skipped)
            if cache[file] is not None:
                readable = True
                break
        if not readable:
            imageless.append(sub)
            continue
        candidates += [(file, len(class_names)) for file in listing.files]
        class_names.append(sub.name)
    if not class_names:
        candidates = [(file, -1) for file in top.files]
    name = folder.name or str(folder)
    if classes is not None:
        if not class_names:
            raise DataError(f"{name} has no classes to filter by")
        bad = [c for c in classes if c >= len(class_names)]
        if bad:
            raise DataError(f"{name} has classes 0 to {len(class_names) - 1}; there is no class {bad[0]}")
    wanted = set(classes) if classes is not None else None
    n = len(candidates)
    n_test = min(max(1, round(n * test_fraction)), n - 1) if n >= 2 and split is not None else 0
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed)).tolist()

    def take(indices: list[int]) -> list[tuple[np.ndarray, int]]:
        out: list[tuple[np.ndarray, int]] = []
        for i in indices:
            if limit is not None and len(out) >= limit:
                break
            file, label = candidates[i]
            if wanted is not None and label not in wanted:
                continue
            if class_filter is not None and (label < 0 or class_names[label] not in class_filter):
                continue
            array = cache[file] if file in cache else _try_read(file, channels, size, skipped)
            cache[file] = array
            if array is not None:
                out.append((array, label))
        return out

    test = take(order[:n_test])
    train = take(order[n_test:])
    return ([a for a, _ in test + train], [label for _, label in test + train], class_names, imageless,
            ignored, len(test))


# A folder that already holds its own split: these sub-folder names (compared case-insensitively)
# and nothing else beside them. The first of the test names present is the test split.
_TRAIN_NAME = "train"
_TEST_NAMES = ("test", "val", "valid", "validation")
# The fixed order each such split's images go in, so that a limit takes a mix of the classes
# (not the first class folder's files) and loading with a limit picks what limiting after would.
_OWN_SPLIT_ORDER_SEED = 0


def _own_split_dirs(subdirs: list[Path]) -> tuple[Path, Path, list[Path]] | None:
    """(train, test, unused) when ``subdirs`` are a train/ folder and a test/ (or val/) one,
    else None: then the folder is classes (or flat) and its test split is held out as usual."""
    by_name: dict[str, Path] = {}
    for sub in subdirs:
        key = sub.name.casefold()
        if key in by_name or key not in (_TRAIN_NAME, *_TEST_NAMES):
            return None
        by_name[key] = sub
    test_names = [name for name in _TEST_NAMES if name in by_name]
    if _TRAIN_NAME not in by_name or not test_names:
        return None
    return by_name[_TRAIN_NAME], by_name[test_names[0]], [by_name[name] for name in test_names[1:]]


def _load_split_dir(split_dir: Path, form: tuple[int | None, int], limit: int | None,
                    classes: tuple[int, ...] | None, class_filter: set[str] | None,
                    skipped: list[tuple[str, str]]) -> tuple[list[np.ndarray], list[int], list[str], int]:
    """One split of a folder with its own split, loaded as a whole folder would be (class
    sub-folders give labels, flat gives none). Returns the arrays, labels, class names and
    the count of ignored files; unreadable entries go to ``skipped``. The arrays may be empty:
    the caller says why."""
    top = _Listing()
    subdirs = _top_entries(split_dir, top)
    skipped += top.skipped
    arrays, labels, class_names, imageless, ignored, _ = _load_limited(
        split_dir, subdirs, top, form, None, limit, classes, skipped, top.ignored, class_filter)
    if class_names:
        named = {name for name, _ in skipped}
        skipped += [(str(sub), "no readable images, so not used as a class") for sub in imageless
                    if str(sub) not in named]
        skipped += [(str(p), "not inside a class folder") for p in top.files]
    return arrays, labels, class_names, ignored


def _load_own_split(folder: Path, dirs: tuple[Path, Path, list[Path]], top: _Listing,
                    form: tuple[int | None, int], limit: int | None, classes: tuple[int, ...] | None,
                    report: FolderReport | None) -> ImageData:
    """A folder holding train/ and test/ (or val/): that split is kept, since a dataset that
    ships one means results on it to be comparable; no seeded hold-out is drawn."""
    train_dir, test_dir, unused = dirs
    channels, _ = form
    name = folder.name or str(folder)
    skipped = list(top.skipped)
    skipped += [(str(p), f"not inside {train_dir.name}/ or {test_dir.name}/") for p in top.files]
    skipped += [(str(p), f"not used: {test_dir.name}/ is the test split") for p in unused]
    train_arrays, train_labels, class_names, ignored = _load_split_dir(train_dir, form, limit, classes, None, skipped)
    if not train_arrays:
        raise DataError(f"no readable images in {train_dir}: {_nothing_found(train_dir, skipped, ignored)}")
    # The test split's classes are matched to train's by name; only the ones wanted are read
    # past their first file, so a stranger costs one decode before it is refused.
    wanted = set(class_names) if classes is None else {class_names[c] for c in classes}
    test_arrays, test_local, test_names, ignored = _load_split_dir(
        test_dir, form, limit, None, wanted if class_names else None, skipped)
    if bool(class_names) != bool(test_names):
        labelled, flat = (train_dir, test_dir) if class_names else (test_dir, train_dir)
        raise DataError(f"{name}: {labelled.name}/ has class folders but {flat.name}/ does not; "
                        "give both the same class folders, or neither")
    strangers = [c for c in test_names if c not in class_names]
    if strangers:
        raise DataError(f"{name}: {test_dir.name}/ has the class folder {_quoted(strangers[0])}, which "
                        f"{train_dir.name}/ does not have (its classes: {', '.join(class_names)})")
    if not test_arrays:
        if test_names and classes is not None:
            raise DataError(f"{name}: {test_dir.name}/ has no readable images of the chosen classes")
        raise DataError(f"no readable images in {test_dir}: {_nothing_found(test_dir, skipped, ignored)}")
    index = {c: i for i, c in enumerate(class_names)}
    test_labels = [index[test_names[label]] for label in test_local] if class_names else []

    n_test, n = len(test_arrays), len(test_arrays) + len(train_arrays)
    data = _current().build(name, test_arrays + train_arrays, test_labels + train_labels, bool(class_names),
                                class_names, torch.arange(n_test), torch.arange(n_test, n), channels)
    if report is not None:
        report.loaded = len(train_arrays) + len(test_arrays)
        report.skipped.extend(skipped)
        report.notes.append(f"kept the folder's own {train_dir.name}/ and {test_dir.name}/ split")
        report.notes.extend(_name_clashes(class_names))
    return data


def load_folder(path: str | Path, image_size: int | None = None, channels: int | None = None,
                test_fraction: float = 0.1, split_seed: int = 0,
                report: FolderReport | None = None, limit: int | None = None,
                classes: tuple[int, ...] | None = None) -> ImageData:
    """Load ``path`` as a dataset; unreadable files are listed in ``report`` (filled only on success).

    Sub-folders holding at least one readable image are the classes; sub-folders without one
    are reported and left out, so a stray empty or junk folder neither adds a phantom class
    nor turns a flat folder into a labelled one. A single class folder gives a one-class
    labelled dataset (unconditional models train on it; conditional ones refuse it clearly).

    ``classes`` and ``limit`` select as ``ImageData.only_classes(...).limited(...)`` would,
    but before decoding: only the first ``limit`` images of each split (of those classes)
    are decoded, each class folder's first readable file aside. Without a limit every file is
    decoded and the split is drawn over the readable ones; with one it is drawn over the
    candidate files (the same split when every file reads), and an unreadable file drawn is
    replaced by the next in the split's order.

    A folder whose sub-folders are ``train`` and ``test`` (or ``val``, ``valid``,
    ``validation``; any case) keeps that split: ``test_fraction`` and ``split_seed`` are
    ignored, each split loads as a folder would (classes named as train's; a test class that
    train lacks is an error), ``limit`` and ``classes`` apply to each, and ``report.notes``
    says the folder's own split was kept.
    """
    folder = Path(path).expanduser()
    try:
        is_folder = folder.is_dir()
    except OSError:
        is_folder = False
    if not is_folder:
        raise DataError(f"{folder} is not a folder of images (and not a known dataset name)")
    size = image_size or DEFAULT_IMAGE_SIZE
    top = _Listing()
    subdirs = _top_entries(folder, top)
    own_split = _own_split_dirs(subdirs)
    if own_split is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"PIL\.")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _load_own_split(folder, own_split, top, (channels, size), limit, classes, report)
    skipped = list(top.skipped)
    ignored = top.ignored

    labels: list[int] = []
    class_names: list[str] = []
    imageless: list[Path] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")  # e.g. "corrupt EXIF data": not worth a line
        # Our own limit, on the pixels decoded after a draft, replaces Pillow's warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if limit is None:
            arrays: list[np.ndarray] = []
            for sub in subdirs:
                listing = _walk(sub)
                skipped += listing.skipped
                ignored += listing.ignored
                found = _load_files(listing.files, channels, size, skipped)
                if found:
                    labels += [len(class_names)] * len(found)
                    class_names.append(sub.name)
                    arrays += found
                else:
                    imageless.append(sub)
            labelled = bool(class_names)
            if not labelled:
                # No sub-folder holds an image: the folder's own files are the (unlabelled) dataset.
                arrays = _load_files(top.files, channels, size, skipped)
        else:
            arrays, labels, class_names, imageless, ignored, n_test = _load_limited(
                folder, subdirs, top, (channels, size), (test_fraction, split_seed), limit, classes, skipped, ignored)
            labelled = bool(class_names)
        if labelled:
            named = {name for name, _ in skipped}  # an unreadable class folder is already listed
            skipped += [(str(sub), "no readable images, so not used as a class") for sub in imageless
                        if str(sub) not in named]
            skipped += [(str(p), "not inside a class folder") for p in top.files]

    if not arrays:
        raise DataError(f"no readable images in {folder}: {_nothing_found(folder, skipped, ignored)}")
    if len(arrays) < 2:
        extra = f"; {_named(folder, skipped)}" if skipped else ""
        raise DataError(f"{folder} holds only one readable image; at least two are needed "
                        f"(one to train, one to test){extra}")

    n = len(arrays)
    if limit is None:
        n_test = min(max(1, round(n * test_fraction)), n - 1)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
        test_idx, train_idx = order[:n_test], order[n_test:]
    else:  # _load_limited returned the test images first, then the train images, each in split order
        test_idx, train_idx = torch.arange(n_test), torch.arange(n_test, n)
        if n_test == 0 or n_test == n:
            split = "test" if n_test == 0 else "training"
            raise DataError(f"none of the images drawn for the {split} split of {folder} could be read; "
                            f"{_named(folder, skipped)}")
    data = _current().build(folder.name or str(folder), arrays, labels, labelled, class_names,
                                test_idx, train_idx, channels)
    if report is not None:
        report.loaded = n
        report.skipped.extend(skipped)
        report.notes.extend(_name_clashes(class_names))
    return data
