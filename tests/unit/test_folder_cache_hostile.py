"""The folder cache's files are untrusted input (issue item 7): a FIFO or a device at any of
them, a deeply nested or oversized meta.json, labels out of range, changed images and wrong
field values are all found, and the cache is rebuilt from the folder with one line saying
why: never a hang, never a traceback, never training on wrong data.

No test here waits on a clock to pass: the cache opens its files without blocking, so a FIFO
is refused at once. The thread guard below only matters when that is broken (then the test
fails instead of hanging the suite).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.bounded_json import json_depth, loads_bounded
from explorer.data import folder as folder_mod
from explorer.data import folder_cache
from explorer.data.folder import FolderReport

N_FILES = 30  # 3 classes of 10, all readable

fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((6, 6), value, dtype=np.uint8)
    arr[0, 0] = value // 2
    Image.fromarray(arr).save(path)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    for c in range(3):
        for i in range(10):
            _png(root / f"class{c}" / f"{i:02d}.png", c * 80 + i * 3)
    return root


def _load(tree: Path, report: FolderReport | None = None):
    return folder_cache.load_folder_cached(tree, 6, report=report, mode="always")


def _built(tree: Path) -> Path:
    """Build the cache; its folder."""
    data, mapped = _load(tree)
    assert mapped
    (where,) = folder_cache.folders_dir().iterdir()
    return where


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = folder_mod._read

    def counting(path, channels, size):
        calls.append(path)
        return real(path, channels, size)

    monkeypatch.setattr(folder_mod, "_read", counting)
    return calls


def _in_memory(tree: Path):
    return folder_cache.load_folder_cached(tree, 6, mode="never")[0]


def _same(a, b) -> None:
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_images, b.test_images)
    assert torch.equal(a.train_labels, b.train_labels) and torch.equal(a.test_labels, b.test_labels)
    assert a.class_names == b.class_names


def _load_in_thread(tree: Path, report: FolderReport, fifos: list[Path]) -> tuple[Any, bool]:
    """Load in a thread; a load that blocks (the bug) fails the test rather than hanging it."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = _load(tree, report)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=120)  # never reached when the cache opens without blocking
    if thread.is_alive():
        for fifo in fifos:  # a writer that closes at once gives the blocked reader its end of file
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(timeout=120)
        pytest.fail("loading a cache with a FIFO in it blocked")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _assert_rebuilt(tree: Path, report: FolderReport, calls: list[Path], result: tuple[Any, bool],
                    *words: str) -> None:
    """Rebuilt from the folder (every file decoded again, the same data as in memory, mapped
    from the new cache), with one line in the report naming what was wrong."""
    data, mapped = result
    assert mapped and folder_cache.is_memmapped(data.train_images)
    assert len(calls) == N_FILES
    _same(_in_memory(tree), data)
    lines = [n for n in report.notes if n.startswith("the cache of")]
    assert len(lines) == 1, report.notes
    assert "\n" not in lines[0] and len(lines[0]) <= 400
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    again = FolderReport()
    _, mapped = _load(tree, again)  # the rebuilt cache is used as it is, without a word
    assert mapped and again.notes == []


def _meta(where: Path) -> dict[str, Any]:
    return json.loads((where / "meta.json").read_text())


def _write_meta(where: Path, meta: Any, seal: bool) -> None:
    """Write ``meta``; ``seal`` recomputes its checksum, as someone who knew the format would:
    then only the field checks stand between the cache and its use."""
    if seal:
        meta = folder_cache._sealed(meta)
    (where / "meta.json").write_text(json.dumps(meta))


# -- files that are not regular files ------------------------------------------------------------


@fifo_only
@pytest.mark.parametrize("name", ["meta.json", "labels.npy", "images.u8"])
def test_a_fifo_at_any_cache_file_is_refused_at_once_and_rebuilt(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 name: str) -> None:
    where = _built(tree)
    (where / name).unlink()
    os.mkfifo(where / name)
    calls, report = _reads(monkeypatch), FolderReport()
    result = _load_in_thread(tree, report, [where / name])
    _assert_rebuilt(tree, report, calls, result, name, "fifo")


