"""explorer.atomic: every file the app writes appears complete or not at all, an earlier
file survives any failure (full disk, failed rename, exception, Ctrl+C), no temporary
file is left behind, and places that cannot be written are refused up front in one line."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import atomic
from explorer.analysis.dataset_export import write_image_folder
from explorer.analysis.export import save_codes, save_npy
from explorer.analysis.grids import image_grid, save_png
from explorer.atomic import (
    WriteError,
    atomic_folder,
    atomic_write,
    check_writable,
    check_writable_folder,
    write_beside,
    write_bytes,
)
from explorer.errors import UserError


def _enospc(*_a, **_kw):
    raise OSError(errno.ENOSPC, "No space left on device")


def _eacces(*_a, **_kw):
    raise OSError(errno.EACCES, "Permission denied")


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message
    return message


# -- atomic_write -------------------------------------------------------------------------------


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write_bytes(path, b"one")
    write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_the_new_file_has_ordinary_permissions(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write_bytes(path, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("target,boom", [("fsync", _enospc), ("replace", _eacces)], ids=["disk-full", "rename"])
def test_a_failed_write_keeps_the_earlier_file_and_removes_the_temp(tmp_path: Path, monkeypatch, target, boom) -> None:
    path = tmp_path / "a.bin"
    write_bytes(path, b"earlier")
    monkeypatch.setattr(os, target, boom)
    with pytest.raises(WriteError) as info:
        write_bytes(path, b"later")
    monkeypatch.undo()
    message = one_line(info.value)
    assert "a.bin" in message and "untouched" in message
    assert path.read_bytes() == b"earlier"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_a_full_disk_in_the_middle_of_writing_keeps_the_earlier_file(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write_bytes(path, b"earlier")

    def write(fh) -> None:
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match="No space left on device"):
        atomic_write(path, write)
    assert path.read_bytes() == b"earlier"
    assert os.listdir(tmp_path) == ["a.bin"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError, MemoryError])
def test_any_exception_while_writing_keeps_the_earlier_file(tmp_path: Path, exc) -> None:
    path = tmp_path / "a.bin"
    write_bytes(path, b"earlier")

    def write(fh) -> None:
        fh.write(b"half")
        raise exc()

    with pytest.raises(exc):
        atomic_write(path, write)
    assert path.read_bytes() == b"earlier"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_a_failure_with_no_earlier_file_says_nothing_was_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(WriteError, match="nothing was written"):
        write_bytes(tmp_path / "new.bin", b"x")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_writing_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_no_clobber_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        write_bytes(path, b"new", overwrite=False)
    assert path.read_bytes() == b"keep"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_write_beside_never_replaces_anything(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    assert write_beside(path, lambda fh: fh.write(b"0"), "interrupted") == path  # nothing there: the path itself
    first = write_beside(path, lambda fh: fh.write(b"1"), "interrupted")
    second = write_beside(path, lambda fh: fh.write(b"2"), "interrupted")
    assert first.name == "m.interrupted.safetensors" and second.name == "m.interrupted-2.safetensors"
    assert [p.read_bytes() for p in (path, first, second)] == [b"0", b"1", b"2"]


def test_a_stale_temp_file_from_a_killed_writer_does_not_block_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    stale = tmp_path / f"{atomic.temp_prefix(path)}abcdefgh{atomic.TEMP_SUFFIX}"
    stale.write_bytes(b"half")
    write_bytes(path, b"whole")
    assert path.read_bytes() == b"whole"


# -- the writers that use it ----------------------------------------------------------------------


def _png_grid() -> torch.Tensor:
    return image_grid(torch.rand(4, 1, 8, 8))


WRITERS = {
    "npy": ("x.npy", lambda p: save_npy(p, np.ones((3, 2)))),
    "codes-npy": ("z.npy", lambda p: save_codes(p, np.ones((3, 2)), [0, 1, 2])),
    "codes-csv": ("z.csv", lambda p: save_codes(p, np.ones((3, 2)), [0, 1, 2])),
    "png": ("g.png", lambda p: save_png(_png_grid(), p)),
}


@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize("target,boom", [("fsync", _enospc), ("replace", _eacces)], ids=["disk-full", "rename"])
def test_outputs_survive_a_failed_write(tmp_path: Path, monkeypatch, kind: str, target: str, boom) -> None:
    name, write = WRITERS[kind]
    path = tmp_path / name
    write(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, target, boom)
    with pytest.raises(UserError) as info:
        write(path)
    monkeypatch.undo()
    assert name in one_line(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("kind", list(WRITERS))
def test_outputs_are_complete_and_readable(tmp_path: Path, kind: str) -> None:
    name, write = WRITERS[kind]
    path = tmp_path / name
    write(path)
    if name.endswith(".npy"):
        assert np.load(path).shape == (3, 2)
    elif name.endswith(".csv"):
        assert path.read_text().splitlines()[0] == "label,z0,z1"
    else:
        assert Image.open(path).size[0] > 8


def test_an_image_folder_appears_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    images = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1])
    folder = tmp_path / "gen"
    monkeypatch.setattr(np, "save", _enospc)  # images.npy, written last, hits a full disk
    with pytest.raises(UserError) as info:
        write_image_folder(folder, images, labels, ("a", "b"))
    monkeypatch.undo()
    assert "gen" in one_line(info.value)
    assert os.listdir(tmp_path) == []  # no half folder, no temp folder

    written = write_image_folder(folder, images, labels, ("a", "b"))
    assert sorted(p.relative_to(folder).as_posix() for p in written) == [
        "a/0001.png", "a/0002.png", "a/0003.png", "b/0001.png", "b/0002.png", "b/0003.png"]
    assert np.load(folder / "images.npy").shape == (6, 1, 8, 8)
    assert np.load(folder / "labels.npy").tolist() == labels.tolist()
    assert os.listdir(tmp_path) == ["gen"]


def test_an_image_folder_fills_an_empty_folder_and_refuses_a_full_one(tmp_path: Path) -> None:
    images = np.zeros((2, 1, 8, 8), dtype=np.float32)
    folder = tmp_path / "gen"
    folder.mkdir()
    write_image_folder(folder, images)
    assert sorted(os.listdir(folder)) == ["0001.png", "0002.png", "images.npy"]
    with pytest.raises(UserError, match="not empty"):
        write_image_folder(folder, images)


def test_atomic_folder_removes_its_temp_folder_on_an_exception(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "out") as tmp:
        (tmp / "part.png").write_bytes(b"x")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


# -- proving a place writable before any work -----------------------------------------------------


def test_check_writable_accepts_a_new_or_existing_file_and_leaves_no_trace(tmp_path: Path) -> None:
    existing = tmp_path / "old.npy"
    existing.write_bytes(b"x")
    assert check_writable(tmp_path / "new.npy") == tmp_path / "new.npy"
    assert check_writable(existing) == existing
    assert sorted(os.listdir(tmp_path)) == ["old.npy"]


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.npy"
    os.mkfifo(path)
    return path


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "s.npy"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return path


@pytest.mark.parametrize("case,words", [
    ("folder", ("is a folder",)),
    ("under-a-file", ("is a file, not a folder",)),
    ("deep-under-a-file", ("is a file, not a folder",)),
    ("missing-folder", ("does not exist",)),
    ("fifo", ("not a regular file",)),
    ("socket", ("not a regular file",)),
    ("device", ("not a regular file",)),
    ("unwritable", ("no file can be created",)),
])
def test_check_writable_refuses_each_kind_of_unwritable_place_in_one_line(tmp_path: Path, case, words) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = {
        "folder": lambda: tmp_path,
        "under-a-file": lambda: plain / "x.npy",
        "deep-under-a-file": lambda: plain / "a" / "b" / "x.npy",
        "missing-folder": lambda: tmp_path / "nope" / "x.npy",
        "fifo": lambda: _fifo(tmp_path),
        "socket": lambda: _socket(tmp_path),
        "device": lambda: Path("/dev/null"),
        "unwritable": lambda: Path("/proc/latent-explorer-test.npy"),
    }[case]()
    if case == "unwritable" and not Path("/proc/self").exists():
        pytest.skip("needs /proc")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(WriteError) as info:
        check_writable(path)
    message = one_line(info.value)
    assert all(w in message for w in words), message
    assert sorted(os.listdir(tmp_path)) == before


def test_check_writable_reports_a_permission_problem(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "mkstemp", _eacces)  # root ignores chmod, so the refusal is simulated
    with pytest.raises(WriteError, match="Permission denied"):
        check_writable(tmp_path / "x.npy")


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(WriteError, match="not a regular file"):
        check_writable(link)


@pytest.mark.parametrize("case,words", [
    ("a-file", ("is a file, not a folder",)),
    ("under-a-file", ("is a file, not a folder",)),
    ("not-empty", ("not empty",)),
    ("unwritable", ("nothing can be created",)),
])
def test_check_writable_folder_refuses_in_one_line(tmp_path: Path, case, words) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "f").write_text("x")
    folder = {"a-file": plain, "under-a-file": plain / "gen", "not-empty": full,
              "unwritable": Path("/proc/latent-explorer-gen")}[case]
    if case == "unwritable" and not Path("/proc/self").exists():
        pytest.skip("needs /proc")
    with pytest.raises(WriteError) as info:
        check_writable_folder(folder)
    message = one_line(info.value)
    assert all(w in message for w in words), message


def test_check_writable_folder_accepts_missing_parents_without_creating_them(tmp_path: Path) -> None:
    assert check_writable_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert os.listdir(tmp_path) == []


def test_a_failure_inside_an_image_folder_names_the_folder_not_the_temporary_one(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(UserError) as info:
        write_image_folder(tmp_path / "gen", np.zeros((2, 1, 8, 8), dtype=np.float32))
    message = one_line(info.value)
    assert str(tmp_path / "gen") in message and atomic.TEMP_SUFFIX not in message, message


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write any file")
def test_a_read_only_file_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keep.npy"
    path.write_bytes(b"x")
    path.chmod(0o444)
    with pytest.raises(WriteError, match="read-only"):
        check_writable(path)


def test_a_read_only_file_is_refused_as_seen_by_os_access(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "keep.npy"
    path.write_bytes(b"x")
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # what a non-root user sees for chmod 444
    with pytest.raises(WriteError, match="read-only"):
        check_writable(path)


def test_classes_with_the_same_name_get_their_own_folders(tmp_path: Path) -> None:
    images = np.zeros((4, 1, 8, 8), dtype=np.float32)
    labels = np.array([0, 1, 2, 3])
    written = write_image_folder(tmp_path / "gen", images, labels, ("cat", "cat", "Cat", "a/b"))
    assert {p.parent.name for p in written} == {"cat", "cat-1", "Cat-2", "a_b"}


def test_a_name_near_the_length_limit_can_still_be_written(tmp_path: Path) -> None:
    path = tmp_path / ("n" * 240 + ".npy")
    check_writable(path)
    save_npy(path, np.ones(3))
    assert np.load(path).tolist() == [1, 1, 1]


def test_a_name_beside_a_long_name_still_fits(tmp_path: Path) -> None:
    path = tmp_path / ("m" * 240 + ".safetensors")
    path.write_bytes(b"keep")
    where = write_beside(path, lambda fh: fh.write(b"new"), "interrupted")
    assert where != path and where.name.endswith(".interrupted.safetensors") and where.read_bytes() == b"new"
    assert path.read_bytes() == b"keep"
