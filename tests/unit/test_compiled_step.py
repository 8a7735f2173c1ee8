"""The compiled training step: the path CUDA takes by default, exercised on the CPU here
(this project has no GPU to test on), and its fallback when compiling fails."""

from __future__ import annotations

import math

import pytest
import torch

from explorer.config import TrainConfig
from explorer.config import replace as replace_config
from explorer.data.dataset import ImageData
from explorer.errors import ConfigError
from explorer.models import PRESETS, build_model, config_for_data
from explorer.training import compiled as compiled_module
from explorer.training.control import TrainingControl
from explorer.training.device import use_compile
from explorer.training.engine import run_to_end, train
from explorer.training.events import EpochEnd, Notice, RunStarted, SettingChanged, StepLoss

pytestmark = pytest.mark.usefixtures("single_thread_torch", "compile_in_this_thread")


@pytest.fixture
def compile_in_this_thread():
    """Inductor otherwise starts a process-wide pool of compile threads that outlives the
    test (and trips the suite's leaked-thread check); one compile thread starts none."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(compile_threads=1):
        yield


def vae():
    torch.manual_seed(0)
    return build_model(config_for_data(PRESETS["vae"].model, (1, 28, 28), 10))


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=64, lr=1e-3, seed=0, device="cpu", log_every=1, precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


def test_auto_compiles_on_cuda_only_and_on_off_are_obeyed() -> None:
    assert use_compile("auto", torch.device("cuda")) is True
    assert use_compile("auto", torch.device("cpu")) is False
    assert use_compile("auto", torch.device("mps")) is False
    assert use_compile("on", torch.device("cpu")) is True
    assert use_compile("off", torch.device("cuda")) is False
    with pytest.raises(ConfigError, match="compile must be one of"):
        TrainConfig(compile="sometimes")


def test_a_compiled_run_trains_drops_the_short_batch_and_takes_a_new_beta(mnist_300: ImageData) -> None:
    model = vae()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    control = TrainingControl()
    events = []
    gen = train(model, mnist_300, cfg(epochs=2, compile="on"), control)
    for event in gen:
        events.append(event)
        if isinstance(event, EpochEnd) and event.epoch == 1:
            control.set_beta(0.25)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.compiled is True
    assert started.steps_per_epoch == 300 // 64  # the short last batch of 44 is dropped
    assert not [e for e in events if isinstance(e, Notice)], "compiling should have worked here"
    steps = [e for e in events if isinstance(e, StepLoss)]
    assert len(steps) == 2 * (300 // 64)
    assert all(math.isfinite(s.loss) for s in steps)
    assert any(isinstance(e, SettingChanged) and e.name == "beta" for e in events)
    late = [s for s in steps if s.epoch == 2]
    # the loss the compiled step reports is weighted with the new beta
    for s in late:
        assert s.loss == pytest.approx(s.parts["recon"] + 0.25 * s.parts["kl"], rel=1e-4)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_compiled_and_eager_steps_compute_the_same_loss(mnist_300: ImageData) -> None:
    # a plain AE: no sampling, whose random numbers differ between compiled and eager code
    torch.manual_seed(0)
    model = build_model(config_for_data(PRESETS["ae"].model, (1, 28, 28), 10))
    model.train()
    x = mnist_300.train_images[:64].float() / 255
    torch.manual_seed(3)
    eager = model(x)
    step = compiled_module.CompiledForward(model)
    torch.manual_seed(3)
    out = step(x, None)
    assert step.compiled and step.failure is None
    assert out.loss.item() == pytest.approx(eager.loss.item(), rel=1e-5)
    assert out.parts.keys() == eager.parts.keys()


def test_a_failed_compile_says_so_and_trains_uncompiled(mnist_300: ImageData,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C compiler found\nlong details that should not reach the user")
        return run

    def broken_graph(step, args):
        raise RuntimeError("no C compiler found\nlong details that should not reach the user")

    monkeypatch.setattr(compiled_module.torch, "compile", broken_compile)  # the loss alone (CUDA)
    monkeypatch.setattr(compiled_module, "_compile_graph", broken_graph)  # the whole step (the CPU)
    model = vae()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    events, result = run_to_end(train(model, mnist_300, cfg(compile="on")))
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1
    assert "no C compiler found" in notices[0].message and "\n" not in notices[0].message
    assert "uncompiled" in notices[0].message
    assert result.status == "completed"
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_auto_compiles_long_mlp_runs_on_the_cpu_only() -> None:
    from explorer.training.device import CPU_COMPILE_MIN_STEPS

    cpu = torch.device("cpu")
    assert use_compile("auto", cpu, "mlp", CPU_COMPILE_MIN_STEPS) is True
    assert use_compile("auto", cpu, "mlp", CPU_COMPILE_MIN_STEPS - 1) is False
    assert use_compile("auto", cpu, "conv", 10 * CPU_COMPILE_MIN_STEPS) is False
    assert use_compile("off", cpu, "mlp", 10 * CPU_COMPILE_MIN_STEPS) is False


def test_the_whole_compiled_step_takes_torchs_adam_step(mnist_300: ImageData) -> None:
    # a plain AE in fp32: no sampling, so compiled and eager steps see the same numbers
    torch.manual_seed(0)
    config = config_for_data(PRESETS["deep-ae"].model, (1, 28, 28), 10)
    eager, compiled = build_model(config), build_model(config)
    compiled.load_state_dict(eager.state_dict())
    step = compiled_module.CompiledStep(compiled, lr=1e-3)
    opt = torch.optim.Adam(eager.parameters(), lr=1e-3)
    for i in range(3):
        x = mnist_300.train_images[i * 64:(i + 1) * 64].float() / 255
        terms = step(x, None)
        out = eager(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        assert terms[0].item() == pytest.approx(out.loss.item(), rel=1e-5)
    assert step.failure is None
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        # Fused kernels sum in another order, and where a gradient is near zero Adam's
        # normalised step magnifies that rounding: a few millionths, far below one step (1e-3).
        assert torch.allclose(a, b, atol=2e-5, rtol=1e-5), name
    step.set_lr(0.0)  # a new lr is a value, not a new graph: no step at all now
    before = {k: v.clone() for k, v in compiled.state_dict().items()}
    step(mnist_300.train_images[:64].float() / 255, None)
    assert all(torch.equal(before[k], v) for k, v in compiled.state_dict().items())


def test_the_compiled_group_step_is_each_runs_own_adam_step_with_its_own_rate(mnist_300: ImageData) -> None:
    from explorer.training.batched import StackedAutoencoders, make_stacked_optimizer

    # plain AEs in fp32: no sampling, so compiled and eager steps see the same numbers
    config = config_for_data(PRESETS["deep-ae"].model, (1, 28, 28), 10)
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(build_model(config))
    eager, compiled = StackedAutoencoders(models), StackedAutoencoders(models)
    step = compiled_module.CompiledStackedStep(compiled, lr=1e-3, bf16=False)
    opt = make_stacked_optimizer(list(eager.params.values()), 1e-3)
    x_all = mnist_300.train_images.float() / 255
    for i in range(3):
        x = torch.stack([x_all[(i + r) * 32:(i + r + 1) * 32] for r in range(3)])
        terms = step(x, None, None)
        loss, _parts = eager.parts(x)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        assert terms.shape == (3, 1 + len(eager.names))
        assert torch.allclose(terms[:, 0], loss.detach(), rtol=1e-5)
    assert step.failure is None
    for k, v in eager.params.items():
        assert torch.allclose(v, compiled.params[k], atol=2e-5, rtol=1e-5), k

    # one rate per run: run 1 frozen, the others move; a run that leaves keeps nothing behind
    step.set_lr(torch.tensor([1e-3, 0.0, 1e-3]))
    before = {k: v.detach().clone() for k, v in compiled.params.items()}
    step(torch.stack([x_all[:32]] * 3), None, None)
    for k, v in compiled.params.items():
        assert torch.equal(v[1], before[k][1]), k
    assert any(not torch.equal(v[0], before[k][0]) for k, v in compiled.params.items())
    compiled.keep([0, 1])
    step.keep([0, 1])
    frozen = {k: v.detach().clone() for k, v in compiled.params.items()}
    terms = step(torch.stack([x_all[:32]] * 2), None, None)
    assert terms.shape[0] == 2
    for k, v in compiled.params.items():
        assert torch.equal(v[1], frozen[k][1]), k


def test_a_sweep_compiles_its_group_step_and_reaches_the_eager_groups_losses(mnist_300: ImageData) -> None:
    from explorer.training.batched import train_together

    def group():
        models = []
        for seed, beta in ((0, 0.5), (1, 2.0)):
            torch.manual_seed(seed)
            model = build_model(config_for_data(PRESETS["vae"].model, (1, 28, 28), 10))
            model.beta = beta
            models.append(model)
        return models

    runs = {}
    for mode in ("on", "off"):
        cfgs = [cfg(compile=mode, epochs=2, seed=s, log_every=2) for s in (0, 1)]
        events, results = run_to_end(train_together(group(), mnist_300, cfgs))
        assert [r.status for r in results] == ["completed", "completed"]
        started = [e.event for e in events if isinstance(e.event, RunStarted)]
        assert [s.compiled for s in started] == [mode == "on"] * 2
        assert not [e for e in events if isinstance(e.event, Notice) and "failed" in e.event.message]
        runs[mode] = [[e.event for e in events if e.run == r and isinstance(e.event, EpochEnd)][-1] for r in (0, 1)]
    for run, (model, on) in enumerate(zip(group(), runs["on"])):
        # the engine's compiled run alone drops the short batch too; its noise comes from
        # another stream, so the two are close, not equal
        single, _ = run_to_end(train(model, mnist_300, cfg(compile="on", epochs=2, seed=run, log_every=2)))
        alone = [e for e in single if isinstance(e, EpochEnd)][-1]
        assert on.test["loss"] == pytest.approx(alone.test["loss"], rel=0.03)
    assert runs["on"][0].test["kl"] > runs["on"][1].test["kl"], "each run kept its own beta"


@pytest.mark.parametrize("preset", ["conv-vae", "conv-cvae"])
def test_a_conv_models_whole_step_compiles_and_takes_the_eager_steps(mnist_300: ImageData, preset: str) -> None:
    config = config_for_data(PRESETS[preset].model, (1, 28, 28), 10)
    torch.manual_seed(0)
    eager, compiled = build_model(config), build_model(config)
    compiled.load_state_dict(eager.state_dict())
    eager.to(memory_format=torch.channels_last)
    compiled.to(memory_format=torch.channels_last)
    step = compiled_module.CompiledStep(compiled, lr=1e-3)
    opt = torch.optim.Adam(eager.parameters(), lr=1e-3)
    for i in range(2):
        x = (mnist_300.train_images[i * 32:(i + 1) * 32].float() / 255).contiguous(memory_format=torch.channels_last)
        y = mnist_300.train_labels[i * 32:(i + 1) * 32] if config.conditional else None
        torch.manual_seed(i)
        terms = step(x, y)
        torch.manual_seed(i)
        out = eager(x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        # the reparameterisation noise differs (compiled graphs draw their own): close, not equal
        assert terms[0].item() == pytest.approx(out.loss.item(), rel=0.05)
    assert step.failure is None
    moved = [not torch.equal(a, b) for a, b in zip(build_model(config).state_dict().values(),
                                                     compiled.state_dict().values())]
    assert any(moved)


def test_a_batch_gathered_inside_the_graph_is_the_batch_gathered_outside(mnist_300: ImageData) -> None:
    # a plain AE in fp32: no sampling, so both steps see the same numbers
    torch.manual_seed(0)
    config = config_for_data(PRESETS["deep-ae"].model, (1, 28, 28), 10)
    outside, inside = build_model(config), build_model(config)
    inside.load_state_dict(outside.state_dict())
    step_outside = compiled_module.CompiledStep(outside, lr=1e-3)
    step_inside = compiled_module.CompiledStep(inside, lr=1e-3)
    images = mnist_300.train_images
    for i in range(3):
        idx = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(i))[:64]
        a = step_outside(images[idx].float() / 255, None)
        b = step_inside(images, None, idx)
        assert torch.equal(a, b)
    for (name, a), b in zip(outside.state_dict().items(), inside.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_gather_binarises_lays_out_and_takes_the_labels_as_the_step_was_made_to(mnist_300: ImageData) -> None:
    idx = torch.arange(10, 42)
    batch, labels = compiled_module._BatchFrom(binarize=True, channels_last=True)(
        mnist_300.train_images, mnist_300.train_labels, idx)
    assert set(batch.unique().tolist()) == {0.0, 1.0}
    assert batch.is_contiguous(memory_format=torch.channels_last) and batch.dtype == torch.float32
    assert torch.equal(labels, mnist_300.train_labels[idx])
    gather = compiled_module._BatchFrom(binarize=False, channels_last=False)
    plain, no_labels = gather(mnist_300.train_images, None, idx)
    assert torch.equal(plain, mnist_300.train_images[idx].float() / 255) and no_labels is None


def test_a_compiled_conditional_conv_run_on_binarised_data_completes(mnist_300: ImageData) -> None:
    import dataclasses

    data = dataclasses.replace(mnist_300, binarize_train=True)
    torch.manual_seed(0)
    model = build_model(config_for_data(PRESETS["conv-cvae"].model, (1, 28, 28), 10))
    events, result = run_to_end(train(model, data, cfg(compile="on", epochs=1, log_every=2)))
    assert result.status == "completed"
    assert next(e for e in events if isinstance(e, RunStarted)).compiled
    assert not [e for e in events if isinstance(e, Notice) and "failed" in e.message]
    steps = [e for e in events if isinstance(e, StepLoss)]
    assert steps and all(math.isfinite(e.loss) for e in steps)
    assert steps[-1].loss < steps[0].loss
    assert model.mean_head.weight.is_contiguous()


def test_a_group_gathers_each_runs_batch_inside_the_graph_as_outside(mnist_300: ImageData) -> None:
    from explorer.training.batched import StackedAutoencoders

    # conditional plain AEs in fp32: no sampling, so both steps see the same numbers, labels too
    config = config_for_data(replace_config(PRESETS["deep-ae"].model, conditional=True, num_classes=10),
                             (1, 28, 28), 10)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model(config))
    outside, inside = StackedAutoencoders(models), StackedAutoencoders(models)
    step_outside = compiled_module.CompiledStackedStep(outside, lr=1e-3, bf16=False)
    step_inside = compiled_module.CompiledStackedStep(inside, lr=1e-3, bf16=False)
    images, labels = mnist_300.train_images, mnist_300.train_labels
    for i in range(2):
        idx = torch.stack([torch.randperm(300, generator=torch.Generator().manual_seed(10 * i + r))[:32]
                           for r in range(2)])
        a = step_outside(images[idx].float() / 255, labels[idx], None)
        b = step_inside(images, labels, None, idx)
        assert torch.equal(a, b)
    for k, v in outside.params.items():
        assert torch.equal(v, inside.params[k]), k
