"""Signals while the program starts end it cleanly: exit 130 for SIGINT and SIGTERM alike (the
CLI's "interrupted"), one line on stderr, no traceback, at once.

The moments are deterministic: ``LATENT_EXPLORER_TEST_PAUSE_AT=STAGE`` makes the process say
``test pause at STAGE`` and wait there (explorer.startup_signals). ``importing-numpy`` and
``importing-torch`` pause inside the package's own ``__init__``, while it is half-imported,
which is where a KeyboardInterrupt used to leave broken modules behind.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer.cli import signals as cli
from explorer.gui.app.startup import read_trace

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 60  # communicate()'s limit: a hang guard only; the exits below take well under a second
PROMPT_S = 10  # how soon after the signal the process must be gone (generous for a loaded 2-core machine)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "LATENT_EXPLORER_DATA": str(tmp_path / "data"), "LATENT_EXPLORER_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1", **extra}
    env.pop("LATENT_EXPLORER_SLOW_MS", None)
    return env


def _signal_at(stage: str, sig: signal.Signals, args: list[str], tmp_path: Path) -> tuple[int, str, float]:
    """Start ``python -m explorer ARGS`` paused at ``stage``, signal it there: (status, stderr, seconds to exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "explorer", *args], cwd=ROOT, text=True,
                            env=_env(tmp_path, LATENT_EXPLORER_TEST_PAUSE_AT=stage),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        seen = []
        while (line := proc.stderr.readline()) and f"test pause at {stage}" not in line:
            seen.append(line)  # the GUI's platform notes may come first
        assert line, f"never reached {stage}: {''.join(seen)}"
        sent = time.monotonic()
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=HANG_GUARD_S)
        return proc.returncode, "".join(seen) + rest, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _train_args(tmp_path: Path) -> list[str]:
    return ["train", "--model", "vae", "--epochs", "1", "--limit", "100", "--device", "cpu",
            "--out", str(tmp_path / "x.safetensors")]


def _assert_clean_exit(status: int, stderr: str, seconds: float, sig: signal.Signals) -> None:
    assert status == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    said = [line for line in stderr.splitlines() if line.startswith("latent-explorer: interrupted")]
    assert len(said) == 1, stderr
    assert (sig.name in said[0]) == (sig != signal.SIGINT), said
    assert seconds < PROMPT_S, f"{seconds:.1f} s to exit"


@pytest.mark.parametrize("stage", ["before-imports", "importing-numpy", "importing-torch"])
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_train_signalled_while_starting_ends_cleanly(tmp_path: Path, stage: str, sig: signal.Signals) -> None:
    status, stderr, seconds = _signal_at(stage, sig, _train_args(tmp_path), tmp_path)
    _assert_clean_exit(status, stderr, seconds, sig)
    assert not (tmp_path / "x.safetensors").exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("stage", ["before-imports", "importing-PySide6", "importing-torch"])
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_the_window_signalled_while_starting_ends_cleanly(tmp_path: Path, stage: str, sig: signal.Signals) -> None:
    """``importing-torch`` is the splash: torch imports in a background thread meanwhile."""
    status, stderr, seconds = _signal_at(stage, sig, [], tmp_path)
    _assert_clean_exit(status, stderr, seconds, sig)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_started_window_closes_as_normally_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    trace = tmp_path / "trace.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "explorer"], cwd=ROOT, text=True,
                            env=_env(tmp_path, LATENT_EXPLORER_STARTUP_TRACE=str(trace)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        events: dict[str, dict] = {}
        deadline = time.monotonic() + HANG_GUARD_S
        while "ready" not in events and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            events = read_trace(trace)
        assert "ready" in events, events
        lock = tmp_path / "data" / "autosave" / "running.json"
        assert json.loads(lock.read_text())["pid"] == proc.pid
        sent = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=HANG_GUARD_S)
        _assert_clean_exit(proc.returncode, stderr, time.monotonic() - sent, sig)
        assert "closing the window" in stderr
        assert not lock.exists(), "a normal close: the crash lock is released, nothing is offered next time"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_command_signalled_inside_an_import_is_interrupted_once_the_import_is_over(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    """Once a command's own handlers are in place (cli._Signals), a signal that lands inside
    an import is raised right after it, never in the middle of it."""
    name = "latent_explorer_slow_import_probe"
    (tmp_path / f"{name}.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(0.3)  # the signal's handler runs in here, mid-import\n"
        "DONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        with cli._Signals() as signals, pytest.raises(KeyboardInterrupt):
            importlib.import_module(name)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.01)
        assert signals.received == ["SIGINT"]
        assert getattr(sys.modules.get(name), "DONE", False), "the import was cut short"
    finally:
        sys.modules.pop(name, None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_only_the_standard_library_is_loaded_before_the_handlers() -> None:
    """The entry point's first import must be light: the handlers go in before numpy, torch or Qt."""
    code = ("import sys\nimport explorer.__main__\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'torch', 'PySide6', 'pyqtgraph'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