@fifo_only
def test_a_fifo_in_place_of_the_whole_cache_folder_is_replaced(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = _built(tree)
    folder_cache._remove(where)
    os.mkfifo(where)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load_in_thread(tree, report, [where]), "meta.json")


@fifo_only
def test_a_fifo_at_the_decode_order_file_while_building_falls_back_to_memory(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """raw.u8 exists only during a build, in a folder of ours; swapped for a FIFO there, the
    build gives up (as on a full disk) and the folder loads into memory."""
    real = folder_cache._StreamDecoder.build
    fifos: list[Path] = []

    def swapped(self, *args, **kwargs):
        self.close()
        self.raw_path.unlink()
        os.mkfifo(self.raw_path)
        fifos.append(self.raw_path)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(folder_cache._StreamDecoder, "build", swapped)
    report = FolderReport()
    data, mapped = _load_in_thread(tree, report, fifos)
    assert fifos and not mapped
    _same(_in_memory(tree), data)
    assert report.loaded == N_FILES
    assert not list(folder_cache.folders_dir().iterdir())  # nothing half-built left behind


@pytest.mark.parametrize("name", ["meta.json", "labels.npy", "images.u8"])
def test_a_link_to_dev_zero_is_refused_without_reading_it(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                          name: str) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    where = _built(tree)
    (where / name).unlink()
    (where / name).symlink_to("/dev/zero")
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), name, "device")


def test_a_sparse_huge_meta_json_is_refused_before_it_is_read(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = _built(tree)
    with open(where / "meta.json", "r+b") as fh:
        fh.truncate(64 * 1024**3)  # 64 GiB that take no disk
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        assert os.fstat(fd).st_size < 1024**3, "read the huge meta.json"
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "meta.json", "GB")


# -- meta.json -------------------------------------------------------------------------------------


def test_a_deeply_nested_meta_json_is_refused_without_recursing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = _built(tree)
    (where / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "meta.json", "nested")


@pytest.mark.parametrize("seal", [False, True], ids=["as-edited", "resealed"])
def test_a_negative_test_split_is_refused(tree: Path, monkeypatch: pytest.MonkeyPatch, seal: bool) -> None:
    where = _built(tree)
    meta = _meta(where)
    meta["n_test"] = -5
    _write_meta(where, meta, seal)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "n_test", "-5")


