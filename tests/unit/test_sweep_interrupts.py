"""An interrupted sweep keeps what it trained and says so; ``--resume`` finishes it.

SIGTERM (a real signal, sent to this process from inside the run, so the CLI's own handlers
are what is tested) in the middle of a group: the finished groups' checkpoints stay, the runs
cut short are saved beside their names (NAME.interrupted.safetensors), sweep.json and the
summary describe the folder, and the one message names what was written. A plain rerun into
that folder is refused with the way on; ``--resume`` trains only what is missing, removes the
interrupted files the finished runs replace and completes the summary, to the numbers an
uninterrupted sweep gets. ``--out-dir`` takes a new or empty folder, or (resuming) the same
sweep's own, nothing else. Tiny data: 200 images, 2 epochs, so each sweep is about a second.
"""

from __future__ import annotations

import csv
import io
import os
import signal
from pathlib import Path

import pytest
from cli_runner import assert_usage_error, assert_user_error, run  # tests/unit is on sys.path

from explorer.training import sweep
from explorer.training.batched import RunEvent, train_together
from explorer.training.checkpoint import load_checkpoint
from explorer.training.events import EpochEnd, RunStarted, Snapshot, StepLoss

pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread

# Two groups of two (latent 2, then latent 3): runs of one latent size train together.
FINISHED = ["vae-beta0.5-z2.safetensors", "vae-beta2-z2.safetensors"]
CUT = ["vae-beta0.5-z3.interrupted.safetensors", "vae-beta2-z3.interrupted.safetensors"]
ALL = ["vae-beta0.5-z2", "vae-beta2-z2", "vae-beta0.5-z3", "vae-beta2-z3"]


def sweep_args(out: Path, *extra: object) -> list[object]:
    return ["sweep", "--model", "vae", "--beta", "0.5,2", "--latent-dim", "2,3", "--limit", 200, "--epochs", 2,
            "--batch-size", 50, "--device", "cpu", "--out-dir", out, *extra]


