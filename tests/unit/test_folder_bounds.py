"""Image folders that fight back (issue 13, items 4 and 6): trees whose entries refuse a
``stat`` (``/proc``), special files under image names, ``--limit`` applied before decoding,
huge JPEG photos decoded small, and class folders whose names differ only by case or
Unicode form. Every fixture is made in tmp_path; nothing here can block on a FIFO."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from PIL import Image

from explorer.config import DataConfig
from explorer.data import FolderReport, load_dataset
from explorer.data import folder as folder_module
from explorer.data.folder import load_folder
from explorer.errors import DataError

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def grey(path: Path, value: int = 100, size: tuple[int, int] = (6, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def skipped(report: FolderReport) -> dict[str, str]:
    return {Path(name).name: why for name, why in report.skipped}


# -- trees that refuse a stat ------------------------------------------------------------------


@pytest.fixture
def proc_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A class folder tree in which some entries answer PermissionError to stat, as
    /proc/1/cwd does even for root: at the top, in a class folder and deep inside one."""
    root = tmp_path / "tree"
    for i in range(3):
        grey(root / "a" / f"{i}.png", 20 * i)
        grey(root / "b" / "deep" / "deeper" / f"{i}.png", 200 - 20 * i)
    for locked in (root / "cwd", root / "a" / "exe", root / "b" / "deep" / "deeper" / "root"):
        locked.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    denied = {str(root / "cwd"), str(root / "a" / "exe"), str(root / "b" / "deep" / "deeper" / "root")}
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path) in denied and kwargs.get("follow_symlinks", True):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    return root


def test_entries_that_refuse_a_stat_are_reported_not_raised(proc_like: Path) -> None:
    report = FolderReport()
    data = load_folder(proc_like, image_size=4, report=report)
    assert data.class_names == ("a", "b") and report.loaded == 6
    reasons = skipped(report)
    assert reasons["cwd"] == reasons["exe"] == reasons["root"] == "cannot read it (Permission denied)", reasons


def test_the_cli_reports_them_and_trains(proc_like: Path, tmp_path: Path) -> None:
    rc, _, err = run("train", "--model", "ae", "--dataset", proc_like, "--epochs", 1, "--image-size", 4,
                     "--device", "cpu", "--out", tmp_path / "m.safetensors")
    assert rc == 0 and "Traceback" not in err, err
    assert "cwd: cannot read it (Permission denied)" in err


