"""A run's length: epochs are what was asked (``min_steps`` 0, the default of the CLI and the
window alike); a floor the user sets raises the epochs on small data (and says so), leaves
big data alone, and survives a checkpoint. The plan (``plan_run``/``describe_plan``) is what
the engine then trains, and the CLI's first line says it in the window's words."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)

from explorer.config import DataConfig, TrainConfig
from explorer.data.dataset import ImageData
from explorer.errors import ConfigError
from explorer.models import PRESETS, Autoencoder, build_model, config_for_data
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.engine import run_to_end, train
from explorer.training.events import EpochEnd, Notice, RunStarted
from explorer.training.run_length import (
    FEW_STEPS,
    describe_plan,
    epochs_to_train,
    plan_run,
    small_data_message,
    steps_per_epoch,
)

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def make(name: str = "ae") -> Autoencoder:
    torch.manual_seed(0)
    return build_model(config_for_data(PRESETS[name].model, (1, 28, 28), 10))


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 64, "lr": 1e-3, "device": "cpu", "log_every": 1, **kw})


# -- the arithmetic ------------------------------------------------------------------------


def test_a_small_dataset_gets_enough_epochs_for_the_minimum() -> None:
    # 405 images in batches of 128: 4 steps an epoch; 10 epochs are 40 steps
    assert epochs_to_train(cfg(epochs=10, min_steps=1000), steps_per_epoch=4) == 250
    assert epochs_to_train(cfg(epochs=10, min_steps=1001), steps_per_epoch=4) == 251  # whole epochs, rounded up


def test_a_big_dataset_and_min_steps_zero_keep_the_epochs() -> None:
    assert epochs_to_train(cfg(epochs=10, min_steps=1000), steps_per_epoch=469) == 10  # MNIST
    assert epochs_to_train(cfg(epochs=10, min_steps=40), steps_per_epoch=4) == 10  # exactly enough
    assert epochs_to_train(cfg(epochs=10, min_steps=0), steps_per_epoch=1) == 10


def test_a_continued_run_counts_the_steps_already_taken() -> None:
    assert epochs_to_train(cfg(epochs=10, min_steps=1000), steps_per_epoch=4, steps_done=1000) == 10
    assert epochs_to_train(cfg(epochs=10, min_steps=1000), steps_per_epoch=4, steps_done=900) == 25


def test_the_plan_is_the_engines_arithmetic_in_one_line() -> None:
    # 1,000 images in batches of 64: 16 steps an epoch (the last batch short)
    assert steps_per_epoch(1000, 64) == 16 and steps_per_epoch(1000, 64, drop_last=True) == 15
    assert steps_per_epoch(40, 64) == 1  # one batch of the whole split
    plan = plan_run(1000, 64, epochs=3)
    assert (plan.epochs, plan.steps_per_epoch, plan.total_steps, plan.raised) == (3, 16, 48, False)
    assert describe_plan(plan) == "3 epochs of 16 steps = 48 steps (few steps: the model may learn little)"
    raised = plan_run(1000, 64, epochs=3, min_steps=1000)
    assert (raised.epochs, raised.total_steps) == (63, 1008)
    assert raised.epochs == epochs_to_train(cfg(epochs=3, batch_size=64, min_steps=1000), 16)
    assert describe_plan(raised) == "3 epochs = 48 steps; will train 63 epochs (1,008 steps) to reach 1,000 steps"
    big = plan_run(60000, 128, epochs=10, min_steps=1000)
    assert describe_plan(big) == "10 epochs of 469 steps = 4,690 steps" and big.total_steps >= FEW_STEPS
    assert describe_plan(plan_run(5, 64, epochs=1)) == "1 epoch of 1 step = 1 step " \
                                                       "(few steps: the model may learn little)"


def test_the_cli_default_is_epochs_as_asked_and_a_bad_floor_is_refused() -> None:
    from cli_runner import assert_usage_error

    from explorer.cli.parse import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--out", "x.safetensors"]).min_steps == 0 == TrainConfig().min_steps
    assert parser.parse_args(["train", "--min-steps", "1000", "--out", "x.safetensors"]).min_steps == 1000
    for bad in ("-1", "1.5", "lots", "10000001"):
        rc, _, err = run("train", "--min-steps", bad, "--out", "x.safetensors")
        assert_usage_error(rc, err, "--min-steps")


def test_the_notice_is_one_plain_sentence() -> None:
    assert small_data_message(405, 4, 10, 250, 1000) == (
        "The dataset is small (405 training images, 4 steps per epoch): training 250 epochs instead of 10, "
        "so the model takes at least 1,000 steps.")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1000", None, 10**9])
def test_a_bad_min_steps_is_a_config_error(bad) -> None:
    with pytest.raises(ConfigError, match="minimum steps"):
        TrainConfig(min_steps=bad)


# -- the engine ----------------------------------------------------------------------------


def test_the_engine_trains_a_tiny_dataset_for_the_minimum_steps_and_says_so(mnist_300: ImageData) -> None:
    tiny = mnist_300.limited(40)  # 40 images in batches of 64: one step an epoch
    events, result = run_to_end(train(make(), tiny, cfg(epochs=2, min_steps=7)))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert (started.epochs, started.steps_per_epoch) == (7, 1)  # what the progress bar totals
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert notices == ["The dataset is small (40 training images, 1 step per epoch): training 7 epochs "
                       "instead of 2, so the model takes at least 7 steps."]
    assert events.index(started) < next(i for i, e in enumerate(events) if isinstance(e, Notice))
    assert result.status == "completed" and result.global_step == 7 and result.epochs_completed == 7
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == list(range(1, 8))


def test_the_engine_leaves_a_big_enough_dataset_alone(mnist_300: ImageData) -> None:
    # 300 images in batches of 64: 5 steps an epoch, 2 epochs = 10 steps >= the minimum
    for min_steps in (0, 10):
        events, result = run_to_end(train(make(), mnist_300, cfg(epochs=2, min_steps=min_steps)))
        assert next(e for e in events if isinstance(e, RunStarted)).epochs == 2
        assert not any(isinstance(e, Notice) for e in events)
        assert result.global_step == 10 and result.epochs_completed == 2


def test_min_steps_zero_trains_a_tiny_dataset_exactly_as_asked(mnist_300: ImageData) -> None:
    events, result = run_to_end(train(make(), mnist_300.limited(40), cfg(epochs=2)))
    assert not any(isinstance(e, Notice) for e in events)
    assert result.global_step == 2 and result.epochs_completed == 2


def test_a_continued_run_that_had_its_minimum_is_not_stretched(mnist_300: ImageData) -> None:
    tiny = mnist_300.limited(40)
    events, result = run_to_end(train(make(), tiny, cfg(epochs=2, min_steps=7), start_epoch=7, start_step=7))
    assert not any(isinstance(e, Notice) for e in events)
    assert result.epochs_completed == 9 and result.global_step == 9


# -- checkpoints and the CLI -----------------------------------------------------------------


def test_min_steps_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", make(), DataConfig(), cfg(epochs=10, min_steps=1000))
    assert load_checkpoint(path).train_config.min_steps == 1000
    assert TrainConfig.from_json(cfg(min_steps=1000).to_json()).min_steps == 1000


def test_a_checkpoint_from_before_min_steps_still_loads(tmp_path: Path) -> None:
    import json

    from hostile_files import checkpoint_parts
    from safetensors.torch import save as st_save

    path = save_checkpoint(tmp_path / "m.safetensors", make(), DataConfig(), cfg(epochs=3))
    tensors, metadata = checkpoint_parts(path.read_bytes())
    old = json.loads(metadata["train_config"])
    del old["min_steps"]
    metadata["train_config"] = json.dumps(old)
    (tmp_path / "old.safetensors").write_bytes(st_save(tensors, metadata=metadata))
    loaded = load_checkpoint(tmp_path / "old.safetensors").train_config
    assert loaded.min_steps == 0 and loaded.epochs == 3


def test_the_cli_keeps_epochs_as_asked_but_says_a_short_run_is_probably_too_short(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    rc, out, err = run("train", "--model", "ae", "--limit", 100, "--epochs", 2, "--device", "cpu",
                       "--out", tmp_path / "ae.safetensors")
    assert rc == 0, err
    assert [line for line in out.splitlines() if line.startswith("epoch ")][-1].startswith("epoch 2/2")
    short = [line for line in err.splitlines() if "too few" in line]
    assert len(short) == 1 and "only 2 training steps" in short[0], err
    assert load_checkpoint(tmp_path / "ae.safetensors").history.last_epoch == 2


def test_the_cli_says_the_plan_first_and_trains_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    # 100 images in batches of 32: 4 steps an epoch; 2 epochs are 8 steps, 5 reach the floor of 20
    plan = plan_run(100, 32, epochs=2, min_steps=20)
    assert (plan.epochs, plan.total_steps) == (5, 20)
    rc, out, err = run("train", "--model", "ae", "--limit", 100, "--epochs", 2, "--batch-size", 32,
                       "--min-steps", 20, "--device", "cpu", "--out", tmp_path / "ae.safetensors")
    assert rc == 0, err
    first = next(line for line in err.splitlines() if line.startswith("training ae on mnist"))
    assert first.endswith(": 2 epochs = 8 steps; will train 5 epochs (20 steps) to reach 20 steps "
                          "(few steps: the model may learn little)") and first.endswith(describe_plan(plan)), first
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    saved = load_checkpoint(tmp_path / "ae.safetensors")
    assert saved.history.last_epoch == 5 and saved.train_config.min_steps == 20