def signal_in_group(monkeypatch: pytest.MonkeyPatch, group: int, when, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to this process once, in group ``group`` (1 is the first), right after
    the first event ``when`` accepts has reached the CLI."""
    real = sweep.drive
    calls: list[int] = []
    sent: list[object] = []

    def drive(events, on_event):
        calls.append(1)

        def listener(item: RunEvent) -> None:
            on_event(item)
            if len(calls) == group and not sent and when(item):
                sent.append(item)
                os.kill(os.getpid(), sig)

        return real(events, listener)

    monkeypatch.setattr(sweep, "drive", drive)


def first_epoch_end(item: RunEvent) -> bool:
    return isinstance(item.event, EpochEnd)


def rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((folder / "summary.csv").read_text())))


def last_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def test_sigterm_mid_sweep_keeps_what_it_trained_and_resume_finishes_it(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "sweep"
    signal_in_group(monkeypatch, 2, first_epoch_end)
    rc, _, err = run(*sweep_args(out))
    assert rc == 130, err
    line = last_line(err)
    assert "nothing was written" not in line, line
    for words in ("interrupted (SIGTERM)", "2 finished checkpoints", *FINISHED, "2 interrupted runs", *CUT,
                  "summary.csv", "2 of 4 runs are finished", "--resume"):
        assert words in line, line
    assert sorted(os.listdir(out)) == sorted(FINISHED + CUT + ["sweep.json", "summary.csv", "summary.md"])
    table = rows(out)
    assert [(r["name"], r["status"]) for r in table] == [
        ("vae-beta0.5-z2", "completed"), ("vae-beta2-z2", "completed"),
        ("vae-beta0.5-z3", "interrupted"), ("vae-beta2-z3", "interrupted")]
    assert [r["checkpoint"] for r in table] == FINISHED + CUT
    assert load_checkpoint(out / FINISHED[0]).history.last_epoch == 2
    cut = load_checkpoint(out / CUT[0])
    assert cut.history.last_epoch == 1 and cut.model_config.latent_dim == 3
    kept = {name: (out / name).read_bytes() for name in FINISHED}

    monkeypatch.undo()
    rc, _, err = run(*sweep_args(out))  # a plain rerun: refused, and told how to go on
    assert_user_error(rc, err, "unfinished", "2 of 4", "--resume")

    rc, _, err = run(*sweep_args(out, "--resume"))
    assert rc == 0, err
    assert "resuming" in err and "2 finished earlier were kept" in err and "removed 2 interrupted" in err
    assert sorted(os.listdir(out)) == sorted([f"{n}.safetensors" for n in ALL]
                                             + ["sweep.json", "summary.csv", "summary.md"])
    assert {name: (out / name).read_bytes() for name in FINISHED} == kept  # skipped, not retrained
    resumed = rows(out)
    assert [r["name"] for r in resumed] == ALL and {r["status"] for r in resumed} == {"completed"}

    fresh = tmp_path / "fresh"
    rc, _, err = run(*sweep_args(fresh))
    assert rc == 0, err
    assert [r["test_loss"] for r in rows(fresh)] == [r["test_loss"] for r in resumed]

    rc, _, err = run(*sweep_args(out))  # a finished sweep is not overwritten either
    assert_user_error(rc, err, "already holds this sweep, finished")


def test_an_interrupt_before_any_step_writes_nothing_and_says_so(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "sweep"
    signal_in_group(monkeypatch, 1, lambda item: isinstance(item.event, RunStarted))
    rc, _, err = run(*sweep_args(out))
    assert rc == 130, err
    line = last_line(err)
    assert "SIGTERM" in line and "nothing was written" in line and "0 of 4 runs are finished" in line, line
    assert not out.exists() or os.listdir(out) == []


def test_an_interrupt_during_a_groups_save_lets_the_save_finish(tmp_path: Path, monkeypatch) -> None:
    from explorer.training import checkpoint

    out = tmp_path / "sweep"
    real = checkpoint.st_save
    sent: list[int] = []

    def st_save(*args, **kwargs):
        payload = real(*args, **kwargs)
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # while the first group's first checkpoint is written
        return payload

    monkeypatch.setattr(checkpoint, "st_save", st_save)
    rc, _, err = run(*sweep_args(out))
    assert rc == 130, err
    line = last_line(err)
    assert "2 finished checkpoints" in line and "2 of 4 runs are finished" in line, line
    assert sorted(os.listdir(out)) == sorted(FINISHED + ["sweep.json", "summary.csv", "summary.md"])
    assert all(load_checkpoint(out / name).history.last_epoch == 2 for name in FINISHED)
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_runs_one_after_another_keep_the_runs_that_ended(tmp_path: Path, monkeypatch) -> None:
    """A conv group trains its runs in turn: the run that ended is finished, the next one cut short."""
    out = tmp_path / "sweep"
    signal_in_group(monkeypatch, 1, lambda item: isinstance(item.event, StepLoss) and item.run == 1)
    args = ["sweep", "--model", "conv-ae", "--seeds", "0,1", "--limit", 200, "--epochs", 1, "--batch-size", 20,
            "--device", "cpu", "--out-dir", out]
    rc, _, err = run(*args)
    assert rc == 130, err
    first, second = (r.name for r in sweep.plan_sweep("conv-ae", seeds=(0, 1)))
    assert "1 of 2 runs are finished" in last_line(err), err
    assert (out / f"{first}.safetensors").exists() and (out / f"{second}.interrupted.safetensors").exists()
    assert not (out / f"{second}.safetensors").exists()
    monkeypatch.undo()
    rc, _, err = run(*args, "--resume")
    assert rc == 0, err
    assert sorted(n for n in os.listdir(out) if n.endswith(".safetensors")) == [f"{first}.safetensors",
                                                                                 f"{second}.safetensors"]


# -- the folder: new or empty, or the same sweep's own with --resume --------------------------------------


def test_out_dir_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ((), ("--resume",)):
        rc, _, err = run(*sweep_args(out, *extra))
        assert_user_error(rc, err, "notes.txt" if not extra else "not a sweep")
        assert os.listdir(out) == ["notes.txt"]


def test_resume_refuses_another_sweeps_folder_and_names_the_difference(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "sweep"
    signal_in_group(monkeypatch, 2, first_epoch_end)
    rc, _, err = run(*sweep_args(out))
    assert rc == 130, err
    monkeypatch.undo()
    before = {n: (out / n).stat().st_mtime_ns for n in os.listdir(out)}
    rc, _, err = run(*sweep_args(out, "--resume", "--limit", 300))
    assert_user_error(rc, err, "another sweep", "limit", "300")
    rc, _, err = run(*sweep_args(out, "--resume", "--beta", "0.5,4"))
    assert_user_error(rc, err, "another sweep", "vae-beta4-z2")
    assert {n: (out / n).stat().st_mtime_ns for n in os.listdir(out)} == before


def test_resume_into_a_new_folder_starts_the_sweep(tmp_path: Path) -> None:
    out = tmp_path / "new"
    rc, _, err = run(*sweep_args(out, "--resume", "--latent-dim", "2"))
    assert rc == 0, err
    assert [r["status"] for r in rows(out)] == ["completed", "completed"]


# -- the argument check agrees with the config ------------------------------------------------------------


@pytest.mark.parametrize("option", ["--beta", "--recon-weight"])
def test_a_weight_the_model_config_refuses_is_a_usage_error(tmp_path: Path, option: str) -> None:
    out = tmp_path / "sweep"
    rc, stdout, err = run(*sweep_args(out, option, "1,1e6"))
    assert_usage_error(rc, err, option, "1e6", "below")
    assert len(err.strip().splitlines()) == 1 and stdout == ""
    assert not out.exists()


def test_the_largest_weight_the_parser_takes_is_one_the_config_takes() -> None:
    from explorer.cli import build_parser
    from explorer.config import ModelConfig

    args = build_parser().parse_args(["sweep", "--beta", "999999.9", "--recon-weight", "999999.9", "--out-dir", "x"])
    config = ModelConfig(beta=args.beta[0], recon_weight=args.recon_weight[0])  # does not raise
    assert (config.beta, config.recon_weight) == (999999.9, 999999.9)


# -- the batched group gives back what it trained when it is closed -----------------------------------------


def test_closing_a_batched_group_leaves_the_weights_of_the_last_logged_step(mnist_300) -> None:
    import torch

    from explorer.config import ModelConfig, TrainConfig, replace
    from explorer.models import build_model, config_for_data

    config = config_for_data(ModelConfig(preset="vae", latent_dim=2, hidden_dims=(16,)), mnist_300.image_shape, 0)
    models = []
    for beta in (0.5, 2.0):
        torch.manual_seed(0)
        models.append(build_model(replace(config, beta=beta)))
    ended: dict[int, object] = {}
    events = train_together(models, mnist_300, TrainConfig(epochs=3, batch_size=100, device="cpu", precision="fp32",
                                                           log_every=1),
                            on_result=ended.__setitem__)
    snapshot = None
    for item in events:
        if isinstance(item.event, Snapshot) and item.run == 1 and item.event.epoch == 1:
            snapshot = item.event.state_dict
            break
    events.close()
    assert snapshot is not None and ended == {}
    assert all(torch.equal(models[1].state_dict()[k].cpu(), v) for k, v in snapshot.items())


def test_resume_trusts_the_files_not_a_tampered_sweep_json(tmp_path: Path, monkeypatch) -> None:
    """A finished checkpoint that sweep.json does not list (the process died between the two
    writes) is read from the file; a listed file outside the run's own names is never removed."""
    import json

    out = tmp_path / "sweep"
    signal_in_group(monkeypatch, 2, first_epoch_end)
    rc, _, err = run(*sweep_args(out))
    assert rc == 130, err
    monkeypatch.undo()
    victim = tmp_path / "victim.safetensors"
    victim.write_bytes(b"keep me")
    manifest = json.loads((out / "sweep.json").read_text())
    del manifest["finished"]["vae-beta2-z2"]
    manifest["interrupted"]["vae-beta0.5-z3"]["files"].insert(0, "../victim.safetensors")
    (out / "sweep.json").write_text(json.dumps(manifest))
    kept = (out / FINISHED[1]).read_bytes()
    rc, _, err = run(*sweep_args(out, "--resume"))
    assert rc == 0, err
    assert (out / FINISHED[1]).read_bytes() == kept and victim.read_bytes() == b"keep me"
    assert [(r["name"], r["status"]) for r in rows(out)] == [(name, "completed") for name in ALL]

    (out / "sweep.json").write_text("{not json")
    rc, _, err = run(*sweep_args(out, "--resume"))
    assert_user_error(rc, err, "sweep.json", "damaged")
