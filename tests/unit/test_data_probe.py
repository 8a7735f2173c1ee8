"""What the window's form reads of a dataset before loading it (explorer.data.probe): the
image size "Automatic" means, and the number of training images the planned run length is
computed from. Each is checked against what the loader then really gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.config import DataConfig
from explorer.data import load_dataset
from explorer.data.probe import BUILTIN_SHAPES, MAX_AUTO_SIZE, auto_size, folder_image_size, probe_dataset


def _image(path: Path, width: int, height: int, colour: bool, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if colour else (height, width)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), "RGB" if colour else "L").save(path)


def _class_folder(root: Path, counts: dict[str, int], width: int = 20, height: int = 20,
                  colour: bool = False) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _image(root / name / f"{i:03d}.png", width, height, colour, seed=i)
    return root


def test_the_builtin_table_is_the_bundled_mnist(bundled_mnist) -> None:
    channels, side, counts = BUILTIN_SHAPES["mnist"]
    assert bundled_mnist.image_shape == (channels, side, side)
    labels = bundled_mnist.train_labels
    assert counts == tuple(int((labels == k).sum()) for k in range(10))
    assert probe_dataset(DataConfig()).train_size(limit=None, classes=(1, 7)) == counts[1] + counts[7]
    assert probe_dataset(DataConfig()).train_size(limit=300) == 300


@pytest.mark.parametrize("classes", [None, (0,), (1, 2)])
@pytest.mark.parametrize("limit", [None, 7, 10_000])
def test_a_folder_counts_what_the_loader_trains_on(tmp_path_factory, classes, limit) -> None:
    root = tmp_path_factory.getbasetemp() / "counted"
    if not root.exists():
        _class_folder(root, {"a": 19, "b": 12, "c": 25})
    probe = probe_dataset(DataConfig(dataset=str(root)))
    data = load_dataset(DataConfig(dataset=str(root), classes=classes, limit=limit))
    assert probe.train_size(limit, classes) == data.train_images.shape[0]
    assert probe.counted_files and probe.channels == 1 and probe.size == 20


def test_a_flat_folder_and_an_own_split_count_as_loaded(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(31):
        _image(flat / f"{i}.png", 12, 12, False, i)
    probe = probe_dataset(DataConfig(dataset=str(flat)))
    assert probe.train_size() == load_dataset(DataConfig(dataset=str(flat))).train_images.shape[0] == 28
    assert probe.train_size(classes=(0,)) is None  # no classes to filter by: the run says so

    split = tmp_path / "split"
    _class_folder(split / "train", {"x": 9, "y": 4})
    _class_folder(split / "test", {"x": 2, "y": 2})
    probe = probe_dataset(DataConfig(dataset=str(split)))
    data = load_dataset(DataConfig(dataset=str(split)))
    assert probe.train_size() == data.train_images.shape[0] == 13
    assert probe.train_size(classes=(1,)) == 4


def test_automatic_size_is_the_first_images_shorter_side_within_bounds(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "wide", {"a": 2}, width=80, height=64, colour=True)
    assert folder_image_size(root) == 64
    probe = probe_dataset(DataConfig(dataset=str(root)))
    assert (probe.size, probe.height_width, probe.channels) == (64, (64, 80), 3)
    assert auto_size(3000, 2000) == MAX_AUTO_SIZE == 512
    assert auto_size(2, 3) == 4
    big = tmp_path / "big"
    big.mkdir()
    _image(big / "one.png", 700, 600, False)
    _image(big / "two.png", 700, 600, False)
    assert folder_image_size(big) == 512


def test_the_first_image_is_the_loaders_first_and_junk_is_passed_over(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    (root / "a").mkdir(parents=True)
    (root / "a" / "0-notes.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"junk")
    _image(root / "a" / "1.png", 48, 48, False)
    _image(root / "a" / "2.png", 16, 16, True)  # colour further on: automatic channels are 3
    (root / "b").mkdir()
    _image(root / "b" / "0.png", 24, 24, False)
    assert folder_image_size(root) == 48
    probe = probe_dataset(DataConfig(dataset=str(root)))
    assert (probe.size, probe.channels) == (48, 3)
    assert load_dataset(DataConfig(dataset=str(root), image_size=probe.size)).image_shape == (3, 48, 48)


def test_an_array_file_is_counted_exactly_and_kept_as_stored(tmp_path: Path) -> None:
    path = tmp_path / "shapes.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 255, (50, 3, 10, 14), dtype=np.uint8), labels=np.arange(50) % 2)
    probe = probe_dataset(DataConfig(dataset=str(path)))
    data = load_dataset(DataConfig(dataset=str(path)))
    assert probe.train_size() == data.train_images.shape[0] == 45
    assert probe.train_size(classes=(1,)) == int((data.train_labels == 1).sum())
    assert (probe.size, probe.height_width, probe.channels) == (None, (10, 14), 3)  # not square: as stored


def test_what_cannot_be_read_is_unknown_not_an_error(tmp_path: Path) -> None:
    missing = probe_dataset(DataConfig(dataset=str(tmp_path / "nowhere")))
    assert missing.train_size() is None and missing.size is None and missing.note
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK junk")
    assert probe_dataset(DataConfig(dataset=str(broken))).train_size() is None
