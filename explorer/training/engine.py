"""The training loop as a plain generator.

``train(...)`` yields small frozen events and returns a :class:`RunResult`. It knows
nothing of threads or Qt: the CLI iterates it directly, tests drive it step by step, and
the GUI runs it in a worker thread and steers it through a :class:`TrainingControl`.

The whole dataset lives on the training device as uint8; batches are gathered by index
and scaled there, so there is no per-sample Python in the hot loop. Losses accumulate on
the device and are read back once every ``log_every`` steps, so a GPU is not stalled by a
sync per step.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator

import torch

from explorer.config import TrainConfig
from explorer.data.dataset import ImageData, to_float
from explorer.models.autoencoder import Autoencoder
from explorer.training.compiled import CompiledForward, CompiledStep, CompileFailed
from explorer.training.control import SetBeta, SetLearningRate, SetThreads, TrainingControl
from explorer.training.denormals import flushing_generator
from explorer.training.device import resolve_device, use_bf16, use_compile
from explorer.training.distributed import DistributedContext, all_reduce_sum
from explorer.training.evaluate import evaluate_tensors
from explorer.training.events import (
    EpochEnd,
    Event,
    Notice,
    Paused,
    Resumed,
    RunResult,
    RunStarted,
    SettingChanged,
    Snapshot,
    StepLoss,
)
from explorer.training.run_length import epochs_to_train, small_data_message
from explorer.training.timeline import TimelineFrame, TimelineRecorder, epoch_losses


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch has one for the device (CPU and CUDA
    in recent releases), else the multi-tensor one."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=device.type != "cpu" or None)


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the weights in the usual (contiguous) layout, whatever layout training uses."""
    return {k: v.detach().to("cpu", copy=True, memory_format=torch.contiguous_format)
            for k, v in model.state_dict().items()}


