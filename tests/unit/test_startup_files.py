"""Every file read at start-up is read as an untrusted file (explorer.safe_files): a FIFO, a
link to /dev/zero, a folder or a huge file at its path never hangs the start or fills
memory; an unusable crash lock is set aside with one line on stderr and the window shows.

Each case that could hang or read without end before the fix runs in a child process with
a memory cap and a time limit, so a regression fails here instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from explorer.gui.app.startup import mark, read_trace
from explorer.runtime.recovery import MAX_LISTED, AutosaveStore, SessionLock
from explorer.safe_files import FileRefused, read_regular_file

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="needs FIFOs and /dev/zero")

MEMORY_CAP = 2 * 1024**3  # a child reading /dev/zero without a bound dies here, not at the machine's limit
HANG_GUARD_S = 60
ROOT = Path(__file__).resolve().parents[2]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_CAP, MEMORY_CAP))


def _child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S,
                          env={**os.environ, **env}, preexec_fn=_cap_memory, cwd=ROOT)


def _bad_lock(kind: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        with open(path, "wb") as fh:
            fh.truncate(64 * 1024**2)  # sparse: no disk used
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
def test_an_unusable_crash_lock_is_set_aside_with_one_line(tmp_path: Path, kind: str) -> None:
    lock = tmp_path / "autosave" / "running.json"
    _bad_lock(kind, lock)
    code = ("import json, sys\nfrom pathlib import Path\nfrom explorer.runtime.recovery import SessionLock\n"
            f"state = SessionLock(Path({str(lock)!r})).acquire()\n"
            "print(json.dumps([state.crashed, state.other_instance]))\n")
    done = _child(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [False, False], "a lock we did not write says nothing about a crash"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "crash lock" in lines[0] and "running.json" in lines[0], done.stderr
    assert lines[0].startswith("latent-explorer: ")
    assert json.loads(lock.read_text())["pid"] > 0, "a lock of our own took its place"
    assert not lock.is_symlink()
    assert [p.name for p in lock.parent.iterdir() if p.name.startswith("running.json.broken-")]


def test_the_lock_survives_junk_that_is_a_regular_file(tmp_path: Path) -> None:
    lock = tmp_path / "running.json"
    for junk in (b"[" * 3000, json.dumps({"pid": 10**30}).encode(), b'{"pid": true}', b"\xff\xfe", b""):
        lock.write_bytes(junk)
        said: list[str] = []
        assert SessionLock(lock, warn=said.append).acquire().crashed is True  # its writer did not finish
        assert said == []
    lock.unlink()
    assert SessionLock(lock).acquire().crashed is False


def test_the_lock_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    lock = tmp_path / "running.json"
    lock.symlink_to(target)  # a regular file behind a link: read, not written through
    SessionLock(lock, warn=lambda _: None).acquire()
    assert target.read_text() == "keep me"
    assert not lock.is_symlink() and json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_autosave_listing_skips_what_is_not_a_regular_file(tmp_path: Path) -> None:
    folder = tmp_path / "autosave"
    folder.mkdir()
    good = folder / "run-20260101-000000-1.safetensors"
    good.write_bytes(b"x")
    os.mkfifo(folder / "run-20260101-000000-2.safetensors")
    (folder / "run-20260101-000000-3.safetensors").symlink_to("/dev/zero")
    (folder / "run-20260101-000000-4.safetensors").mkdir()
    (folder / "run-20260101-000000-5.safetensors").symlink_to(good)
    assert AutosaveStore(folder).runs() == [good]
    assert AutosaveStore(tmp_path / "nothing").runs() == []
    assert AutosaveStore(good).runs() == [], "a file where the folder should be"
    assert MAX_LISTED >= 1000


def test_the_startup_trace_neither_blocks_on_a_fifo_nor_reads_a_device(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("LATENT_EXPLORER_STARTUP_TRACE", str(fifo))
    writer = threading.Thread(target=mark, args=("first_paint",), daemon=True)
    writer.start()
    writer.join(10)
    assert not writer.is_alive(), "mark() blocked opening a FIFO with no reader"
    with pytest.raises(FileRefused, match="FIFO"):
        read_trace(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    with pytest.raises(FileRefused, match="character device"):
        read_trace(zero)
    assert read_trace(tmp_path / "absent") == {}


def test_read_regular_file_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    for path, words in ((fifo, "is a FIFO"), (Path("/dev/zero"), "character device"), (tmp_path, "folder")):
        with pytest.raises(FileRefused, match=words) as caught:
            read_regular_file(path, 100)
        assert "\n" not in str(caught.value)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(FileRefused, match="more than"):
        read_regular_file(big, 100)
    assert read_regular_file(big, 101) == b"x" * 101
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "absent", 100)
    odd = tmp_path / "a\nb"
    os.mkfifo(odd)
    with pytest.raises(FileRefused) as caught:
        read_regular_file(odd, 100)
    assert "\n" not in str(caught.value)
    if Path("/proc/self/status").exists():  # a file that says it is empty and is not
        with pytest.raises(FileRefused, match="more than"):
            read_regular_file("/proc/self/status", 16)


# -- the real start: the window shows whatever sits at the lock's path ----------------------


def _start_window(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, dict], Path]:
    trace = tmp_path / "trace.jsonl"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_EXPLORER_STARTUP_TRACE": str(trace),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "LATENT_EXPLORER_DATA": str(tmp_path / "data"),
           "LATENT_EXPLORER_CACHE": str(tmp_path / "cache")}
    env.pop("LATENT_EXPLORER_SLOW_MS", None)  # stderr holds only what start-up says
    proc = subprocess.Popen([sys.executable, "-m", "explorer"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_cap_memory, cwd=ROOT)
    events: dict[str, dict] = {}
    deadline = time.monotonic() + HANG_GUARD_S
    while "ready" not in events and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        events = read_trace(trace)
    return proc, events, trace


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_the_window_shows_whatever_sits_where_the_crash_lock_goes(tmp_path: Path, kind: str) -> None:
    autosave = tmp_path / "data" / "autosave"
    lock = autosave / "running.json"
    _bad_lock(kind, lock)
    os.mkfifo(autosave / "run-20260101-000000-1.safetensors")  # nor do autosave entries get opened
    (autosave / "run-20260101-000000-2.safetensors").symlink_to("/dev/zero")
    proc, events, _ = _start_window(tmp_path)
    try:
        assert "ready" in events, f"the window never got ready: {events}"
        assert json.loads(lock.read_text())["pid"] == proc.pid, "the window holds a lock of its own"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert "Traceback" not in stderr, stderr
    said = [line for line in stderr.splitlines() if "crash lock" in line]
    assert len(said) == 1 and "running.json" in said[0], stderr
    assert proc.returncode == 130, stderr
    assert not lock.exists(), "the window closed normally on SIGTERM and released its lock"
