"""The training engine: a generator of events, steered by a TrainingControl."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from explorer.config import TrainConfig
from explorer.data.dataset import ImageData
from explorer.errors import ConfigError
from explorer.models import PRESETS, Autoencoder, build_model, config_for_data
from explorer.training import engine
from explorer.training.control import TrainingControl
from explorer.training.device import resolve_device
from explorer.training.engine import run_to_end, train
from explorer.training.evaluate import evaluate_tensors
from explorer.training.events import (
    EpochEnd,
    Paused,
    Resumed,
    RunResult,
    RunStarted,
    SettingChanged,
    Snapshot,
    StepLoss,
)

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def make(name: str = "vae", seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return build_model(config_for_data(PRESETS[name].model, (1, 28, 28), 10))


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=64, lr=1e-3, seed=0, device="cpu", log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def all_finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(v).all().item() for v in model.state_dict().values())


def finish(gen) -> RunResult:
    return run_to_end(gen)[1]


# -- a whole run -------------------------------------------------------------------------


def test_a_two_epoch_run_yields_events_in_order(mnist_300: ImageData) -> None:
    model = make("vae")
    events, result = run_to_end(train(model, mnist_300, cfg(epochs=2, log_every=2)))
    kinds = [type(e).__name__ for e in events]
    # 300 images in batches of 64: 5 steps an epoch, losses reported at steps 2, 4 and 5
    per_epoch = ["StepLoss", "StepLoss", "StepLoss", "EpochEnd", "TimelineFrame", "Snapshot"]
    assert kinds == ["RunStarted", *per_epoch, *per_epoch]

    started = events[0]
    assert isinstance(started, RunStarted)
    assert (started.device, started.epochs, started.steps_per_epoch) == ("cpu", 2, 5)
    assert (started.train_size, started.test_size, started.start_epoch) == (300, 300, 0)

    steps = [e for e in events if isinstance(e, StepLoss)]
    assert [(s.epoch, s.step, s.global_step) for s in steps] == [
        (1, 2, 2), (1, 4, 4), (1, 5, 5), (2, 2, 7), (2, 4, 9), (2, 5, 10)]
    for s in steps:
        assert set(s.parts) == {"recon", "kl"}
        assert math.isfinite(s.loss) and s.samples_per_s > 0
        assert s.lr == 1e-3 and s.beta == 1.0
        assert s.loss == pytest.approx(s.parts["recon"] + s.parts["kl"], rel=1e-4)

    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in ends] == [1, 2]
    for end in ends:
        assert tuple(end.train) == ("loss", "recon", "kl")
        assert tuple(end.test) == ("loss", "recon", "kl")
        assert all(math.isfinite(v) for v in (*end.train.values(), *end.test.values()))
        assert end.seconds > 0 and end.samples_per_s > 0
    assert ends[1].train["loss"] < ends[0].train["loss"]  # it learns
    assert ends[1].test["loss"] < ends[0].test["loss"]

    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert [(s.epoch, s.global_step) for s in snaps] == [(1, 5), (2, 10)]
    for snap in snaps:
        assert snap.state_dict.keys() == model.state_dict().keys()
        assert all(t.device.type == "cpu" for t in snap.state_dict.values())
    assert same_weights(snaps[-1].state_dict, weights(model))

    assert result == RunResult(status="completed", epochs_completed=2, global_step=10, message="", beta=1.0)
    # the test metrics of the last epoch are those of the final model
    again = evaluate_tensors(model, mnist_300.test_images, None, 1000, seed=0)
    assert again == pytest.approx(ends[-1].test, rel=1e-5)


def test_epoch_means_are_weighted_by_batch_size(mnist_300: ImageData) -> None:
    events, _ = run_to_end(train(make("ae"), mnist_300, cfg(batch_size=128, log_every=1)))
    steps = [e for e in events if isinstance(e, StepLoss)]
    (end,) = [e for e in events if isinstance(e, EpochEnd)]
    assert [s.step for s in steps] == [1, 2, 3]  # 128 + 128 + 44
    expected = (128 * steps[0].loss + 128 * steps[1].loss + 44 * steps[2].loss) / 300
    assert end.train["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["cvae", "conv-ae", "sparse-ae"])
def test_other_families_train(name: str, mnist_300: ImageData) -> None:
    model = make(name)
    events, result = run_to_end(train(model, mnist_300, cfg(batch_size=100)))
    assert result.status == "completed"
    (end,) = [e for e in events if isinstance(e, EpochEnd)]
    assert tuple(end.test) == ("loss", *model.part_names)
    assert all(math.isfinite(v) for v in end.test.values())


def test_seeded_runs_are_reproducible(mnist_300: ImageData) -> None:
    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
        model = make("vae", seed=0)  # the same initial weights every time
        torch.manual_seed(12345)  # whatever the caller's global RNG holds must not matter
        events, result = run_to_end(train(model, mnist_300, cfg(seed=seed, log_every=2)))
        assert result.status == "completed"
        return weights(model), [e.loss for e in events if isinstance(e, StepLoss)]

    w0, losses0 = run(0)
    w0b, losses0b = run(0)
    w1, _ = run(1)
    assert same_weights(w0, w0b)
    assert losses0 == losses0b
    assert not same_weights(w0, w1)


# -- steering ----------------------------------------------------------------------------


def test_stop_from_inside_the_loop_ends_the_run_promptly(mnist_300: ImageData) -> None:
    control = TrainingControl()
    gen = train(make(), mnist_300, cfg(epochs=3, batch_size=32), control)
    assert isinstance(next(gen), RunStarted)
    first = next(gen)
    assert isinstance(first, StepLoss) and first.global_step == 1
    control.stop()
    with pytest.raises(StopIteration) as stop:
        next(gen)
    result = stop.value.value
    assert result.status == "stopped"
    assert result.global_step == 1 and result.epochs_completed == 0


def test_stop_before_the_first_step(mnist_300: ImageData) -> None:
    control = TrainingControl()
    control.stop()
    model = make()
    before = weights(model)
    events, result = run_to_end(train(model, mnist_300, cfg(), control))
    assert [type(e) for e in events] == [RunStarted]
    assert result.status == "stopped" and result.global_step == 0
    assert same_weights(before, weights(model))


def test_pause_then_resume_from_another_thread(mnist_300: ImageData) -> None:
    control = TrainingControl()
    gen = train(make(), mnist_300, cfg(batch_size=32), control)
    assert isinstance(next(gen), RunStarted)
    assert isinstance(next(gen), StepLoss)
    control.pause()
    paused = next(gen)
    assert paused == Paused(global_step=1)

    timer = threading.Timer(0.2, control.resume)
    start = time.perf_counter()
    timer.start()
    try:
        resumed = next(gen)  # blocks until the timer resumes the run
    finally:
        timer.cancel()
        timer.join()
    assert time.perf_counter() - start >= 0.15
    assert resumed == Resumed(global_step=1)
    following = next(gen)
    assert isinstance(following, StepLoss) and following.global_step == 2
    _, result = run_to_end(gen)
    assert result.status == "completed" and result.global_step == 10


def test_stop_while_paused_ends_the_run(mnist_300: ImageData) -> None:
    control = TrainingControl()
    gen = train(make(), mnist_300, cfg(batch_size=32), control)
    next(gen), next(gen)
    control.pause()
    assert isinstance(next(gen), Paused)
    timer = threading.Timer(0.1, control.stop)
    timer.start()
    try:
        with pytest.raises(StopIteration) as stop:
            next(gen)
    finally:
        timer.join()
    assert stop.value.value.status == "stopped"
    assert stop.value.value.global_step == 1


def test_lr_and_beta_commands_take_effect(mnist_300: ImageData, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[torch.optim.Optimizer] = []
    real = engine.make_optimizer

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(engine, "make_optimizer", spy)
    model = make("vae")
    control = TrainingControl()
    gen = train(model, mnist_300, cfg(batch_size=32), control)
    next(gen), next(gen)
    (opt,) = made
    assert opt.param_groups[0]["lr"] == 1e-3

    control.set_lr(1e-4)
    control.set_beta(2.0)
    assert next(gen) == SettingChanged("lr", 1e-4)
    assert next(gen) == SettingChanged("beta", 2.0)
    assert all(group["lr"] == 1e-4 for group in opt.param_groups)
    assert model.beta == 2.0
    step = next(gen)
    assert isinstance(step, StepLoss)
    assert step.lr == 1e-4 and step.beta == 2.0
    assert step.loss == pytest.approx(step.parts["recon"] + 2.0 * step.parts["kl"], rel=1e-4)
    _, result = run_to_end(gen)
    assert result.status == "completed" and result.beta == 2.0


# -- divergence --------------------------------------------------------------------------


def inject(model: Autoencoder, monkeypatch: pytest.MonkeyPatch, at_call: int, poison) -> None:
    """Make the ``at_call``-th training forward pass return ``poison(output)``."""
    real = model.forward
    calls = {"n": 0}

    def forward(x, y=None):
        out = real(x, y)
        if model.training:
            calls["n"] += 1
            if calls["n"] == at_call:
                out = poison(out)
        return out

    monkeypatch.setattr(model, "forward", forward)


def nan_loss(out):
    out.loss = out.loss * float("nan")
    return out


@pytest.mark.parametrize("log_every, nan_step, good_step", [(1, 3, 2), (4, 6, 4)])
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_weights(
        mnist_300: ImageData, monkeypatch: pytest.MonkeyPatch, log_every: int, nan_step: int,
        good_step: int) -> None:
    model = make("vae")
    inject(model, monkeypatch, nan_step, nan_loss)
    gen = train(model, mnist_300, cfg(batch_size=32, log_every=log_every))
    good = None
    last_reported = None
    events = []
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        events.append(event)
        if isinstance(event, StepLoss):
            good = weights(model)  # what the model held when it last reported a finite loss
            last_reported = event.global_step
    assert last_reported == good_step
    assert result.status == "diverged"
    assert "NaN" in result.message
    assert "lower learning rate" in result.message
    assert f"step {good_step}" in result.message
    assert not any(isinstance(e, EpochEnd) for e in events)
    # one snapshot, of the last good weights, so the views and a retry start from them
    snapshots = [e for e in events if isinstance(e, Snapshot)]
    assert len(snapshots) == 1 and snapshots[0].global_step == good_step
    assert same_weights(snapshots[0].state_dict, good)
    assert all_finite(model)
    assert same_weights(weights(model), good)


def test_a_learning_rate_that_blows_up_is_reported_as_diverged(mnist_300: ImageData) -> None:
    model = make("vae")
    result = finish(train(model, mnist_300, cfg(epochs=3, batch_size=32, lr=1.0)))
    assert result.status == "diverged"
    assert "NaN" in result.message or "infinite" in result.message
    assert "learning rate" in result.message and "1" in result.message
    assert all_finite(model)


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient poisons the weights."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def nan_gradient(out):
    out.loss = _NanGradient.apply(out.loss)
    return out


def test_a_nan_gradient_does_not_leave_nan_weights(mnist_300: ImageData, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make("vae")
    inject(model, monkeypatch, 3, nan_gradient)
    result = finish(train(model, mnist_300, cfg(batch_size=32)))
    assert result.status == "diverged"
    assert all_finite(model)


# -- snapshots ---------------------------------------------------------------------------


def test_snapshots_are_independent_copies(mnist_300: ImageData) -> None:
    model = make("vae")
    events, _ = run_to_end(train(model, mnist_300, cfg(epochs=2, batch_size=100)))
    first, last = [e for e in events if isinstance(e, Snapshot)]
    # training on after the first snapshot did not change it
    assert not same_weights(first.state_dict, last.state_dict)
    kept = {k: v.clone() for k, v in last.state_dict.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert same_weights(last.state_dict, kept)
    for key, tensor in last.state_dict.items():
        assert tensor.untyped_storage().data_ptr() != model.state_dict()[key].untyped_storage().data_ptr()


def test_snapshot_interval_sends_snapshots_mid_epoch(mnist_300: ImageData) -> None:
    events, _ = run_to_end(train(make("ae"), mnist_300, cfg(batch_size=100, snapshot_interval_s=1e-9)))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["RunStarted", "StepLoss", "Snapshot", "StepLoss", "Snapshot", "StepLoss", "Snapshot",
                     "EpochEnd", "TimelineFrame", "Snapshot"]
    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert [s.global_step for s in snaps] == [1, 2, 3, 3]


# -- evaluation and devices --------------------------------------------------------------


def test_evaluate_tensors_is_deterministic_and_side_effect_free(mnist_300: ImageData) -> None:
    model = make("vae")
    model.train()
    images = mnist_300.test_images
    torch.manual_seed(42)
    rng_before = torch.get_rng_state()
    a = evaluate_tensors(model, images, None, batch_size=128, seed=0)
    b = evaluate_tensors(model, images, None, batch_size=128, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    assert model.training  # mode restored
    assert a == b
    assert tuple(a) == ("loss", "recon", "kl")
    assert a["loss"] == pytest.approx(a["recon"] + a["kl"], rel=1e-5)
    c = evaluate_tensors(model, images, None, batch_size=128, seed=1)
    assert c != a  # the seed sets the reparameterisation noise
    # batching does not change the means
    whole = evaluate_tensors(model, images, None, batch_size=1000, seed=0)
    assert whole["kl"] == pytest.approx(a["kl"], rel=1e-4)


def test_evaluate_tensors_for_a_conditional_model_uses_labels(mnist_300: ImageData) -> None:
    model = make("cvae")
    out = evaluate_tensors(model, mnist_300.test_images[:50], mnist_300.test_labels[:50], seed=0)
    wrong = evaluate_tensors(model, mnist_300.test_images[:50], (mnist_300.test_labels[:50] + 1) % 10, seed=0)
    assert out != wrong
    assert all(math.isfinite(v) for v in out.values())


def test_resolve_device_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="MPS"):
        resolve_device("mps")
    with pytest.raises(ConfigError):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_resolve_device_here_is_cpu() -> None:
    assert resolve_device("auto").type in ("cpu", "mps")
    if not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError):
        resolve_device("cuda")


def test_a_run_asking_for_missing_cuda_fails_before_training(mnist_300: ImageData,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError):
        next(train(make(), mnist_300, cfg(device="cuda")))


def test_a_conv_run_trains_channels_last_and_hands_back_the_usual_layout(mnist_300: ImageData,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = make("conv-vae")
    layouts = []
    forward = model.forward

    def spy(x, y=None):
        layouts.append((x.is_contiguous(memory_format=torch.channels_last),
                        model.encoder_body.convs[0].weight.is_contiguous(memory_format=torch.channels_last)))
        return forward(x, y)

    monkeypatch.setattr(model, "forward", spy)
    events, result = run_to_end(train(model, mnist_300, cfg(batch_size=100)))
    assert result.status == "completed"
    assert layouts and all(x and w for x, w in layouts[:3])  # the training steps ran channels-last
    assert all(p.is_contiguous() for p in model.parameters())
    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert snaps and all(t.is_contiguous() for t in snaps[-1].state_dict.values())


def test_a_run_trains_on_fewer_threads_when_asked_and_on_every_core_again(mnist_300: ImageData) -> None:
    """A window lends one of the run's cores to an evaluation beside it and takes it back."""
    import os

    control = TrainingControl()
    model = build_model(config_for_data(PRESETS["ae"].model, mnist_300.image_shape, mnist_300.num_classes))
    run = train(model, mnist_300, TrainConfig(epochs=3, batch_size=16, log_every=1, timeline=False), control)
    seen = []
    before = torch.get_num_threads()
    try:
        for event in run:
            if not isinstance(event, StepLoss):
                continue
            seen.append(torch.get_num_threads())  # the engine's own thread: this one
            if event.global_step == 2:
                control.set_threads(1)
            elif event.global_step == 4:
                control.set_threads(0)
            elif event.global_step == 6:
                control.stop()
    finally:
        torch.set_num_threads(before)
    assert seen[2:4] == [1, 1] and seen[4] == (os.cpu_count() or 1), seen
