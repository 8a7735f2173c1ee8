"""Large folders decoded once into a memory-mapped cache (issue #16): the same data as the
in-memory path, reused while the folder is unchanged, rebuilt when it changes or is half-built."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.config import DataConfig
from explorer.data import folder as folder_mod
from explorer.data import folder_cache, load_dataset
from explorer.data.folder import FolderReport


def _png(path: Path, value: int, colour: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((6, 6, 3) if colour else (6, 6), value, dtype=np.uint8)
    arr[0, 0] = value // 2
    Image.fromarray(arr).save(path)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    for c in range(3):
        for i in range(40):
            _png(root / f"class{c}" / f"{i:03d}.png", (c * 40 + i) % 256, colour=(c == 2 and i == 5))
    (root / "class1" / "junk.png").write_bytes(b"not an image")
    return root


def _load(root: Path, mode: str, report: FolderReport | None = None, **kw):
    os.environ[folder_cache.ENV] = mode
    try:
        return load_dataset(DataConfig(dataset=str(root), image_size=6, **kw), report)
    finally:
        del os.environ[folder_cache.ENV]


def _same(a, b) -> None:
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_images, b.test_images)
    assert torch.equal(a.train_labels, b.train_labels) and torch.equal(a.test_labels, b.test_labels)
    assert a.class_names == b.class_names and a.name == b.name


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = folder_mod._read

    def counting(path, channels, size):
        calls.append(path)
        return real(path, channels, size)

    monkeypatch.setattr(folder_mod, "_read", counting)
    return calls


@pytest.mark.parametrize("kw", [{}, {"limit": 10}, {"classes": (0, 2), "limit": 7}, {"channels": 1}])
def test_cache_gives_what_memory_gives(tree: Path, kw: dict) -> None:
    mem_report, map_report = FolderReport(), FolderReport()
    mem = _load(tree, "never", mem_report, **kw)
    mapped = _load(tree, "always", map_report, **kw)
    _same(mem, mapped)
    assert folder_cache.is_memmapped(mapped.train_images) and folder_cache.is_memmapped(mapped.test_images)
    assert not folder_cache.is_memmapped(mem.train_images)
    assert map_report == mem_report
    assert "limit" in kw or any("junk.png" in name for name, _ in map_report.skipped)
    again = FolderReport()
    _same(mem, _load(tree, "always", again, **kw))  # from the cache: the same report
    assert again == mem_report


def test_own_split_folder_through_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    for split, n in (("train", 12), ("test", 4)):
        for c in "ab":
            for i in range(n):
                _png(tmp_path / "s" / split / c / f"{i}.png", i * 10 + (c == "b"))
    _same(_load(tmp_path / "s", "never"), _load(tmp_path / "s", "always"))


def test_second_load_decodes_nothing_and_changes_rebuild(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_reads(monkeypatch)
    first = _load(tree, "always")
    assert len(calls) == 121
    calls.clear()
    _same(first, _load(tree, "always"))
    assert calls == []
    caches = list(folder_cache.folders_dir().iterdir())
    assert len(caches) == 1
    f = tree / "class0" / "000.png"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))  # touched
    _load(tree, "always")
    assert len(calls) == 121
    assert len(list(folder_cache.folders_dir().iterdir())) == 1  # the old cache is gone
    calls.clear()
    _png(tree / "class0" / "new.png", 200)  # added
    grown = _load(tree, "always")
    assert grown.train_images.shape[0] + grown.test_images.shape[0] == 121 and len(calls) == 122
    calls.clear()
    (tree / "class0" / "new.png").unlink()  # removed
    _same(first, _load(tree, "always"))
    assert len(calls) == 121


@pytest.mark.parametrize("damage", ["meta", "truncate"])
def test_half_written_cache_is_rebuilt(tree: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    first = _load(tree, "never")  # in memory: a live map of the damaged file would fault when read
    _load(tree, "always")
    where = next(folder_cache.folders_dir().iterdir())
    if damage == "meta":
        (where / "meta.json").unlink()
    else:
        with open(where / "images.u8", "r+b") as fh:
            fh.truncate(100)
    calls = _count_reads(monkeypatch)
    report = FolderReport()
    _same(first, _load(tree, "always", report))
    assert len(calls) == 121
    (line,) = [note for note in report.notes if "failed a check" in note]  # one line says why
    assert ("meta.json is missing" if damage == "meta" else "images.u8 holds 100 bytes") in line


def test_limit_applies_before_decoding(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_reads(monkeypatch)
    data = _load(tree, "always", limit=5)
    assert data.train_images.shape[0] == 5 and data.test_images.shape[0] == 5
    assert len(calls) <= 10 + 3  # each split's 5, plus each class folder's first file


def test_auto_keeps_small_folders_in_memory(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _load(tree, "auto")
    assert not folder_cache.is_memmapped(data.train_images)
    monkeypatch.setattr(folder_cache, "MEMMAP_MIN_IMAGES", 50)
    assert folder_cache.is_memmapped(_load(tree, "auto").train_images)


def test_progress_is_reported(tree: Path) -> None:
    seen: list[tuple[int, int]] = []
    data, mapped = folder_cache.load_folder_cached(tree, 6, progress=lambda d, t: seen.append((d, t)), mode="always")
    assert mapped and seen[-1] == (121, 121)


def test_one_epoch_trains_on_the_map(tree: Path) -> None:
    from explorer.config import TrainConfig
    from explorer.training.engine import drive, train
    from explorer.training.runs import model_config_for, prepare_run

    os.environ[folder_cache.ENV] = "always"
    try:
        run = prepare_run(model_config_for("vae"), DataConfig(dataset=str(tree), image_size=6),
                          TrainConfig(epochs=1, batch_size=16, device="cpu"))
    finally:
        del os.environ[folder_cache.ENV]
    assert folder_cache.is_memmapped(run.data.train_images)
    events: list = []
    drive(train(run.model, run.data, run.train_config), events.append)
    ends = [ev for ev in events if type(ev).__name__ == "EpochEnd"]
    assert ends and folder_cache.is_memmapped(run.data.train_images)


def test_a_full_disk_falls_back_to_memory(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self, data: bytes) -> None:
        raise folder_cache._CacheWriteFailed(OSError(28, "No space left on device"))

    monkeypatch.setattr(folder_cache._StreamDecoder, "_write", full)
    report = FolderReport()
    data, mapped = folder_cache.load_folder_cached(tree, 6, report=report, mode="always")
    assert not mapped and report.loaded == 120 and len(report.skipped) == 1
    assert not list(folder_cache.folders_dir().iterdir())  # nothing half-built left behind
