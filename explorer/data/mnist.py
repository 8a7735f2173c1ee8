"""The MNIST copy that ships inside the app, so it works with no network.

The gzip IDX files are read once and cached unpacked (``.npy``) in the user's cache
directory; later starts memory-map the cache instead of inflating 10 MB again.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from explorer.data.dataset import ImageData
from explorer.errors import DataError
from explorer.paths import RESOURCES, cache_dir
from explorer.safe_files import check_regular_file

BUNDLED_DIR = RESOURCES / "mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CLASS_NAMES = tuple(str(d) for d in range(10))
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Parse a (gzip) IDX file; raises DataError on anything that is not one."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path.name} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    if ndim == 0:
        raise DataError(f"{path.name} is an IDX file with no dimensions")
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) if dims else 0
    if len(raw) - header != expected:
        raise DataError(f"{path.name} is truncated or padded ({len(raw) - header} bytes for {dims})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _bundle_fingerprint() -> str:
    h = hashlib.sha256()
    for name in FILES.values():
        st = (BUNDLED_DIR / name).stat()
        h.update(f"{name}:{st.st_size}".encode())
    return h.hexdigest()[:16]


CACHE_MAX_BYTES = 64 * 1024**2  # the largest array, 60,000 images of 28x28 bytes, is 47 MB
_SHAPES = {"train_images": (60000, 28, 28), "train_labels": (60000,), "test_images": (10000, 28, 28),
           "test_labels": (10000,)}


def _plausible(arrays: dict[str, np.ndarray]) -> bool:
    """Whether the cached arrays have MNIST's shapes, bytes and labels (else: rebuilt)."""
    for key, shape in _SHAPES.items():
        array = arrays[key]
        if array.shape != shape or array.dtype != np.uint8:
            return False
    return all(int(arrays[k].max()) <= 9 for k in ("train_labels", "test_labels"))


def _cached_arrays() -> dict[str, np.ndarray]:
    folder = cache_dir() / "mnist" / _bundle_fingerprint()
    paths = {key: folder / f"{key}.npy" for key in FILES}
    if all(p.exists() for p in paths.values()):
        try:
            cached = {}
            for key, path in paths.items():
                # A FIFO or a link to a device in the cache must not hang or flood the load.
                check_regular_file(path, CACHE_MAX_BYTES)
                cached[key] = np.load(path, mmap_mode="r", allow_pickle=False)
            if _plausible(cached):
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    missing = [name for name in FILES.values() if not (BUNDLED_DIR / name).exists()]
    if missing:
        raise DataError(f"the bundled MNIST is missing from the install ({', '.join(missing)})")
    arrays = {key: read_idx(BUNDLED_DIR / name) for key, name in FILES.items()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for key, arr in arrays.items():
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.tmp")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            os.replace(tmp, paths[key])
    except OSError:
        pass  # a read-only cache only costs speed
    return arrays


def load_mnist() -> ImageData:
    arrays = _cached_arrays()
    train_x, test_x = arrays["train_images"], arrays["test_images"]
    train_y, test_y = arrays["train_labels"], arrays["test_labels"]
    if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
        raise DataError("the bundled MNIST images and labels disagree in count")
    return ImageData(
        name="mnist",
        train_images=torch.from_numpy(np.array(train_x)).unsqueeze(1),
        train_labels=torch.from_numpy(np.array(train_y, dtype=np.int64)),
        test_images=torch.from_numpy(np.array(test_x)).unsqueeze(1),
        test_labels=torch.from_numpy(np.array(test_y, dtype=np.int64)),
        class_names=CLASS_NAMES,
    )
