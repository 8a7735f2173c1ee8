"""Fault injection: ``train`` killed by SIGINT, SIGTERM or SIGKILL at random (seeded)
moments, over many short runs, with ``--out`` already holding a trained model.

After every run ``--out`` is the previous file, byte for byte, or a complete new
checkpoint of the whole run asked for (never truncated, never a partly trained or
untrained model in its place); whatever was saved beside it loads and holds at least the
epochs the run reported; no temporary file is left behind except after SIGKILL, and the
runs after a SIGKILL still work. About 35 s on two cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from explorer.training.checkpoint import load_checkpoint

SEED = 20261201
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
MODES = ("any moment", "mid-epoch", "mid-epoch, twice", "in the final save")
RUNS = len(SIGNALS) * len(MODES)
EPOCHS = 3
TIMEOUT = 120


def _command(out: Path, limit: int) -> list[str]:
    return [sys.executable, "-m", "explorer", "train", "--model", "ae", "--limit", str(limit), "--epochs", str(EPOCHS),
            "--batch-size", "64", "--device", "cpu", "--json", "--out", str(out)]


class Run:
    """One ``train`` subprocess, its stdout lines collected as they come."""

    def __init__(self, out: Path, env: dict[str, str], limit: int = 300) -> None:
        self.proc = subprocess.Popen(_command(out, limit), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.lines: list[str] = []
        self.got_line = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self.got_line.set()

    def wait_for_lines(self, n: int, timeout: float = TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n and self.proc.poll() is None and time.monotonic() < deadline:
            self.got_line.wait(0.005)
            self.got_line.clear()
        return len(self.lines) >= n

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def finish(self) -> int:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        rc = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=10)
        return rc


def _saved(folder: Path) -> set[str]:
    return {n for n in os.listdir(folder) if n != "x.safetensors" and n.endswith(".safetensors")}


def _temps(folder: Path) -> set[str]:
    return {n for n in os.listdir(folder) if n.endswith(".tmp")}


def test_train_killed_at_random_moments_never_loses_or_worsens_out(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", LATENT_EXPLORER_CACHE=str(tmp_path / "cache"))
    folder = tmp_path / "models"
    folder.mkdir()
    out = folder / "x.safetensors"

    started = time.monotonic()
    first = Run(out, env)
    assert first.finish() == 0, first.stderr
    full_run = time.monotonic() - started
    assert load_checkpoint(out).history.last_epoch == EPOCHS

    rng = random.Random(SEED)
    stale: set[str] = set()  # temp files a SIGKILL may leave; never mistaken for the model
    outcomes = []
    for i in range(RUNS):
        before = out.read_bytes()
        saved_before = _saved(folder)
        # every signal with every kind of moment once (12 runs); the moments themselves are random
        sig = SIGNALS[i % len(SIGNALS)]
        mode = MODES[i % len(MODES)]
        # 300 images make 5 steps an epoch (milliseconds); half the runs take 3000 (47 steps)
        # so that a signal lands inside training often enough, not only in start-up and the save.
        limit = rng.choice((300, 3000))
        run = Run(out, env, limit)
        if mode == "any moment":
            time.sleep(rng.uniform(0.0, full_run * 1.05))
            run.send(sig)
        else:
            k = EPOCHS if mode == "in the final save" else rng.randint(1, EPOCHS - 1)
            if run.wait_for_lines(k):
                epoch_seconds = json.loads(run.lines[k - 1])["seconds"]
                time.sleep(rng.uniform(0.0, 1.2 * epoch_seconds))
            run.send(sig)
            if mode.endswith("twice"):
                time.sleep(rng.uniform(0.0, 0.01))
                run.send(signal.SIGINT)
        rc = run.finish()
        epochs_reported = len(run.lines)
        what = (f"run {i} (--limit {limit}): {sig.name} at {mode}, rc {rc}, {epochs_reported} epochs reported; "
                f"stderr: {run.stderr!r}")
        outcomes.append(what)

        if sig == signal.SIGKILL:
            assert rc in (0, 130, -signal.SIGKILL), what
        elif mode == "any moment" and not run.lines:  # perhaps before Python had handlers, or while starting
            assert rc in (0, 130, 128 + sig, -sig), what  # (explorer.startup_signals: 128 + signum)
        else:  # the CLI's handlers: interrupted (130), or finished before the signal (0)
            assert rc in (0, 130), what
        if sig != signal.SIGKILL:
            assert "Traceback" not in run.stderr, what
        after = out.read_bytes()
        if after != before:  # replaced: only ever by a complete, whole run
            replaced = load_checkpoint(out)
            assert replaced.history.last_epoch == EPOCHS, what
        else:
            load_checkpoint(out)
        for name in sorted(_saved(folder) - saved_before):  # an interrupted run saved beside it
            assert ".interrupted" in name, what
            beside = load_checkpoint(folder / name)
            assert beside.history.last_epoch >= epochs_reported - (1 if sig == signal.SIGKILL else 0), what
            if rc == 130:
                assert name in run.stderr, what
        new_temps = _temps(folder) - stale
        if sig == signal.SIGKILL:
            stale |= new_temps
        else:
            assert not new_temps, what

    print("\n".join(outcomes))  # shown when the test fails, and with -s

    # after all of it, including any SIGKILLs, a plain run still works and replaces --out
    last = Run(out, env)
    assert last.finish() == 0, last.stderr + "\n" + "\n".join(outcomes)
    assert load_checkpoint(out).history.last_epoch == EPOCHS
    assert _temps(folder) <= stale
