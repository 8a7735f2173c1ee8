"""The CLI loses nothing: outputs proven writable before any work, interrupted and
diverged runs saved beside an existing --out (never over it), SIGTERM and SIGHUP treated
as Ctrl+C, a second signal during a save held until the save is complete, failed saves
and out-of-memory as one line. In-process (tests/unit/cli_runner.py); real signals are
sent to this process from inside the run, so the CLI's own handlers are what is tested."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)

from explorer.training.checkpoint import load_checkpoint
from explorer.training.events import EpochEnd, RunStarted

OOM_CPU = ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 96000000000 bytes. "
           "Error code 12 (Cannot allocate memory)")


pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread


def train_args(out: Path, *extra: object, epochs: int = 2, model: str = "ae") -> list[object]:
    return ["train", "--model", model, "--limit", 300, "--epochs", epochs, "--batch-size", 64, "--device", "cpu",
            "--json", "--out", out, *extra]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained VAE (2 epochs, so generate works too); tests copy it, never change it."""
    path = tmp_path_factory.mktemp("cli-safety-good") / "good.safetensors"
    rc, _, err = run(*train_args(path, model="vae"))
    assert rc == 0, err
    return path


@pytest.fixture
def existing(good: Path, tmp_path: Path) -> Path:
    """A copy of the good model where --out will point."""
    out = tmp_path / "m.safetensors"
    out.write_bytes(good.read_bytes())
    return out


