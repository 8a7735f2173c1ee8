"""Distributed training under torchrun (gloo on loopback) and ``train --checkpoint-every``.

Each torchrun run here starts two CLI processes on a small subset (a few seconds each).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from explorer.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="this PyTorch has no gloo backend")

TRAIN = ["--model", "vae", "--limit", "600", "--batch-size", "64", "--device", "cpu", "--precision", "fp32",
         "--json"]
TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", LATENT_EXPLORER_CACHE=str(tmp / "cache"), CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _torchrun(*args: str, monitor_s: float = 0.1) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(_free_port()), "--tee", "3", "--log-dir", "LOGDIR",
            "--monitor-interval", str(monitor_s), "-m", "explorer", "train", *args]


def _run_torchrun(tmp: Path, name: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    logs = tmp / f"logs-{name}"
    command = [a if a != "LOGDIR" else str(logs) for a in _torchrun(*args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=_env(tmp, **env))
    return done, logs


def _rank_output(logs: Path, rank: int, stream: str) -> str:
    """What one rank wrote to stdout or stderr (torchrun's --log-dir keeps each apart)."""
    found = list(logs.rglob(f"attempt_0/{rank}/{stream}.log"))
    assert len(found) == 1, list(logs.rglob("*"))
    return found[0].read_text()


def _files(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith("logs-") and n != "cache")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory):
    """The same seed trained twice under world size 2, and once in a single process."""
    tmp = tmp_path_factory.mktemp("ddp")
    runs = []
    for name in ("a", "b"):
        folder = tmp / name
        folder.mkdir()
        done, logs = _run_torchrun(folder, name, *TRAIN, "--epochs", "2", "--out", str(folder / "x.safetensors"))
        runs.append((folder, done, logs))
    single = tmp / "single"
    single.mkdir()
    done = subprocess.run([sys.executable, "-m", "explorer", "train", *TRAIN, "--epochs", "2", "--out",
                           str(single / "x.safetensors")], capture_output=True, text=True, timeout=TIMEOUT,
                          env=_env(single))
    assert done.returncode == 0, done.stderr
    return runs, single


def test_two_processes_write_one_checkpoint_and_rank_1_stays_quiet(two_runs) -> None:
    runs, _ = two_runs
    folder, done, logs = runs[0]
    assert done.returncode == 0, done.stderr[-3000:]
    assert _files(folder) == ["x.safetensors"]  # one checkpoint, no temporary file left
    assert _rank_output(logs, 1, "stdout") == ""
    assert "latent-explorer" not in _rank_output(logs, 1, "stderr")
    epochs = [line for line in _rank_output(logs, 0, "stdout").splitlines() if line.startswith("{")]
    assert len(epochs) == 2


def test_the_checkpoint_opens_evaluates_and_matches_a_single_process_run(two_runs) -> None:
    from explorer.cli import main

    runs, single = two_runs
    folder, _, _ = runs[0]
    ckpt = load_checkpoint(folder / "x.safetensors")
    assert ckpt.history.last_epoch == 2
    model = ckpt.build_model()
    assert sum(p.numel() for p in model.parameters()) > 0
    ddp_loss = ckpt.history.epochs[-1]["test"]["loss"]
    one_loss = load_checkpoint(single / "x.safetensors").history.epochs[-1]["test"]["loss"]
    assert abs(ddp_loss - one_loss) <= 0.03 * abs(one_loss), (ddp_loss, one_loss)
    # `evaluate` opens it the way the window's files do and finds the same test loss.
    import contextlib
    import io
    import json

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["evaluate", str(folder / "x.safetensors"), "--device", "cpu", "--json"]) == 0
    record = json.loads(out.getvalue().strip().splitlines()[-1])
    assert abs(record["test_loss"] - ddp_loss) <= 0.03 * abs(ddp_loss), (record, ddp_loss)


