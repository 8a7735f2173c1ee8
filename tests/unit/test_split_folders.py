"""Folders that ship their own split (issue #14): train/ and test/ (or val/) are kept as the
dataset's split instead of a seeded hold-out, with train's classes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.config import DataConfig
from explorer.data import load_dataset
from explorer.data.folder import FolderReport, load_folder
from explorer.errors import DataError


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6), value, dtype=np.uint8), mode="L").save(path)


def _make(root: Path, layout: dict[str, dict[str, list[int]] | list[int]]) -> Path:
    """``{"train": {"a": [10, 20]}, "test": [30]}``: class folders or flat files, each image
    filled with its value so a test can tell which files landed where."""
    for split, content in layout.items():
        if isinstance(content, dict):
            for cls, values in content.items():
                for i, v in enumerate(values):
                    _png(root / split / cls / f"{i:03d}.png", v)
        else:
            for i, v in enumerate(content):
                _png(root / split / f"{i:03d}.png", v)
    return root


def _values(images: torch.Tensor) -> list[int]:
    return sorted(int(v) for v in images[:, 0, 0, 0])


def test_train_and_test_class_folders_keep_their_split(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": [1, 2, 3], "b": [4, 5, 6]}, "test": {"a": [101], "b": [102, 103]}})
    report = FolderReport()
    data = load_folder(root, image_size=6, report=report, test_fraction=0.5, split_seed=9)
    assert data.class_names == ("a", "b")
    assert _values(data.train_images) == [1, 2, 3, 4, 5, 6]
    assert _values(data.test_images) == [101, 102, 103]
    by_value = dict(zip((int(v) for v in data.test_images[:, 0, 0, 0]), data.test_labels.tolist()))
    assert by_value == {101: 0, 102: 1, 103: 1}
    assert report.loaded == 9 and not report.skipped
    assert any("own train/ and test/ split" in note for note in report.notes)


@pytest.mark.parametrize("name", ["val", "Valid", "VALIDATION"])
def test_a_validation_folder_is_the_test_split(tmp_path: Path, name: str) -> None:
    root = _make(tmp_path / "set", {"Train": {"a": [1, 2], "b": [3]}, name: {"a": [50], "b": [60]}})
    report = FolderReport()
    data = load_folder(root, image_size=6, report=report)
    assert _values(data.test_images) == [50, 60] and _values(data.train_images) == [1, 2, 3]
    assert any(f"{name}/ split" in note for note in report.notes)


def test_test_wins_over_val_when_both_exist(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": [1, 2], "test": [70], "val": [80]})
    report = FolderReport()
    data = load_folder(root, image_size=6, report=report)
    assert _values(data.test_images) == [70]
    assert [Path(p).name for p, _ in report.skipped] == ["val"]


def test_test_classes_that_are_a_subset_map_to_train_indices(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": [1], "b": [2], "c": [3]}, "test": {"c": [90, 91]}})
    data = load_folder(root, image_size=6)
    assert data.class_names == ("a", "b", "c") and data.test_labels.tolist() == [2, 2]


def test_a_test_class_train_lacks_is_a_one_line_error(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": [1], "b": [2]}, "test": {"a": [3], "zebra": [4]}})
    with pytest.raises(DataError) as err:
        load_folder(root, image_size=6)
    message = str(err.value)
    assert "zebra" in message and "\n" not in message


def test_classes_on_one_side_only_is_a_one_line_error(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": [1], "b": [2]}, "test": [3, 4]})
    with pytest.raises(DataError) as err:
        load_folder(root, image_size=6)
    assert "class folders" in str(err.value) and "\n" not in str(err.value)


def test_flat_train_and_test_give_an_unlabelled_dataset(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": [1, 2, 3, 4], "test": [5, 6]})
    data = load_folder(root, image_size=6)
    assert data.train_labels is None and data.test_labels is None and data.class_names == ()
    assert _values(data.train_images) == [1, 2, 3, 4] and _values(data.test_images) == [5, 6]


def test_the_limit_applies_to_each_split_and_matches_limiting_afterwards(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": list(range(1, 9)), "b": list(range(11, 19))},
                                    "test": {"a": [101, 102, 103], "b": [111, 112, 113]}})
    whole = load_folder(root, image_size=6)
    limited = load_folder(root, image_size=6, limit=4)
    assert len(limited.train_images) == 4 and len(limited.test_images) == 4
    assert torch.equal(limited.train_images, whole.limited(4).train_images)
    assert torch.equal(limited.test_images, whole.limited(4).test_images)
    assert torch.equal(limited.test_labels, whole.limited(4).test_labels)


def test_the_class_filter_applies_to_each_split(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": [1, 2], "b": [3, 4]}, "test": {"a": [101], "b": [102, 103]}})
    data = load_dataset(DataConfig(dataset=str(root), image_size=6, classes=(1,)))
    assert _values(data.train_images) == [3, 4] and _values(data.test_images) == [102, 103]
    assert set(data.test_labels.tolist()) == {1}
    limited = load_dataset(DataConfig(dataset=str(root), image_size=6, classes=(1,), limit=1))
    assert len(limited.test_images) == 1 and limited.test_labels.tolist() == [1]


def test_skipped_files_are_reported_and_hidden_ones_ignored(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": {"a": [1, 2]}, "test": {"a": [3]}})
    (root / "train" / "a" / "broken.png").write_bytes(b"not a png")
    (root / "test" / ".DS_Store").write_bytes(b"x")
    (root / ".hidden").mkdir()
    (root / "README.txt").write_text("about this set")
    report = FolderReport()
    data = load_folder(root, image_size=6, report=report)
    assert len(data.train_images) == 2 and len(data.test_images) == 1
    assert sorted(Path(p).name for p, _ in report.skipped) == ["README.txt", "broken.png"]


def test_other_sub_folders_beside_train_mean_classes_as_before(tmp_path: Path) -> None:
    root = _make(tmp_path / "set", {"train": [1, 2, 3], "test": [4, 5, 6], "extra": [7, 8, 9]})
    report = FolderReport()
    data = load_folder(root, image_size=6, report=report)
    assert data.class_names == ("extra", "test", "train")
    assert not any("own" in note for note in report.notes)
