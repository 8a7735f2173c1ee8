"""The autosave store keeps the last few runs, newest first, and sets broken ones aside."""

from __future__ import annotations

import os
import time
from pathlib import Path

from explorer.runtime.recovery import AutosaveStore


def touch(path: Path, age_s: float) -> Path:
    path.write_bytes(b"x")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_new_paths_never_collide_and_runs_are_newest_first(tmp_path: Path):
    store = AutosaveStore(tmp_path, keep=3)
    a = touch(store.new_path(), 30)
    b = touch(store.new_path(), 20)
    c = touch(store.new_path(), 10)
    assert len({a, b, c}) == 3
    assert store.runs() == [c, b, a]
    assert store.latest() == c


def test_prune_keeps_the_newest_and_the_current_run(tmp_path: Path):
    store = AutosaveStore(tmp_path, keep=2)
    old = [touch(tmp_path / f"run-2026010{i}-000000-1.safetensors", 100 - i) for i in range(5)]
    store.prune(keep_also=old[0])
    left = set(store.runs())
    assert left == {old[0], old[3], old[4]}


def test_other_files_links_and_folders_are_not_runs(tmp_path: Path):
    store = AutosaveStore(tmp_path)
    run = touch(tmp_path / "run-20260101-000000-1.safetensors", 5)
    legacy = touch(tmp_path / "last-run.safetensors", 50)
    (tmp_path / "running.json").write_text("{}")
    (tmp_path / "run-dir.safetensors").mkdir()
    (tmp_path / "run-link.safetensors").symlink_to("/dev/zero")
    assert store.runs() == [run, legacy]


def test_a_broken_autosave_is_set_aside_and_not_offered_again(tmp_path: Path):
    store = AutosaveStore(tmp_path)
    run = touch(tmp_path / "run-20260101-000000-1.safetensors", 5)
    aside = store.set_aside(run)
    assert aside is not None and aside.exists() and not run.exists()
    assert store.latest() is None


def test_a_missing_folder_has_no_runs(tmp_path: Path):
    assert AutosaveStore(tmp_path / "nowhere").runs() == []