def whole_step_compiles(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether a compiled run compiles the whole step (CompiledStep) rather than the loss alone:
    the built-in MLP and conv models on the CPU, where it was measured (compiling only the
    loss made the conv step slower; its whole step compiled is a little faster)."""
    return (type(model) is Autoencoder and model.config.family in ("mlp", "conv") and device.type == "cpu"
            and not model.extra_part_names)


def train(model: Autoencoder, data: ImageData, cfg: TrainConfig, control: TrainingControl | None = None,
          start_epoch: int = 0, start_step: int = 0,
          timeline_from: TimelineFrame | None = None,
          dist: DistributedContext | None = None) -> Generator[Event | TimelineFrame, None, RunResult]:
    """Train ``model`` in place (see :func:`_train`); however the run ends, its weights are left
    in the usual memory layout (conv runs train channels-last on the CPU). Subnormal floats
    are flushed to zero while it trains (``denormals.py``)."""
    try:
        return (yield from flushing_generator(
            _train(model, data, cfg, control, start_epoch, start_step, timeline_from, dist)))
    finally:
        if model.config.family == "conv":
            model.to(memory_format=torch.contiguous_format)


def _train(model: Autoencoder, data: ImageData, cfg: TrainConfig, control: TrainingControl | None = None,
           start_epoch: int = 0, start_step: int = 0,
           timeline_from: TimelineFrame | None = None,
           dist: DistributedContext | None = None) -> Generator[Event | TimelineFrame, None, RunResult]:
    """Train ``model`` in place for ``cfg.epochs`` epochs (numbered after ``start_epoch``),
    or more when ``cfg.min_steps`` asks for more steps than that on small data (a Notice
    says so; RunStarted.epochs is the raised count). With ``cfg.timeline`` a TimelineFrame
    follows each EpochEnd; ``timeline_from`` (the last frame of the run being continued)
    aligns the first one to it.

    With ``dist`` (one process of a torchrun group) the model trains under DDP: every
    process draws the same seeded permutation and takes its share of each global batch of
    ``cfg.batch_size`` images; the losses reported and the test metrics are those of the
    whole batch and the whole test split, the same on every process."""
    control = control if control is not None else TrainingControl()
    device = dist.device if dist is not None else resolve_device(cfg.device)
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    # Mixed precision: matrix products in bfloat16 where that is fast, with float32
    # weights, optimizer state, losses and evaluation.
    bf16 = use_bf16(cfg.precision, device)
    # Every process shuffles alike (the same global batches) but draws its own noise.
    torch.manual_seed(cfg.seed + start_epoch + 1_000_003 * rank)
    shuffle = torch.Generator().manual_seed(cfg.seed + start_epoch)
    model.to(device)
    # oneDNN's bf16 convolutions want channels-last (NHWC): about 1.25x the conv-vae step on the
    # CPU. The weights go back to the usual layout when the run ends (see the finally below).
    channels_last = model.config.family == "conv" and device.type == "cpu" and dist is None  # DDP buckets: usual layout
    if channels_last:
        model.to(memory_format=torch.channels_last)
    conditional = model.is_conditional
    train_x = data.train_images.to(device)
    train_y = data.train_labels.to(device) if conditional and data.train_labels is not None else None
    test_x = data.test_images.to(device)
    test_y = data.test_labels.to(device) if conditional and data.test_labels is not None else None
    dynamic = data.binarize_train
    n = train_x.shape[0]
    batch = min(cfg.batch_size, n)
    whole_step: CompiledStep | None = None
    if dist is None:
        compiled = use_compile(cfg.compile, device, model.config.family, cfg.epochs * math.ceil(n / batch))
        if compiled and whole_step_compiles(model, device):
            whole_step = CompiledStep(model, cfg.lr, bf16=bf16, binarize=data.binarize_train,
                                      channels_last=channels_last)
        forward = CompiledForward(model) if compiled and whole_step is None else model
    else:
        if batch % world:
            from explorer.errors import ConfigError

            raise ConfigError(f"the batch size {batch} does not split evenly over {world} processes; give a "
                              f"--batch-size that is a multiple of {world} (it is the global batch)")
        compiled = False  # DDP's gradient hooks are not traced here; the step runs eagerly
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    # A compiled step is specialised to one batch shape; a short last batch would cost a
    # second compile, so compiled runs drop it (the shuffle differs every epoch).
    steps_per_epoch = n // batch if compiled else math.ceil(n / batch)
    if dist is not None and 0 < n % batch < world:
        steps_per_epoch = n // batch  # a last batch too short to give every process an image
    epoch_samples = min(steps_per_epoch * batch, n)
    names = model.part_names
    opt = make_optimizer(model, cfg.lr, device)
    lr = cfg.lr
    epochs = epochs_to_train(cfg, steps_per_epoch, start_step)
    # The timeline encodes the same test subset at every epoch end (in eval mode, without
    # drawing random numbers, so the run trains exactly as it would without it).
    recorder = TimelineRecorder(data) if cfg.timeline and rank == 0 else None
    if recorder is not None:
        recorder.align_to(timeline_from)

    yield RunStarted(device=str(device), precision="bf16" if bf16 else "fp32", epochs=epochs,
                     steps_per_epoch=steps_per_epoch,
                     train_size=n, test_size=int(test_x.shape[0]), start_epoch=start_epoch, compiled=compiled)
    if epochs != cfg.epochs:
        yield Notice(small_data_message(n, steps_per_epoch, cfg.epochs, epochs, cfg.min_steps))

    global_step = start_step
    good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    good_step = global_step
    last_snapshot = time.perf_counter()
    epochs_done = start_epoch

    def result(status: str, message: str = "") -> RunResult:
        return RunResult(status=status, epochs_completed=epochs_done, global_step=global_step,
                         message=message, beta=model.beta)

    for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=shuffle).to(device)
        epoch_sum = torch.zeros(1 + len(names), device=device)
        window_sum = torch.zeros_like(epoch_sum)
        window_samples = 0
        epoch_start = window_start = time.perf_counter()
        for step in range(1, steps_per_epoch + 1):
            if control.stop_requested:
                return result("stopped")
            if control.pause_requested:
                yield Paused(global_step)
                while control.pause_requested and not control.stop_requested:
                    control.wait_while_paused(0.1)
                if control.stop_requested:
                    return result("stopped")
                yield Resumed(global_step)
                window_start = time.perf_counter()
            for command in control.drain():
                if isinstance(command, SetLearningRate):
                    lr = command.value
                    for group in opt.param_groups:
                        group["lr"] = lr
                    if whole_step is not None:
                        whole_step.set_lr(lr)
                    yield SettingChanged("lr", lr)
                elif isinstance(command, SetBeta):
                    model.beta = command.value
                    yield SettingChanged("beta", command.value)
                elif isinstance(command, SetThreads):
                    torch.set_num_threads(command.value if command.value > 0 else (os.cpu_count() or 1))

            idx = perm[(step - 1) * batch: step * batch]
            global_count = idx.numel()
            if world > 1:
                idx = idx[rank::world]
            terms = None
            if whole_step is not None:
                try:
                    terms = whole_step(train_x, train_y, idx)  # the batch is gathered inside the graph
                except CompileFailed:
                    yield Notice(f"Compiling the model failed ({whole_step.failure}); training goes on uncompiled.")
                    whole_step = None
            if terms is None:
                xb = to_float(train_x[idx])
                if dynamic:
                    # Dynamic binarisation: a fresh binary draw of the batch, on the device, from
                    # the run's torch seed like the rest of training.
                    xb = torch.bernoulli(xb)
                yb = train_y[idx] if train_y is not None else None
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = forward(xb, yb)
                opt.zero_grad(set_to_none=True)
                if world > 1 and idx.numel() * world != global_count:
                    # DDP averages the processes' gradients; shares of unequal size are weighted
                    # so the step is that of the whole batch's mean loss.
                    (out.loss * (idx.numel() * world / global_count)).backward()
                else:
                    out.loss.backward()
                opt.step()
                terms = torch.stack([out.loss.detach(), *(out.parts[k].detach() for k in names)])
            global_step += 1
            if isinstance(forward, CompiledForward) and forward.failure is not None:
                yield Notice(f"Compiling the model failed ({forward.failure}); training goes on uncompiled.")
                forward = model
            with torch.no_grad():
                window_sum += terms * idx.numel()
            window_samples += idx.numel()

            if step % cfg.log_every == 0 or step == steps_per_epoch:
                # A NaN gradient can poison the weights while the loss that produced it was
                # still finite, so the weights are checked too before they count as good.
                # A sum is finite exactly when every term is (short of overflowing float32,
                # which weights never reach), and costs a third of isfinite().all().
                weights_ok = torch.isfinite(torch.stack([p.detach().sum() for p in model.parameters()])).all()
                if dist is not None:
                    # One collective: every process's sums, image counts and weight checks.
                    shared = all_reduce_sum(torch.cat([window_sum, torch.tensor(
                        [float(window_samples), float(not bool(weights_ok))], device=device)]))
                    window_sum.copy_(shared[:-2])
                    window_samples = int(round(float(shared[-2])))
                    weights_ok = torch.tensor(float(shared[-1]) == 0.0)
                values = (window_sum / window_samples).tolist()
                if not (all(math.isfinite(v) for v in values) and bool(weights_ok)):
                    model.load_state_dict(good_state)
                    # The views (and a "continue with a lower learning rate") start from these.
                    yield Snapshot(epoch, good_step, cpu_state_dict(model))
                    if all(math.isfinite(v) for v in values):
                        what = "the weights became NaN or infinite"
                    else:
                        what = "the loss became " + ("infinite" if any(math.isinf(v) for v in values) else "NaN")
                    return result("diverged",
                                  f"{what} at epoch {epoch}, step {step}; the weights from step "
                                  f"{good_step} (the last good ones) were kept. Try a lower learning rate "
                                  f"(it was {lr:g}).")
                current = model.state_dict()
                for k, v in good_state.items():
                    v.copy_(current[k])
                good_step = global_step
                now = time.perf_counter()
                yield StepLoss(epoch=epoch, step=step, global_step=global_step, loss=values[0],
                               parts=dict(zip(names, values[1:])),
                               samples_per_s=window_samples / max(now - window_start, 1e-9), lr=lr,
                               beta=model.beta)
                epoch_sum += window_sum
                window_sum.zero_()
                window_samples = 0
                window_start = now
                if cfg.snapshot_interval_s is not None and now - last_snapshot >= cfg.snapshot_interval_s:
                    yield Snapshot(epoch, global_step, cpu_state_dict(model))
                    last_snapshot = time.perf_counter()

        train_seconds = time.perf_counter() - epoch_start
        train_means = (epoch_sum / epoch_samples).tolist()
        if dist is None:
            test_metrics = evaluate_tensors(model, test_x, test_y, cfg.eval_batch_size, seed=cfg.seed)
        else:
            test_metrics = _evaluate_shared(model, test_x, test_y, cfg, dist)
        if not all(math.isfinite(v) for v in test_metrics.values()):
            bad = ", ".join(k for k, v in test_metrics.items() if not math.isfinite(v))
            return result("diverged", f"the test loss ({bad}) became NaN or infinite after epoch {epoch}; the "
                                      f"weights are kept as they are. Try a lower learning rate (it was {lr:g}).")
        epochs_done = epoch
        yield EpochEnd(epoch=epoch, train=dict(zip(("loss", *names), train_means)), test=test_metrics,
                       seconds=time.perf_counter() - epoch_start,
                       samples_per_s=epoch_samples / max(train_seconds, 1e-9))
        if recorder is not None:
            yield recorder.frame(model, epoch, global_step, epoch_losses(dict(zip(("loss", *names), train_means)),
                                                                        test_metrics))
        yield Snapshot(epoch, global_step, cpu_state_dict(model))
        last_snapshot = time.perf_counter()
    return result("completed")


def _evaluate_shared(model: Autoencoder, test_x: torch.Tensor, test_y: torch.Tensor | None, cfg: TrainConfig,
                     dist: DistributedContext) -> dict[str, float]:
    """The whole test split's metrics, each process evaluating one contiguous share and
    the image-weighted sums added over all of them."""
    total = test_x.shape[0]
    lo, hi = total * dist.rank // dist.world_size, total * (dist.rank + 1) // dist.world_size
    names = ("loss", *model.part_names)
    device = test_x.device
    if hi > lo:
        part = evaluate_tensors(model, test_x[lo:hi], test_y[lo:hi] if test_y is not None else None,
                                cfg.eval_batch_size, seed=cfg.seed + dist.rank)
        sums = torch.tensor([part[k] * (hi - lo) for k in names], device=device, dtype=torch.float64)
    else:
        sums = torch.zeros(len(names), device=device, dtype=torch.float64)
    sums = all_reduce_sum(sums)
    return dict(zip(names, (sums / max(total, 1)).tolist()))


def drive(events: Generator[Event, None, RunResult], on_event: Callable[[Event], None]) -> RunResult:
    """Run ``events`` (a :func:`train` generator) to its end, handing each event to
    ``on_event``, and return the generator's :class:`RunResult`. A ``for`` loop would drop
    that result (it travels in ``StopIteration``), so every caller goes through here.
    Exceptions from the run or from ``on_event`` (KeyboardInterrupt too) propagate."""
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        on_event(event)


def run_to_end(events: Generator[Event, None, RunResult]) -> tuple[list[Event], RunResult]:
    """Drive a run with no listener (tests, scripts): every event, and the result."""
    seen: list[Event] = []
    return seen, drive(events, seen.append)