def one_line(err: str, rc: int | None = None, *words: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word.lower() in lines[0].lower(), err
    return lines[0]


def last_line(err: str, *words: str) -> str:
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    for word in words:
        assert word.lower() in line.lower(), err
    return line


def signal_when(monkeypatch: pytest.MonkeyPatch, when, sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to this process from inside each run, after the first event ``when`` accepts."""
    from explorer.training import engine

    real = engine.drive

    def drive(events, on_event):  # once per run
        sent: list[object] = []

        def listener(ev):
            on_event(ev)
            if not sent and when(ev):
                sent.append(ev)
                os.kill(os.getpid(), sig)

        return real(events, listener)

    monkeypatch.setattr(engine, "drive", drive)


def after_epoch(k: int):
    return lambda ev: isinstance(ev, EpochEnd) and ev.epoch == k


def temps(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


# -- outputs proven writable before any work ----------------------------------------------------


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly (a traceback, so the test fails) if a command starts loading or training."""
    def started(*_a, **_kw):
        raise AssertionError("work started before the output was checked")

    from explorer.training import checkpoint, runs

    monkeypatch.setattr(runs, "prepare_run", started)
    monkeypatch.setattr(checkpoint, "load_checkpoint", started)


def _place(tmp_path: Path, case: str, name: str) -> Path:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    if case == "folder":
        folder = tmp_path / name  # a folder with the right suffix
        folder.mkdir()
        return folder
    if case == "under-a-file":
        return plain / name
    if case == "missing-folder":
        return tmp_path / "nope" / name
    if case == "fifo":
        path = tmp_path / name
        os.mkfifo(path)
        return path
    if case == "unwritable":
        if not Path("/proc/self").exists():
            pytest.skip("needs /proc")
        return Path("/proc") / name
    raise AssertionError(case)


PLACES = {"folder": "folder", "under-a-file": "is a file, not a folder", "missing-folder": "does not exist",
          "fifo": "not a regular file", "unwritable": "no file can be created"}
COMMANDS = {
    "train": ("m.safetensors", lambda out: train_args(out)),
    "generate-npy": ("s.npy", lambda out: ["generate", "ck.safetensors", "--out", out]),
    "generate-png": ("s.png", lambda out: ["generate", "ck.safetensors", "--out", out]),
    "reconstruct": ("r.png", lambda out: ["reconstruct", "ck.safetensors", "--out", out]),
    "encode-csv": ("z.csv", lambda out: ["encode", "ck.safetensors", "--out", out]),
}


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("case", list(PLACES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_output_is_refused_before_any_work(tmp_path: Path, command: str, case: str) -> None:
    name, argv = COMMANDS[command]
    out = _place(tmp_path, case, name)
    before = sorted(os.listdir(tmp_path))
    rc, stdout, err = run(*argv(out))
    assert rc == 2, err
    one_line(err, rc, "latent-explorer: error: cannot write", PLACES[case])
    assert stdout == ""
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("case,words", [("a-file", "is a file, not a folder"), ("under-a-file", "is a file"),
                                        ("not-empty", "not empty")])
def test_an_unusable_generate_folder_is_refused_before_any_work(tmp_path: Path, case: str, words: str) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.png").write_bytes(b"x")
    folder = {"a-file": plain, "under-a-file": plain / "gen", "not-empty": full}[case]
    rc, _, err = run("generate", "ck.safetensors", "--folder", folder)
    assert rc == 2
    one_line(err, rc, words)
    assert (full / "keep.png").read_bytes() == b"x" and plain.read_text() == "x"


def test_control_characters_in_a_path_stay_on_one_line(tmp_path: Path) -> None:
    rc, _, err = run(*train_args(tmp_path / "a\nb\x1b[31m.pt"))
    assert rc == 2
    line = one_line(err, rc, ".safetensors")
    assert "\x1b" not in line


# -- interrupted runs never replace --out ------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_an_interrupted_run_saves_beside_an_existing_out(existing: Path, monkeypatch, sig) -> None:
    before = existing.read_bytes()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal_when(monkeypatch, after_epoch(1), sig)
    rc, stdout, err = run(*train_args(existing, epochs=5))
    assert rc == 130, err
    beside = existing.with_name("m.interrupted.safetensors")
    line = one_line(err, rc, "interrupted", "after 1 of 5 epoch", str(beside), f"{existing} is untouched")
    assert (sig.name in line) == (sig != signal.SIGINT)
    assert existing.read_bytes() == before
    saved = load_checkpoint(beside)
    assert saved.history.last_epoch >= 1
    assert len(stdout.strip().splitlines()) >= 1
    assert temps(existing.parent) == []
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the CLI put the handlers back


def test_a_second_interrupted_run_does_not_replace_the_first_one_beside(existing: Path, monkeypatch) -> None:
    signal_when(monkeypatch, after_epoch(1))
    for _ in range(2):
        rc, _, err = run(*train_args(existing, epochs=5))
        assert rc == 130, err
    assert (existing.with_name("m.interrupted.safetensors").exists()
            and existing.with_name("m.interrupted-2.safetensors").exists())
    assert "m.interrupted-2.safetensors" in err


def test_an_interrupt_before_any_step_saves_nothing(existing: Path, monkeypatch) -> None:
    before = existing.read_bytes()
    signal_when(monkeypatch, lambda ev: isinstance(ev, RunStarted), signal.SIGTERM)
    rc, _, err = run(*train_args(existing))
    assert rc == 130
    one_line(err, rc, "SIGTERM", "nothing was saved", f"{existing} is untouched")
    assert existing.read_bytes() == before
    assert os.listdir(existing.parent) == ["m.safetensors"]


def test_an_interrupted_run_with_no_earlier_file_saves_at_out(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "new.safetensors"
    signal_when(monkeypatch, after_epoch(1))
    rc, _, err = run(*train_args(out, epochs=5))
    assert rc == 130
    line = one_line(err, rc, "saved the model so far to", str(out))
    assert "untouched" not in line
    assert load_checkpoint(out).history.last_epoch >= 1
    assert os.listdir(tmp_path) == ["new.safetensors"]


def _signal_during_save(monkeypatch: pytest.MonkeyPatch, sig: int = signal.SIGINT) -> None:
    """Deliver ``sig`` while the checkpoint is being written (after its bytes are built)."""
    from explorer.training import checkpoint

    real = checkpoint.st_save

    def st_save(*args, **kwargs):
        payload = real(*args, **kwargs)
        os.kill(os.getpid(), sig)
        return payload

    monkeypatch.setattr(checkpoint, "st_save", st_save)


def test_a_second_interrupt_during_the_save_waits_for_a_complete_file(existing: Path, monkeypatch) -> None:
    before = existing.read_bytes()
    signal_when(monkeypatch, after_epoch(1))
    _signal_during_save(monkeypatch, signal.SIGTERM)
    rc, _, err = run(*train_args(existing, epochs=5))
    assert rc == 130, err
    one_line(err, rc, "saved the model so far", "second interrupt came during the save, which was finished first")
    assert existing.read_bytes() == before
    assert load_checkpoint(existing.with_name("m.interrupted.safetensors")).history.last_epoch >= 1
    assert temps(existing.parent) == []


def test_an_interrupt_during_the_final_save_leaves_the_complete_new_model(existing: Path, monkeypatch) -> None:
    _signal_during_save(monkeypatch)
    rc, _, err = run(*train_args(existing, epochs=3))
    assert rc == 130, err
    last_line(err, "while saving", "finished first", f"{existing} is the complete new model (3 epochs)")
    assert load_checkpoint(existing).history.last_epoch == 3
    assert temps(existing.parent) == []


def test_a_completed_run_replaces_out(existing: Path) -> None:
    before = existing.read_bytes()
    rc, _, err = run(*train_args(existing, epochs=3))
    assert rc == 0, err
    assert existing.read_bytes() != before
    assert load_checkpoint(existing).history.last_epoch == 3
    assert os.listdir(existing.parent) == ["m.safetensors"]


def test_a_diverged_run_saves_beside_an_existing_out(existing: Path, monkeypatch) -> None:
    import dataclasses

    from explorer.models.autoencoder import Autoencoder

    real = Autoencoder.forward

    def forward(self, x, y=None):
        out = real(self, x, y)
        return dataclasses.replace(out, loss=out.loss * float("nan")) if self.training else out

    monkeypatch.setattr(Autoencoder, "forward", forward)
    before = existing.read_bytes()
    rc, _, err = run(*train_args(existing))
    assert rc == 3, err
    monkeypatch.undo()
    beside = existing.with_name("m.diverged.safetensors")
    one_line(err, rc, "NaN", str(beside), "untouched")
    assert existing.read_bytes() == before
    load_checkpoint(beside)


def test_an_ignored_sighup_stays_ignored(tmp_path: Path, monkeypatch) -> None:
    seen = []
    from explorer.training import engine

    real = engine.drive

    def drive(events, on_event):
        seen.append(signal.getsignal(signal.SIGHUP))
        return real(events, on_event)

    monkeypatch.setattr(engine, "drive", drive)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        rc, _, err = run(*train_args(tmp_path / "m.safetensors", epochs=1))
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert rc == 0, err
    assert seen == [signal.SIG_IGN]


# -- failed saves and out of memory --------------------------------------------------------------


def test_a_full_disk_at_the_end_of_a_run_keeps_the_earlier_model(existing: Path, monkeypatch) -> None:
    before = existing.read_bytes()
    real = os.fsync

    def fsync(fd):
        if os.fstat(fd).st_size > 1000:  # the checkpoint, not the probe or a folder
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    rc, _, err = run(*train_args(existing, epochs=1))
    assert rc == 2
    last_line(err, "latent-explorer: error:", "No space left on device", "untouched")
    assert existing.read_bytes() == before
    assert temps(existing.parent) == []


@pytest.mark.parametrize("command,name", [("generate", "s.npy"), ("generate", "s.png"), ("encode", "z.npy"),
                                          ("encode", "z.csv"), ("reconstruct", "r.png")])
def test_a_full_disk_keeps_the_earlier_output(good: Path, tmp_path: Path, monkeypatch, command, name) -> None:
    out = tmp_path / name
    rc, _, err = run(command, good, "--out", out)
    assert rc == 0, err
    before = out.read_bytes()

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    rc, _, err = run(command, good, "--out", out, *(("--seed", 1) if command == "generate" else ()))
    assert rc == 2
    one_line(err, rc, "No space left", "untouched")
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("exc", [RuntimeError(OOM_CPU), MemoryError(), RuntimeError("CUDA out of memory.")],
                         ids=["cpu-allocator", "MemoryError", "cuda"])
def test_out_of_memory_while_training_is_one_line_naming_what_to_change(tmp_path: Path, monkeypatch, exc) -> None:
    from explorer.training import engine

    def drive(events, on_event):
        raise exc

    monkeypatch.setattr(engine, "drive", drive)
    rc, _, err = run(*train_args(tmp_path / "m.safetensors"))
    assert rc == 2
    one_line(err, rc, "latent-explorer: error:", "out of memory", "--batch-size")
    assert os.listdir(tmp_path) == []


def _raise(exc):
    def boom(*_a, **_kw):
        raise exc

    return boom


@pytest.mark.parametrize("command,words", [("generate", "--n"), ("reconstruct", "--n"), ("encode", "--split"),
                                           ("evaluate", "--device cpu"), ("anomaly", "memory")])
@pytest.mark.parametrize("exc", [RuntimeError(OOM_CPU), MemoryError()], ids=["cpu-allocator", "MemoryError"])
def test_out_of_memory_in_every_command_is_one_line(good: Path, tmp_path: Path, monkeypatch, command, words,
                                                    exc) -> None:
    from explorer.analysis import anomaly, latents
    from explorer.models.autoencoder import Autoencoder
    from explorer.training import evaluate

    for target, name in ((Autoencoder, "sample"), (Autoencoder, "reconstruct"), (latents, "encode_images"),
                         (evaluate, "evaluate_tensors"), (anomaly, "anomaly_report")):
        monkeypatch.setattr(target, name, _raise(exc))
    argv = {"generate": ["generate", good, "--out", tmp_path / "s.npy"],
            "reconstruct": ["reconstruct", good, "--out", tmp_path / "r.npy"],
            "encode": ["encode", good, "--out", tmp_path / "z.npy"],
            "evaluate": ["evaluate", good, "--device", "cpu"],
            "anomaly": ["anomaly", good, "--normal", "0"]}[command]
    rc, _, err = run(*argv)
    assert rc == 2
    one_line(err, rc, "latent-explorer: error:", "out of memory", words)
    assert os.listdir(tmp_path) == []


def test_a_huge_seed_for_generate_is_refused_in_one_line(good: Path, tmp_path: Path) -> None:
    rc, _, err = run("generate", good, "--seed", "99999999999999999999999", "--out", tmp_path / "s.npy")
    assert rc == 2
    one_line(err, rc, "--seed", "too large", "2,147,483,647")
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("no_work")
def test_an_empty_out_for_generate_is_refused_not_mistaken_for_folder(tmp_path: Path) -> None:
    rc, _, err = run("generate", "ck.safetensors", "--out=")  # found by tests/unit/test_cli_fuzz.py
    assert rc == 2
    one_line(err, rc, "cannot write", "folder")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_while_an_output_is_written_leaves_the_earlier_file(good: Path, tmp_path: Path, monkeypatch,
                                                                     sig) -> None:
    import numpy as np

    out = tmp_path / "s.npy"
    rc, _, err = run("generate", good, "--out", out, "--n", 4)
    assert rc == 0, err
    before = out.read_bytes()
    real = np.save

    def save(fh, array, **kwargs):
        fh.write(b"\x93NUMPY half")
        os.kill(os.getpid(), sig)  # raised here, halfway through the file
        return real(fh, array, **kwargs)

    monkeypatch.setattr(np, "save", save)
    rc, _, err = run("generate", good, "--out", out, "--n", 4, "--seed", 1)
    assert rc == 130
    line = one_line(err, rc, "interrupted", "nothing was written")
    assert (sig.name in line) == (sig != signal.SIGINT)
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.npy"]


def test_a_disk_without_room_for_the_checkpoint_is_refused_before_training(existing: Path, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    from explorer.training import engine

    def no_training(*_a, **_kw):
        raise AssertionError("training started")

    monkeypatch.setattr(engine, "drive", no_training)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 4096, 4096))
    before = existing.read_bytes()
    rc, _, err = run(*train_args(existing))
    assert rc == 2
    one_line(err, rc, "cannot write", "MB are free", "another --out")
    assert existing.read_bytes() == before


def test_class_names_from_a_file_reach_the_terminal_escaped(good: Path, tmp_path: Path) -> None:
    from explorer.training.checkpoint import save_checkpoint

    ckpt = load_checkpoint(good)
    names = tuple(f"\x1b[31mred{k}\nline\x07" for k in range(10))
    hostile = save_checkpoint(tmp_path / "hostile.safetensors", ckpt.build_model(), ckpt.data_config,
                              ckpt.train_config, ckpt.history, names)
    rc, out, err = run("anomaly", hostile, "--normal", "0")
    assert rc == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert len(out.strip().splitlines()) == 1 + 9  # the summary and one line per other class, none broken
    rc, _, err = run("generate", hostile, "--label", 99, "--out", tmp_path / "s.npy")
    assert rc == 2
    assert "\x1b" not in err