def test_one_seed_gives_one_result_for_a_world_size(two_runs) -> None:
    runs, _ = two_runs
    a, b = (load_checkpoint(folder / "x.safetensors") for folder, _, _ in runs)
    assert a.state_dict.keys() == b.state_dict.keys()
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k]), k


def test_a_batch_that_does_not_split_is_refused_in_one_line(tmp_path: Path) -> None:
    done, logs = _run_torchrun(tmp_path, "odd", *TRAIN, "--epochs", "1", "--batch-size", "63",
                               "--out", str(tmp_path / "x.safetensors"))
    assert done.returncode != 0
    err = _rank_output(logs, 0, "stderr")
    lines = [line for line in err.splitlines() if line.startswith("latent-explorer:")]
    assert len(lines) == 1 and "does not split evenly over 2 processes" in lines[0], err
    assert "latent-explorer" not in _rank_output(logs, 1, "stderr")
    assert _files(tmp_path) == []


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds rank 1 through /proc")
def test_a_lost_rank_ends_the_run_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    logs = tmp_path / "logs-lost"
    command = [a if a != "LOGDIR" else str(logs)
               # torchrun stops the other processes (SIGTERM) once it sees one gone; a slower look gives
               # rank 0 time to find the loss itself, as it does when the lost process is on another node.
               for a in _torchrun(*TRAIN, "--epochs", "500", "--checkpoint-every", "1", "--out", str(out),
                                  monitor_s=3)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(tmp_path, LATENT_EXPLORER_DIST_TIMEOUT_S="10"))
    try:
        deadline = time.monotonic() + 60
        while not out.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
        time.sleep(0.3)
        victims = [p for p in _children(proc.pid) if _rank_of(p) == 1]
        assert len(victims) == 1, _children(proc.pid)
        os.kill(victims[0], 9)
        proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = _rank_output(logs, 0, "stderr")
    lines = [line for line in err.splitlines() if "was lost" in line]
    assert len(lines) == 1, err[-3000:]
    line = lines[0]
    assert line.startswith("latent-explorer: error: a training process (rank 1) was lost at epoch "), line
    assert f"the last checkpoint written ({out}, epoch " in line and line.endswith(") is kept"), line
    kept_epoch = int(line.rsplit("epoch ", 1)[1].split(")")[0])
    ckpt = load_checkpoint(out)
    assert ckpt.history.last_epoch == kept_epoch >= 1
    assert _files(tmp_path) == ["x.safetensors"]
    assert "Traceback" not in err


# -- --checkpoint-every without torchrun ---------------------------------------------------


@pytest.mark.usefixtures("cli_module_env")
@pytest.mark.parametrize(("every", "saved_at"), [("1", [1, 2, 3, 3]), ("2", [2, 3]), ("1000m", [3]),
                                               ("0.0001m", [1, 2, 3, 3])])
def test_checkpoint_every_saves_at_epoch_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             every: str, saved_at: list[int]) -> None:
    import explorer.cli.train as cli
    from tests.unit.cli_runner import run

    seen: list[int] = []
    real = cli._save

    def spy(out, model, run_, train_config, history, **kw):
        where = real(out, model, run_, train_config, history, **kw)
        seen.append(load_checkpoint(where).history.last_epoch)
        return where

    monkeypatch.setattr(cli, "_save", spy)
    out = tmp_path / "x.safetensors"
    rc, _, err = run("train", "--model", "ae", "--limit", "300", "--epochs", "3", "--batch-size", "64",
                     "--device", "cpu", "--json", "--checkpoint-every", every, "--out", out)
    assert rc == 0, err
    assert seen == saved_at
    assert load_checkpoint(out).history.last_epoch == 3
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


@pytest.mark.parametrize("bad", ["0", "-1", "x", "0m", "m", "nanm"])
def test_checkpoint_every_refuses_nonsense(tmp_path: Path, bad: str) -> None:
    from tests.unit.cli_runner import assert_usage_error, run

    rc, _, err = run("train", "--checkpoint-every", bad, "--out", tmp_path / "x.safetensors")
    assert_usage_error(rc, err, "checkpoint-every")