@pytest.mark.skipif(not Path("/proc/1").is_dir(), reason="no /proc here")
def test_proc_itself_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_folder("/proc/1", image_size=4)
    message = str(info.value)
    assert message.splitlines() == [message] and message.startswith("no readable images in /proc/1")
    rc, out, err = run("train", "--model", "ae", "--dataset", "/proc/1", "--epochs", 1, "--device", "cpu",
                       "--out", tmp_path / "m.safetensors")
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_special_files_under_image_names_are_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grey(tmp_path / "a.png")
    grey(tmp_path / "b.png")
    expected = {}
    if Path("/dev/zero").exists():
        (tmp_path / "zero.png").symlink_to("/dev/zero")
        expected["zero.png"] = "not a regular file"
    if Path("/proc/self/status").exists():  # a regular file of size 0 whose reads give data
        (tmp_path / "status.png").symlink_to("/proc/self/status")
        expected["status.png"] = "an empty file"
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        expected["pipe.png"] = "not a regular file"
    (tmp_path / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = "an empty file"
    report = FolderReport()
    load_folder(tmp_path, image_size=4, report=report)
    assert report.loaded == 2 and skipped(report) == expected


def test_a_special_file_swapped_in_after_listing_is_refused_by_fstat(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    for name in ("a.png", "b.png", "c.png"):
        grey(tmp_path / name)
    real_read = folder_module._read

    def swap(path: Path, channels, size):
        if path.name == "c.png":  # a race: a regular file when listed, a FIFO when opened
            path.unlink()
            os.mkfifo(path)
        return real_read(path, channels, size)

    monkeypatch.setattr(folder_module, "_read", swap)
    report = FolderReport()
    load_folder(tmp_path, image_size=4, report=report)
    assert report.loaded == 2 and skipped(report) == {"c.png": "not a regular file"}


# -- --limit before decoding -------------------------------------------------------------------


@pytest.fixture
def many(tmp_path: Path) -> Path:
    root = tmp_path / "many"
    for i in range(60):
        grey(root / ("odd" if i % 2 else "even") / f"{i:03d}.png", (i * 37) % 256)
    return root


def counting(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real_read = folder_module._read

    def read(path: Path, channels, size):
        calls.append(path)
        return real_read(path, channels, size)

    monkeypatch.setattr(folder_module, "_read", read)
    return calls


def same_data(a, b) -> bool:
    return (torch.equal(a.train_images, b.train_images) and torch.equal(a.test_images, b.test_images)
            and torch.equal(a.train_labels, b.train_labels) and torch.equal(a.test_labels, b.test_labels)
            and a.class_names == b.class_names)


def test_limit_decodes_only_what_is_used(many: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = load_folder(many, image_size=4)
    calls = counting(monkeypatch)
    limited = load_folder(many, image_size=4, limit=5)
    assert len(calls) <= 2 * 5 + 2, len(calls)  # five per split, plus each class's first file
    assert limited.train_images.shape[0] == 5 and limited.test_images.shape[0] == 5
    assert same_data(limited, whole.limited(5))  # the very images decoding everything gave


def test_limit_and_classes_through_load_dataset_match_filtering_afterwards(many: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    whole = load_folder(many, image_size=4)
    calls = counting(monkeypatch)
    config = DataConfig(dataset=str(many), image_size=4, limit=4, classes=(1,))
    data = load_dataset(config)
    assert len(calls) <= 2 * 4 + 2
    assert same_data(data, whole.only_classes((1,)).limited(4))
    assert set(data.train_labels.tolist()) == {1}
    with pytest.raises(DataError, match="there is no class 7"):
        load_dataset(DataConfig(dataset=str(many), limit=4, classes=(7,)))


def test_an_unreadable_file_drawn_under_a_limit_is_replaced(many: Path) -> None:
    for i in range(0, 60, 3):
        (many / ("odd" if i % 2 else "even") / f"{i:03d}.png").write_text("not an image")
    report = FolderReport()
    data = load_folder(many, image_size=4, limit=10, report=report)
    assert data.train_images.shape[0] == 10  # 54 candidates, 36 of them readable: always 10
    n_test = data.test_images.shape[0]  # the 6 test candidates, less the unreadable ones among them
    assert 1 <= n_test <= 6 and report.loaded == 10 + n_test
    assert report.skipped and all("not an image" in why for _, why in report.skipped)


def test_a_limit_on_a_flat_folder_and_one_readable_image(tmp_path: Path) -> None:
    for i in range(30):
        grey(tmp_path / "flat" / f"{i}.png", i)
    data = load_folder(tmp_path / "flat", image_size=4, limit=3)
    assert data.train_labels is None and data.train_images.shape[0] == 3 and data.test_images.shape[0] == 3
    grey(tmp_path / "one" / "a.png")
    (tmp_path / "one" / "b.png").write_text("junk")
    with pytest.raises(DataError, match="only one readable image"):
        load_folder(tmp_path / "one", limit=3)


# -- huge photos -------------------------------------------------------------------------------


def sizes_converted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    real = folder_module._convert

    def convert(img, channels, size):
        seen.append(img.size)
        return real(img, channels, size)

    monkeypatch.setattr(folder_module, "_convert", convert)
    return seen


@pytest.mark.parametrize("megapixels, dims", [(54, (9000, 6000)), (108, (12000, 9000))])
def test_huge_jpeg_photos_are_decoded_small_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        megapixels: int, dims: tuple[int, int]) -> None:
    photo = Image.new("L", dims, 30)
    photo.paste(220, (0, 0, dims[0] // 2, dims[1]))  # left half light
    photo.save(tmp_path / "photo.jpg", quality=70)
    del photo
    grey(tmp_path / "small.png")
    seen = sizes_converted(monkeypatch)
    report = FolderReport()
    data = load_folder(tmp_path, image_size=32, report=report)
    assert report.skipped == [] and report.loaded == 2
    assert max(w * h for w, h in seen) <= dims[0] * dims[1] / 60  # drafted at 1/8 scale: 1/64 of the pixels
    images = torch.cat([data.train_images, data.test_images])
    big = images[images.float().mean(dim=(1, 2, 3)).argmax()].float()
    assert big[0, :, :12].mean() > 180 and big[0, :, 20:].mean() < 70  # light left, dark right
    assert megapixels * 1_000_000 == dims[0] * dims[1]


def test_a_big_png_is_reduced_before_it_is_resized(tmp_path: Path) -> None:
    img = Image.new("RGB", (2400, 1600), (0, 0, 200))
    img.paste((200, 0, 0), (0, 0, 1200, 1600))
    img.save(tmp_path / "big.png")
    grey(tmp_path / "small.png", 0)
    data = load_folder(tmp_path, image_size=16)
    images = torch.cat([data.train_images, data.test_images]).float()
    big = images[images[:, 2].mean(dim=(1, 2)).argmax()]
    assert big[0, :, :6].mean() > 180 and big[2, :, 10:].mean() > 180


# -- names -------------------------------------------------------------------------------------


def test_class_names_that_differ_only_by_case_or_unicode_form_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    for name in ("Cats", "cats", nfc, nfd, "dogs"):
        grey(root / name / "a.png")
    if len(os.listdir(root)) < 5:
        pytest.skip("this file system folds case or Unicode forms itself")
    report = FolderReport()
    data = load_folder(root, image_size=4, report=report)
    assert len(data.class_names) == 5  # nothing merged
    assert len(report.notes) == 2, report.notes
    assert all(note.splitlines() == [note] and "differ only by case or Unicode form" in note for note in report.notes)
    assert any("'Cats' and 'cats'" in note for note in report.notes)


def test_distinct_names_give_no_note(tmp_path: Path) -> None:
    for name in ("cats", "dogs"):
        grey(tmp_path / name / "a.png")
        grey(tmp_path / name / "b.png")
    report = FolderReport()
    load_folder(tmp_path, image_size=4, report=report)
    assert report.notes == []


def test_control_characters_in_a_clashing_name_are_escaped() -> None:
    notes = folder_module._name_clashes(["a\x1b[31m", "A\x1b[31m"])
    assert len(notes) == 1 and "\x1b" not in notes[0] and "\\x1b" in notes[0]


def test_arrays_are_uint8_nchw(many: Path) -> None:
    data = load_folder(many, image_size=4, limit=2)
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape[1:] == (1, 4, 4)
    assert isinstance(np.asarray(data.train_images), np.ndarray)