def test_a_plausible_but_changed_field_fails_the_checksum(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split moved by one image passes every range check; only the checksum sees it."""
    where = _built(tree)
    meta = _meta(where)
    meta["n_test"] -= 1
    _write_meta(where, meta, seal=False)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "checksum")


DROP = object()  # a field left out

WRONG_FIELDS: dict[str, Any] = {
    "n as text": {"n": "30"},
    "n as a bool": {"n": True},
    "n zero": {"n": 0},
    "n above the folder's files": {"n": N_FILES + 1},
    "n_test above n": {"n_test": N_FILES + 1},
    "n_test a float": {"n_test": 3.0},
    "channels 2": {"channels": 2},
    "channels 3 for grey settings": {"channels": 3},
    "size not the settings'": {"size": 7},
    "size negative": {"size": -6},
    "labelled as text": {"labelled": "yes"},
    "unlabelled with classes": {"labelled": False},
    "class names not a list": {"class_names": "abc"},
    "class names not text": {"class_names": [1, 2, 3]},
    "no class names": {"class_names": []},
    "files missing one": {"files": ["x.png"] * (N_FILES - 1)},
    "files null": {"files": None},
    "name a number": {"name": 5},
    "report a list": {"report": []},
    "report loaded wrong": {"report": {"loaded": -1, "skipped": [], "notes": []}},
    "report skipped not pairs": {"report": {"loaded": N_FILES, "skipped": [["only one"]], "notes": []}},
    "report notes not text": {"report": {"loaded": N_FILES, "skipped": [], "notes": [5]}},
    "block rows zero": {"block_rows": 0},
    "image checksums short": {"image_digests": []},
    "image checksum not hex": {"image_digests": ["x" * 64]},
    "labels checksum missing": {"labels_digest": None},
    "format 1": {"format": 1},
    "unknown field": {"extra": 1},
    "missing field": {"n_test": DROP},
}


@pytest.mark.parametrize("change", list(WRONG_FIELDS.values()), ids=list(WRONG_FIELDS))
def test_every_wrong_field_is_refused_even_when_resealed(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                         change: dict[str, Any]) -> None:
    where = _built(tree)
    meta = {k: v for k, v in {**_meta(where), **change}.items() if v is not DROP}
    _write_meta(where, meta, seal=True)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "meta.json")


@pytest.mark.parametrize("meta", [[], "text", 3, None, {}], ids=["list", "string", "number", "null", "empty"])
def test_meta_json_that_is_not_an_object_of_fields_is_refused(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                              meta: Any) -> None:
    where = _built(tree)
    (where / "meta.json").write_text(json.dumps(meta))
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "meta.json")


@pytest.mark.parametrize("seed", range(8))
def test_random_damage_to_meta_json_is_a_rebuild_never_a_traceback(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   seed: int) -> None:
    """Characters replaced by printable ones (so most damage gets past the UTF-8 decoding to
    the parser and the field checks); seed 0 writes any byte."""
    where = _built(tree)
    raw = bytearray((where / "meta.json").read_bytes())
    rng = np.random.default_rng(seed)
    for i in rng.integers(0, len(raw), 1 + seed % 4 * 3):
        raw[i] = int(rng.integers(0, 256) if seed == 0 else rng.integers(32, 127))
    (where / "meta.json").write_bytes(bytes(raw))
    calls, report = _reads(monkeypatch), FolderReport()
    result = _load(tree, report)
    if report.notes:
        _assert_rebuilt(tree, report, calls, result)
    else:  # the damage changed nothing the fields say (a space became a tab): the cache stands
        assert calls == [] and result[1]
        _same(_in_memory(tree), result[0])


# -- labels ----------------------------------------------------------------------------------------


def _write_labels(where: Path, labels: np.ndarray, seal: bool) -> None:
    np.save(where / "labels.npy", labels)
    if seal:
        meta = _meta(where)
        meta["labels_digest"] = hashlib.sha256((where / "labels.npy").read_bytes()).hexdigest()
        _write_meta(where, meta, seal=True)


@pytest.mark.parametrize("seal", [False, True], ids=["as-edited", "resealed"])
@pytest.mark.parametrize("labels", ["huge", "negative", "float", "short"])
def test_labels_out_of_range_or_of_the_wrong_kind_are_refused(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                              labels: str, seal: bool) -> None:
    where = _built(tree)
    good = np.load(where / "labels.npy")
    bad = {"huge": np.full_like(good, 10**9), "negative": good - 5, "float": good.astype(np.float64),
           "short": good[:-1]}[labels]
    _write_labels(where, bad, seal)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "labels.npy")


def test_huge_labels_never_reach_a_conditional_model(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's case: labels of 10^9 with the cvae preset were a RuntimeError in one-hot."""
    from explorer.config import DataConfig, TrainConfig
    from explorer.training.engine import drive, train
    from explorer.training.runs import model_config_for, prepare_run

    where = _built(tree)
    _write_labels(where, np.full(N_FILES, 10**9, dtype=np.int64), seal=False)  # as the probe did
    monkeypatch.setenv(folder_cache.ENV, "always")
    run = prepare_run(model_config_for("cvae"), DataConfig(dataset=str(tree), image_size=6),
                      TrainConfig(epochs=1, batch_size=8, device="cpu"))
    assert any("labels.npy" in note for note in run.folder_report.notes)
    assert int(run.data.train_labels.max()) < 3
    events: list = []
    result = drive(train(run.model, run.data, run.train_config), events.append)
    assert result.status == "completed"


# -- images ----------------------------------------------------------------------------------------


def test_a_changed_image_byte_is_found_and_the_cache_rebuilt(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = _built(tree)
    with open(where / "images.u8", "r+b") as fh:
        fh.seek(36 * 17 + 5)
        old = fh.read(1)
        fh.seek(36 * 17 + 5)
        fh.write(bytes([old[0] ^ 0xFF]))
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "images.u8", "checksum")


@pytest.mark.parametrize("how", ["longer", "shorter"])
def test_an_images_file_of_another_size_is_refused(tree: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    where = _built(tree)
    size = (where / "images.u8").stat().st_size
    with open(where / "images.u8", "r+b") as fh:
        fh.truncate(size + 36 if how == "longer" else size - 36)
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "images.u8")


def test_large_caches_check_an_even_spread_of_blocks(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With blocks of 2 rows and room to check 3 blocks, a 30-image cache (15 blocks) checks
    blocks 0, 7 and 14 on every open: a change there is found, one elsewhere is not (the
    price of a bounded check, paid only by caches larger than CHECK_BYTES)."""
    monkeypatch.setattr(folder_cache, "BLOCK_BYTES", 2 * 36)
    monkeypatch.setattr(folder_cache, "CHECK_BYTES", 3 * 2 * 36)
    assert folder_cache._blocks_to_check(15, 72) == [0, 7, 14]
    assert folder_cache._blocks_to_check(3, 72) == [0, 1, 2]
    where = _built(tree)
    assert len(_meta(where)["image_digests"]) == 15

    def flip(row: int) -> None:
        with open(where / "images.u8", "r+b") as fh:
            fh.seek(row * 36)
            old = fh.read(1)
            fh.seek(row * 36)
            fh.write(bytes([old[0] ^ 1]))

    flip(3)  # block 1: not among the checked
    report = FolderReport()
    assert _load(tree, report)[1] and report.notes == []
    flip(14)  # block 7: checked
    calls, report = _reads(monkeypatch), FolderReport()
    _assert_rebuilt(tree, report, calls, _load(tree, report), "rows 14 to 15")


def test_without_a_report_the_line_goes_to_stderr(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = _built(tree)
    (where / "meta.json").write_text("{")
    capsys.readouterr()
    data, mapped = _load(tree)
    err = capsys.readouterr().err.splitlines()
    assert mapped and len(err) == 1 and "failed a check" in err[0] and "meta.json" in err[0]


# -- the bounded JSON helper -----------------------------------------------------------------------


def test_json_depth_stays_linear_on_strings_that_never_close() -> None:
    """The old pattern rescanned to the end from every quote of '"\\"\\"...': 100,000 of
    them took about two minutes, 160,000 five. Linear now, these take milliseconds; the bound
    below is a hundred times that. (Escaped line breaks and odd quotes: unterminated too.)"""
    import time

    start = time.perf_counter()
    for text in ('"' + '\\"' * 100_000, '"\\\n' * 100_000, '"' * 200_001 + "["):
        assert json_depth(text) == 0
    assert time.perf_counter() - start < 5
    assert json_depth('{"a": [1, {"b": "[[[[{{"}]}') == 3
    assert json_depth('["\\\\", [[1]]]') == 3  # an escaped backslash ends before the quote
    assert json_depth("[" * 200_000) == 200_000


def test_loads_bounded_refuses_deep_and_broken_text_in_one_line() -> None:
    assert loads_bounded('{"a": [[1]]}', 3) == {"a": [[1]]}
    for text in ("[" * 100_000 + "]" * 100_000, "{", '{"a": 1e99999999999}x'):
        with pytest.raises(ValueError) as info:
            loads_bounded(text, 8)
        assert "\n" not in str(info.value)
