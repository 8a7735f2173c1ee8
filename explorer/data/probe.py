"""What a dataset is like before it is loaded: its images' size and channels and how many
training images a run will get, read cheaply (file listings and image headers, never a
decode of the whole set) so a form can show them the moment a dataset is chosen.

The window's training form runs :func:`probe_dataset` in a thread when a folder or a NumPy
file is chosen: "Automatic" image size there is the folder's own (its first image's
shorter side, at most :data:`MAX_AUTO_SIZE`), and the planned run length
(``explorer.training.run_length``) needs the number of training images.

The count of a folder is that of its candidate files split as the loader splits them
(``explorer.data.folder``): exact when every file reads, a little high when some do not
(those are skipped when the run loads it, and listed then).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from explorer.config import DataConfig

# The size "Automatic" gives a folder of large images: 512 pixels a side is DataConfig's
# limit, and at 3 channels already 768 KiB an image.
MAX_AUTO_SIZE = 512
MIN_SIZE = 4
# How many of a folder's files are looked at (headers only) for their size and channels.
FIRST_IMAGES = 8
# A NumPy file larger than this is not read just to count its images (it is when a run loads it).
MAX_ARRAY_FILE_BYTES = 1 << 30

# The built-in sets: (channels, side, training images per class). Every one has 10 classes.
BUILTIN_SHAPES: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "mnist": (1, 28, (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)),
    "fashion-mnist": (1, 28, (6000,) * 10),
    "kmnist": (1, 28, (6000,) * 10),
    "cifar10": (3, 32, (5000,) * 10),
}


@dataclass(frozen=True)
class DataProbe:
    """What was found. ``size`` and ``channels``: the images' own (a folder's from its first
    images; None when unknown); ``class_counts``: training images per class (empty when the
    data has no classes); ``train_total``: all training images; ``counted_files``: the
    counts are of files listed, not of images decoded. ``note``: why something is unknown."""

    dataset: str
    size: int | None = None
    height_width: tuple[int, int] | None = None
    channels: int | None = None
    train_total: int | None = None
    class_counts: tuple[int, ...] = ()
    counted_files: bool = False
    note: str = ""

    def train_size(self, limit: int | None = None, classes: tuple[int, ...] | None = None) -> int | None:
        """The training images a run gets with this class filter and limit (as
        ``only_classes(...).limited(...)``), or None when that cannot be told here."""
        if self.train_total is None:
            return None
        n = self.train_total
        if classes is not None:
            if not self.class_counts or any(c >= len(self.class_counts) for c in classes):
                return None  # the run will say what is wrong with the filter
            n = sum(self.class_counts[c] for c in set(classes))
        if limit is not None:
            n = min(n, limit)
        return n


def auto_size(width: int, height: int) -> int:
    """The square side "Automatic" reads an image of ``width`` x ``height`` at: its shorter
    side (no axis is enlarged), from :data:`MIN_SIZE` to :data:`MAX_AUTO_SIZE`."""
    return max(MIN_SIZE, min(MAX_AUTO_SIZE, min(width, height)))


def probe_dataset(config: DataConfig) -> DataProbe:
    """Probe what ``config.dataset`` names (never raises: what cannot be told is None, with
    a ``note``). Only the test fraction and split seed of ``config`` matter; the class
    filter and the limit are applied by :meth:`DataProbe.train_size`."""
    name = config.dataset
    if name in BUILTIN_SHAPES:
        channels, side, counts = BUILTIN_SHAPES[name]
        return DataProbe(name, side, (side, side), channels, sum(counts), counts)
    from explorer.data.arrays import is_array_file

    try:
        if is_array_file(name):
            return _probe_array_file(config)
        return _probe_folder(config)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a probe only informs; loading the data says what is wrong
        return DataProbe(name, note=" ".join(str(exc).split())[:200] or type(exc).__name__)


def _probe_array_file(config: DataConfig) -> DataProbe:
    from explorer.data.arrays import load_array_file

    path = Path(config.dataset).expanduser()
    if os.stat(path).st_size > MAX_ARRAY_FILE_BYTES:
        return DataProbe(config.dataset, note="a large file: its images are counted when a run loads it")
    data = load_array_file(path, config.test_fraction, config.split_seed)
    c, h, w = data.image_shape
    counts: tuple[int, ...] = ()
    if data.train_labels is not None:
        counts = tuple(int((data.train_labels == k).sum()) for k in range(len(data.class_names)))
    return DataProbe(config.dataset, h if h == w else None, (h, w), c, int(data.train_images.shape[0]), counts)


def _probe_folder(config: DataConfig) -> DataProbe:
    from explorer.data import folder as _folder

    root = Path(config.dataset).expanduser()
    if not root.is_dir():
        return DataProbe(config.dataset, note="not a folder")
    top = _folder._Listing()
    subdirs = _folder._top_entries(root, top)
    own = _folder._own_split_dirs(subdirs)
    if own is not None:  # train/ and test/: the train folder is the training split, whole
        train_top = _folder._Listing()
        labels = _labelled_files(_folder._top_entries(own[0], train_top), train_top)
        train_labels = [label for _, label in labels]
        files = [file for file, _ in labels]
    else:
        labels = _labelled_files(subdirs, top)
        files = [file for file, _ in labels]
        n = len(labels)
        n_test = min(max(1, round(n * config.test_fraction)), n - 1) if n >= 2 else 0
        import torch

        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.split_seed)).tolist()
        train_labels = [labels[i][1] for i in order[n_test:]]
    n_classes = max((label for _, label in labels), default=-1) + 1
    counts = tuple(train_labels.count(k) for k in range(n_classes)) if n_classes else ()
    size, height_width, channels = _first_images(files)
    return DataProbe(config.dataset, size, height_width, channels, len(train_labels), counts, counted_files=True,
                     note="" if size is not None else "none of its first files is an image Pillow reads")


def folder_image_size(folder: str | Path) -> int | None:
    """The size "Automatic" reads ``folder`` at, from the header of its first image (in the
    loader's order: the train/ folder of an own split, class folders by name, then the
    folder's own files), looking at as little as it can: one listing per level on the way
    down and image headers until one reads. None when no image was found."""
    from explorer.data import folder as _folder

    root = Path(folder).expanduser()
    top = _folder._Listing()
    subdirs = _folder._top_entries(root, top)
    own = _folder._own_split_dirs(subdirs)
    if own is not None:
        return folder_image_size(own[0])
    for sub in subdirs:
        found = _first_in(sub, _folder)
        if found is not None:
            return found
    for file in top.files:
        size = _header_size(file)
        if size is not None:
            return size
    return None


def _first_in(directory: Path, _folder, depth: int = 0) -> int | None:
    """The automatic size of the first image under ``directory`` in path order (``_walk``'s)."""
    if depth > 32:
        return None
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None
    for name in names:
        if name.startswith(".") or _folder._is_quiet(name):
            continue
        path = directory / name
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                found = _first_in(path, _folder, depth + 1)
            else:
                found = _header_size(path)
        except OSError:
            continue
        if found is not None:
            return found
    return None


def _header_size(file: Path) -> int | None:
    from PIL import Image

    from explorer.data import folder as _folder

    try:
        with _folder._open_regular(file) as fh, Image.open(fh) as img:  # the header only
            return auto_size(*img.size)
    except Exception:  # noqa: BLE001 - not an image, or not one that reads: the next file
        return None


def _labelled_files(subdirs: list[Path], top) -> list[tuple[Path, int]]:
    """The candidate files with their class (-1 in a flat folder), in the loader's order:
    class folder by class folder (those with a file: the loader keeps those with a readable
    one), else the folder's own files."""
    from explorer.data import folder as _folder

    out: list[tuple[Path, int]] = []
    label = 0
    for sub in subdirs:
        listing = _folder._walk(sub)
        if listing.files:
            out += [(file, label) for file in listing.files]
            label += 1
    if not out:
        out = [(file, -1) for file in top.files]
    return out


def _first_images(files: list[Path]) -> tuple[int | None, tuple[int, int] | None, int | None]:
    """(automatic size, (height, width), channels) from the headers of the first readable
    images among ``files``: the first one's size; 3 channels if any of them is in colour
    (the loader's automatic channels: grey only when every image is)."""
    from PIL import Image

    from explorer.data import folder as _folder

    first: tuple[int, int] | None = None
    colour = False
    seen = 0
    for file in files:
        if seen >= FIRST_IMAGES:
            break
        try:
            with _folder._open_regular(file) as fh, Image.open(fh) as img:  # the header only
                width, height = img.size
                mode = img.mode
        except Exception:  # noqa: BLE001 - as the loader: a file that does not read costs only itself
            continue
        seen += 1
        if first is None:
            first = (height, width)
        colour = colour or mode not in _folder._GREY_MODES
    if first is None:
        return None, None, None
    return auto_size(first[1], first[0]), first, 3 if colour else 1
