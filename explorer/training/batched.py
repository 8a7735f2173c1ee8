"""Several runs of one architecture trained together: one batched forward per step.

A sweep (a few betas, or the lecture's "reconstruction only / KL only / both") trains
models that differ only in their loss weights and seed. On a CPU with few cores one small
MLP step leaves most of the machine idle in per-op overhead, so R runs train faster as one
program of R-times-larger ops than one after another: every parameter is stacked over runs,
``(R, out, in)``, and each layer is one ``torch.baddbmm`` over the runs' own batches.

Each run stays what :func:`explorer.training.engine.train` would make of it:

- its own initial weights (the models passed in, built as ``prepare_run`` builds them);
- its own shuffle order and its own noise (reparameterisation, dynamic binarisation, input
  corruption), each from a generator seeded as the engine seeds its global one, so on the
  CPU a run draws the very numbers it would draw alone;
- its own beta and reconstruction weight (the summed loss has no cross terms, so each
  run's gradient is that of its own loss);
- its own Adam: Adam is elementwise and all runs take the same steps, so one Adam over the
  stacked tensors is R independent Adams (``tests/unit/test_batched.py`` checks it);
- its own NaN guard: **a diverging run stops alone**. Its model gets its last good
  weights, its result says "diverged", and it leaves the group (its rows are cut out of
  the stacked weights and the Adam state); the others train on untouched.

Conv-family models (and a "group" of one) train one after another through
``engine.train``, with the same events: grouped convolutions would batch them too, but the
MLP family is where the per-op overhead dominates.

Events come tagged with the run they belong to (:class:`RunEvent`); the generator returns
one :class:`RunResult` per run, in order, and ``engine.drive`` runs it like a single run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import torch

from explorer.config import ModelConfig, TrainConfig, replace
from explorer.data.dataset import ImageData, to_float
from explorer.errors import ConfigError
from explorer.models.autoencoder import Autoencoder
from explorer.models.layers import one_hot
from explorer.models.losses import kl_terms, reconstruction_loss
from explorer.models.noise import corrupt
from explorer.training.compiled import CompiledStackedStep, CompileFailed
from explorer.training.control import SetBeta, SetLearningRate, TrainingControl
from explorer.training.denormals import flushing_generator
from explorer.training.device import resolve_device, use_bf16, use_compile
from explorer.training.engine import train, whole_step_compiles
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
from explorer.training.timeline import TimelineRecorder, epoch_losses

# The lecture's comparison: the same VAE trained on each half of its loss, and on both.
LECTURE_COMPARISON: tuple[tuple[str, dict[str, float]], ...] = (
    ("reconstruction only", {"beta": 0.0}),
    ("KL only", {"recon_weight": 0.0}),
    ("reconstruction + KL", {}),
)


@dataclass(frozen=True)
class RunEvent:
    """One engine event of run ``run`` (its index in the list given to :func:`train_together`)."""

    run: int
    event: Event


def architecture_key(config: ModelConfig) -> ModelConfig:
    """What runs must share to train together: the config without its loss weights (beta,
    reconstruction weight) and preset name, which change no tensor's shape (a plugin's model
    keeps its name: the plugin is part of the architecture)."""
    return replace(config, preset=config.plugin, beta=0.0, recon_weight=1.0)


def can_batch(config: ModelConfig) -> bool:
    """Whether runs of this architecture train in one batched forward (the MLP family; a
    model plugin's runs train one after another through the engine)."""
    return config.family == "mlp" and not config.plugin


def _linear_names(config: ModelConfig) -> tuple[list[str], list[str]]:
    """The encoder's and the decoder's Linear layers in forward order, by state_dict prefix
    (the layout of ``explorer.models.mlp``: Linear, ReLU, Linear, ReLU, ...)."""
    encoder = [f"encoder_body.layers.{2 * i}" for i in range(len(config.hidden_dims))]
    decoder = [f"decoder.hidden.{2 * i}" for i in range(len(config.hidden_dims))] + ["decoder.out"]
    return encoder, decoder


class StackedAutoencoders:
    """R MLP autoencoders of one architecture as stacked leaf tensors ``(R, ...)``, keyed
    like an Autoencoder's state_dict, with the batched loss.

    Weights are kept transposed, ``(R, in, out)`` and contiguous, so ``baddbmm`` reads them
    as they lie: a transposed view cost a strided copy per use under bf16 autocast (a
    third of the step). :meth:`row` gives a run's tensor back in the model's layout."""

    def __init__(self, models: Sequence[Autoencoder]) -> None:
        if not models:
            raise ConfigError("train_together needs at least one model")
        _check_one_architecture(models)
        if not can_batch(models[0].config):
            raise ConfigError("only MLP-family models train in one batched forward")
        self.configs = [m.config for m in models]
        self.config = models[0].config
        self.names = models[0].part_names
        self._encoder, self._decoder = _linear_names(self.config)
        device = models[0].mean_head.weight.device
        with torch.no_grad():
            states = [m.state_dict() for m in models]
            self.params: dict[str, torch.Tensor] = {
                k: torch.stack([self._stored(k, s[k].detach().to(device)) for s in states]).requires_grad_(True)
                for k in states[0]}
        self.beta = torch.tensor([float(m.beta) for m in models], device=device)
        self.recon_weight = torch.tensor([float(m.config.recon_weight) for m in models], device=device)

    @staticmethod
    def _stored(key: str, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.t().contiguous() if key.endswith(".weight") else tensor

    def row(self, key: str, tensor: torch.Tensor, run: int) -> torch.Tensor:
        """Run ``run``'s slice of ``tensor`` (stacked like ``params[key]``) in the model's layout."""
        value = tensor[run]
        return value.t() if key.endswith(".weight") else value

    @property
    def size(self) -> int:
        return len(self.configs)

    def _linear(self, h: torch.Tensor, name: str, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.baddbmm(params[name + ".bias"].unsqueeze(1), h, params[name + ".weight"])

    def _with_class(self, h: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        return h if onehot is None else torch.cat([h, onehot.to(h.dtype)], dim=2)

    def parts(self, x: torch.Tensor, y: torch.Tensor | None = None, eps: torch.Tensor | None = None,
              generators: Sequence[torch.Generator] | None = None, training: bool = True,
              params: dict[str, torch.Tensor] | None = None, beta: torch.Tensor | None = None,
              recon_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each run's loss ``(R,)`` and its terms (batch means, as ``Autoencoder.loss_parts``)
        for images ``x`` ``(R, B, C, H, W)`` in [0, 1] and labels ``y`` ``(R, B)``.

        ``eps`` (``(R, B, latent)``) fixes the reparameterisation noise, so a test can feed
        one run the very noise its single model drew; otherwise run r draws from
        ``generators[r]`` (or the global generator), as does its input corruption.
        ``params`` and ``beta`` stand in for the stack's own (the compiled step passes the
        tensors it differentiates)."""
        params = self.params if params is None else params
        beta = self.beta if beta is None else beta
        recon_weight = self.recon_weight if recon_weight is None else recon_weight
        cfg = self.config
        r, b = x.shape[0], x.shape[1]
        target = x.reshape(r, b, -1)
        x_in = target
        if training and cfg.noise != "none" and cfg.noise_level > 0:
            x_in = torch.stack([corrupt(target[i], cfg.noise, cfg.noise_level,
                                        generator=generators[i] if generators else None) for i in range(r)])
        onehot = one_hot(y, cfg.num_classes) if cfg.conditional and y is not None else None
        if cfg.conditional and onehot is None:
            raise ConfigError("this is a conditional model: it needs a class label for every image")
        h = self._with_class(x_in, onehot)
        for name in self._encoder:
            h = torch.relu(self._linear(h, name, params))
        mean = self._linear(h, "mean_head", params)
        if cfg.code_activation == "relu":
            mean = torch.relu(mean)
        logvar = self._linear(h, "logvar_head", params) if cfg.variational else None
        z = mean
        if logvar is not None:
            if eps is None:
                eps = torch.stack([torch.randn(mean.shape[1:], dtype=mean.dtype, device=mean.device,
                                               generator=generators[i] if generators else None) for i in range(r)])
            z = mean + eps.to(mean.dtype) * torch.exp(0.5 * logvar)
        h = self._with_class(z, onehot)
        for name in self._decoder[:-1]:
            h = torch.relu(self._linear(h, name, params))
        logits = self._linear(h, self._decoder[-1], params)
        recon = reconstruction_loss(logits.reshape(r * b, -1), target.reshape(r * b, -1), cfg.recon_loss)
        parts = {"recon": recon.view(r, b).mean(1)}
        loss = recon_weight * parts["recon"]
        if logvar is not None:
            parts["kl"] = kl_terms(mean.float(), logvar.float()).sum(2).mean(1)
            loss = loss + beta * parts["kl"]
        if cfg.sparsity_weight > 0:
            parts["sparsity"] = mean.float().abs().sum(2).mean(1)
            loss = loss + cfg.sparsity_weight * parts["sparsity"]
        return loss, parts

    def state_dict(self, run: int) -> dict[str, torch.Tensor]:
        """Run ``run``'s weights as CPU copies, keyed like an Autoencoder's state_dict."""
        return {k: self.row(k, v, run).detach().to("cpu", copy=True).contiguous() for k, v in self.params.items()}

    @torch.no_grad()
    def copy_into(self, run: int, model: Autoencoder) -> None:
        """Write run ``run``'s weights into ``model`` (an Autoencoder of this architecture)."""
        state = model.state_dict()
        for k, v in self.params.items():
            state[k].copy_(self.row(k, v, run))
        model.beta = float(self.beta[run])

    def unstack(self) -> list[Autoencoder]:
        """R ordinary Autoencoders (on the stack's device) with these weights."""
        models = []
        for run, config in enumerate(self.configs):
            model = Autoencoder(config).to(self.beta.device)
            self.copy_into(run, model)
            models.append(model)
        return models

    @torch.no_grad()
    def keep(self, rows: list[int], optimizer: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer | None:
        """Keep only ``rows`` of every stacked tensor (and of the Adam state): the group
        without runs that stopped. Returns the optimizer over the new tensors."""
        index = torch.tensor(rows, device=self.beta.device)
        old = dict(self.params)
        self.params = {k: v.index_select(0, index).clone().requires_grad_(True) for k, v in old.items()}
        self.configs = [self.configs[i] for i in rows]
        self.beta = self.beta.index_select(0, index)
        self.recon_weight = self.recon_weight.index_select(0, index)
        if optimizer is None:
            return None
        lr = optimizer.param_groups[0]["lr"]
        new = make_stacked_optimizer(list(self.params.values()), lr)
        for k, p in self.params.items():
            state = optimizer.state.get(old[k])
            if state:
                new.state[p] = {name: _rows(t, index) if name != "step" else t for name, t in state.items()}
        return new


def _rows(value: object, index: torch.Tensor) -> object:
    """The kept runs' rows of one piece of Adam state (a scalar, such as the step, is shared)."""
    if isinstance(value, torch.Tensor):
        return value.index_select(0, index).clone() if value.dim() > 0 else value.clone()
    return value


def stack(models: Sequence[Autoencoder]) -> StackedAutoencoders:
    """Stack R MLP autoencoders of one architecture (their weights are copied)."""
    return StackedAutoencoders(models)


def unstack(stacked: StackedAutoencoders) -> list[Autoencoder]:
    """The stacked runs as R ordinary Autoencoders (save_checkpoint takes each as it is)."""
    return stacked.unstack()


def make_stacked_optimizer(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam over stacked tensors, as the engine makes it for one model: fused where this
    torch has the kernel, else the multi-tensor one. Elementwise either way."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=params[0].device.type != "cpu" or None)


def _check_one_architecture(models: Sequence[Autoencoder]) -> None:
    key = architecture_key(models[0].config)
    if any(architecture_key(m.config) != key for m in models):
        raise ConfigError("runs trained together must share one architecture (they may differ in beta, "
                          "reconstruction weight and seed)")


def _check_configs(models: Sequence[Autoencoder], cfgs: Sequence[TrainConfig]) -> None:
    if len(cfgs) != len(models):
        raise ConfigError(f"got {len(models)} models but {len(cfgs)} training configs")
    first = replace(cfgs[0], seed=0, lr=1.0)
    if any(replace(c, seed=0, lr=1.0) != first for c in cfgs):
        raise ConfigError("runs trained together share every training setting but the seed and the learning "
                          "rate (epochs, batch size, device, ...)")


def _tagged(run: int, events: Generator[Event, None, RunResult]) -> Generator[RunEvent, None, RunResult]:
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        yield RunEvent(run, event)


def train_together(models: Sequence[Autoencoder], data: ImageData, cfgs: Sequence[TrainConfig] | TrainConfig,
                   control: TrainingControl | None = None, start_epoch: int = 0, start_step: int = 0,
                   on_result: Callable[[int, RunResult], None] | None = None
                   ) -> Generator[RunEvent, None, list[RunResult]]:
    """Train each of ``models`` in place, as ``engine.train(models[r], data, cfgs[r])`` would,
    yielding each run's events as :class:`RunEvent` and returning their results in order.

    The runs share one architecture (beta, reconstruction weight and seed may differ) and
    every training setting but the seed and the learning rate (each run keeps its own).
    MLP-family groups of two or more train together; others, one after another through the
    engine. ``control`` steers the whole group: stop,
    pause, and lr or beta changes apply to every run still training.

    ``on_result(run, result)`` hears of each run as it ends (a diverged run leaves the group
    early; runs one after another end one by one), because a caller whose group is
    interrupted gets no return value, yet must tell the runs that ended from those cut short.
    Closing the generator, or an interrupt during a step, leaves each run still training
    with the weights of its last logged step (finite: they passed the NaN guard), so what
    it trained can be saved."""
    models = list(models)
    cfg_list = list(cfgs) if isinstance(cfgs, Sequence) else [cfgs] * len(models)
    _check_configs(models, cfg_list)
    control = control if control is not None else TrainingControl()
    if not models:
        raise ConfigError("train_together needs at least one model")
    _check_one_architecture(models)
    if len(models) == 1 or not can_batch(models[0].config):
        results: list[RunResult] = []
        for run, (model, cfg) in enumerate(zip(models, cfg_list)):
            if control.stop_requested:
                result = RunResult("stopped", start_epoch, start_step, beta=model.beta)
            else:
                result = yield from _tagged(run, train(model, data, cfg, control, start_epoch, start_step))
            results.append(result)
            if on_result is not None:
                on_result(run, result)
        return results
    return (yield from flushing_generator(_together(models, data, cfg_list, control, start_epoch, start_step,
                                                   on_result)))


def _together(models: list[Autoencoder], data: ImageData, cfgs: list[TrainConfig], control: TrainingControl,
              start_epoch: int, start_step: int, on_result: Callable[[int, RunResult], None] | None = None
              ) -> Generator[RunEvent, None, list[RunResult]]:
    cfg = cfgs[0]
    device = resolve_device(cfg.device)
    bf16 = use_bf16(cfg.precision, device)
    # Each run's noise and shuffle come from generators seeded as the engine seeds its own.
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    noise = [torch.Generator(device=gen_device).manual_seed(c.seed + start_epoch) for c in cfgs]
    shuffles = [torch.Generator().manual_seed(c.seed + start_epoch) for c in cfgs]
    for model in models:
        model.to(device)
        model.train()
    stacked = StackedAutoencoders(models)
    conditional = models[0].is_conditional
    train_x = data.train_images.to(device)
    train_y = data.train_labels.to(device) if conditional and data.train_labels is not None else None
    test_x = data.test_images.to(device)
    test_y = data.test_labels.to(device) if conditional and data.test_labels is not None else None
    dynamic = data.binarize_train
    n = train_x.shape[0]
    batch = min(cfg.batch_size, n)
    names = stacked.names
    lr = cfg.lr
    lrs = [c.lr for c in cfgs]  # each run's own learning rate (a SetLearningRate sets them all)
    epochs = epochs_to_train(cfg, math.ceil(n / batch), start_step)
    # One compile serves every run of the group, so the engine's rule weighs all their steps.
    whole_step: CompiledStackedStep | None = None
    if (use_compile(cfg.compile, device, "mlp", epochs * math.ceil(n / batch) * len(models))
            and stacked.config.noise == "none" and all(whole_step_compiles(m, device) or device.type != "cpu"
                                                       for m in models)):
        whole_step = CompiledStackedStep(stacked, lrs, bf16)
    elif len(set(lrs)) > 1:
        whole_step = CompiledStackedStep(stacked, lrs, bf16, compile=False)  # torch's fused Adam has one rate
    opt = None if whole_step is not None else make_stacked_optimizer(list(stacked.params.values()), lr)
    # As in the engine: a compiled step is specialised to one batch shape, so the short last
    # batch is dropped (the shuffle differs every epoch).
    steps_per_epoch = n // batch if whole_step is not None else math.ceil(n / batch)
    epochs = epochs_to_train(cfg, steps_per_epoch, start_step)
    active = list(range(len(models)))  # original run index of each stacked row
    results: dict[int, RunResult] = {}
    # Each run's timeline, as the engine records one (the same test subset, its own PCA plane).
    recorders = {run: TimelineRecorder(data) for run, c in enumerate(cfgs) if c.timeline}

    def ended(run: int, result: RunResult) -> None:
        results[run] = result
        if on_result is not None:
            on_result(run, result)

    for run in active:
        yield RunEvent(run, RunStarted(device=str(device), precision="bf16" if bf16 else "fp32", epochs=epochs,
                                       steps_per_epoch=steps_per_epoch, train_size=n,
                                       test_size=int(test_x.shape[0]), start_epoch=start_epoch,
                                       compiled=whole_step is not None and whole_step.compiled))
        if epochs != cfg.epochs:
            yield RunEvent(run, Notice(small_data_message(n, steps_per_epoch, cfg.epochs, epochs, cfg.min_steps)))

    global_step = start_step
    with torch.no_grad():
        good = {k: v.detach().clone() for k, v in stacked.params.items()}
    good_step = global_step
    last_snapshot = time.perf_counter()
    epochs_done = start_epoch

    def finish(status: str) -> list[RunResult]:
        for row, run in enumerate(active):
            stacked.copy_into(row, models[run])
            ended(run, RunResult(status=status, epochs_completed=epochs_done, global_step=global_step,
                                 beta=models[run].beta))
        return [results[i] for i in range(len(models))]

    def keep_last_logged() -> None:
        """The runs still training take the weights of their last logged step (the group was
        closed or interrupted): finite, and those the caller's last StepLoss reported."""
        with torch.no_grad():
            if not all(v.shape[0] == len(active) for v in good.values()) or stacked.beta.shape[0] != len(active):
                return  # interrupted while a run left the group: the models keep their last epoch's weights
            for row, run in enumerate(active):
                state = models[run].state_dict()
                for k, v in good.items():
                    state[k].copy_(stacked.row(k, v, row))
                models[run].beta = float(stacked.beta[row])

    def drop(rows: list[int]) -> None:
        """Cut the runs at ``rows`` out of the group (their results are already set)."""
        nonlocal opt, active, noise, shuffles, good, perm, whole_step, lrs
        keep = [i for i in range(len(active)) if i not in rows]
        if keep:
            opt = stacked.keep(keep, opt)  # type: ignore[assignment]
            if whole_step is not None:
                whole_step.keep(keep)
            index = torch.tensor(keep, device=device)
            good = {k: v.index_select(0, index) for k, v in good.items()}
            perm = perm.index_select(0, index.to(perm.device))
        active = [active[i] for i in keep]
        lrs = [lrs[i] for i in keep]
        noise = [noise[i] for i in keep]
        shuffles = [shuffles[i] for i in keep]

    try:
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            perm = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)
            epoch_sum = torch.zeros(len(active), 1 + len(names), device=device)
            window_sum = torch.zeros_like(epoch_sum)
            window_samples = 0
            epoch_start = window_start = time.perf_counter()
            for step in range(1, steps_per_epoch + 1):
                if control.stop_requested:
                    return finish("stopped")
                if control.pause_requested:
                    for run in active:
                        yield RunEvent(run, Paused(global_step))
                    while control.pause_requested and not control.stop_requested:
                        control.wait_while_paused(0.1)
                    if control.stop_requested:
                        return finish("stopped")
                    for run in active:
                        yield RunEvent(run, Resumed(global_step))
                    window_start = time.perf_counter()
                for command in control.drain():
                    if isinstance(command, SetLearningRate):
                        lr = command.value
                        lrs = [lr] * len(active)
                        if whole_step is not None:
                            whole_step.set_lr(lr)
                        for group in opt.param_groups if opt is not None else ():
                            group["lr"] = lr
                        for run in active:
                            yield RunEvent(run, SettingChanged("lr", lr))
                    elif isinstance(command, SetBeta):
                        stacked.beta.fill_(command.value)
                        for run in active:
                            yield RunEvent(run, SettingChanged("beta", command.value))

                idx = perm[:, (step - 1) * batch: step * batch]
                xb = yb = None
                if whole_step is None or dynamic:
                    xb = to_float(train_x[idx])
                    if dynamic:
                        xb = torch.stack([torch.bernoulli(xb[i], generator=noise[i]) for i in range(len(active))])
                    yb = train_y[idx] if train_y is not None else None
                terms = None
                if whole_step is not None:
                    eps = None
                    if stacked.config.variational:  # each run's noise from its own generator, as eagerly
                        eps = torch.stack([torch.randn((idx.shape[1], stacked.config.latent_dim), device=device,
                                                       generator=g) for g in noise])
                    # The batches are gathered inside the graph unless each run binarises its own.
                    batch_args = (xb, yb, eps) if xb is not None else (train_x, train_y, eps, idx)
                    try:
                        terms = whole_step(*batch_args)
                    except CompileFailed:
                        failure = whole_step.failure
                        whole_step = (CompiledStackedStep(stacked, lrs, bf16, compile=False) if len(set(lrs)) > 1
                                      else None)
                        opt = make_stacked_optimizer(list(stacked.params.values()), lr) if whole_step is None else None
                        for run in active:
                            yield RunEvent(run, Notice(f"Compiling the model failed ({failure}); training goes "
                                                       "on uncompiled."))
                        if whole_step is not None:
                            terms = whole_step(*batch_args)
                if terms is None:
                    if xb is None:
                        xb = to_float(train_x[idx])
                        yb = train_y[idx] if train_y is not None else None
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        loss, parts = stacked.parts(xb, yb, generators=noise)
                    opt.zero_grad(set_to_none=True)
                    loss.sum().backward()
                    opt.step()
                    terms = torch.stack([loss.detach(), *(parts[k].detach() for k in names)], dim=1)
                global_step += 1
                with torch.no_grad():
                    window_sum += terms * idx.shape[1]
                window_samples += idx.shape[1]

                if step % cfg.log_every == 0 or step == steps_per_epoch:
                    with torch.no_grad():
                        # per run: finite sums exactly when every weight is finite (as in the engine)
                        weights_ok = torch.isfinite(torch.stack([p.flatten(1).sum(1) for p in
                                                                 stacked.params.values()])).all(0).tolist()
                    values = (window_sum / window_samples).tolist()
                    bad = [row for row in range(len(active))
                           if not (all(math.isfinite(v) for v in values[row]) and weights_ok[row])]
                    for row in bad:
                        run = active[row]
                        with torch.no_grad():
                            state = models[run].state_dict()
                            for k, v in good.items():
                                state[k].copy_(stacked.row(k, v, row))
                        yield RunEvent(run, Snapshot(epoch, good_step, _cpu(models[run])))
                        if all(math.isfinite(v) for v in values[row]):
                            what = "the weights became NaN or infinite"
                        else:
                            infinite = any(math.isinf(v) for v in values[row])
                            what = "the loss became " + ("infinite" if infinite else "NaN")
                        ended(run, RunResult(
                            status="diverged", epochs_completed=epochs_done, global_step=global_step,
                            beta=float(stacked.beta[row]),
                            message=f"{what} at epoch {epoch}, step {step}; the weights from step {good_step} (the "
                                    f"last good ones) were kept. Try a lower learning rate (it was {lrs[row]:g})."))
                    with torch.no_grad():
                        for k, v in good.items():
                            v.copy_(stacked.params[k])
                    if bad:
                        keep = [i for i in range(len(active)) if i not in bad]
                        index = torch.tensor(keep, device=device)
                        window_sum = window_sum.index_select(0, index)
                        epoch_sum = epoch_sum.index_select(0, index)
                        values = [values[i] for i in keep]
                        drop(bad)
                        if not active:
                            return [results[i] for i in range(len(models))]
                    good_step = global_step
                    now = time.perf_counter()
                    rate = window_samples / max(now - window_start, 1e-9)
                    for row, run in enumerate(active):
                        yield RunEvent(run, StepLoss(epoch=epoch, step=step, global_step=global_step,
                                                     loss=values[row][0], parts=dict(zip(names, values[row][1:])),
                                                     samples_per_s=rate, lr=lrs[row], beta=float(stacked.beta[row])))
                    epoch_sum += window_sum
                    window_sum.zero_()
                    window_samples = 0
                    window_start = now
                    if cfg.snapshot_interval_s is not None and now - last_snapshot >= cfg.snapshot_interval_s:
                        for row, run in enumerate(active):
                            yield RunEvent(run, Snapshot(epoch, global_step, stacked.state_dict(row)))
                        last_snapshot = time.perf_counter()

            train_seconds = time.perf_counter() - epoch_start
            train_means = (epoch_sum / n).tolist()
            bad = []
            ends: list[tuple[int, EpochEnd]] = []
            for row, run in enumerate(active):
                model = models[run]
                stacked.copy_into(row, model)
                # Each run's own model, as the engine evaluates it: 4 x 10,000 MNIST images took
                # 0.23 s so against 0.36 s through the stacked products (fp32 bmm).
                test = evaluate_tensors(model, test_x, test_y, cfg.eval_batch_size, seed=cfgs[run].seed)
                if not all(math.isfinite(v) for v in test.values()):
                    what = ", ".join(k for k, v in test.items() if not math.isfinite(v))
                    ended(run, RunResult(
                        status="diverged", epochs_completed=epochs_done, global_step=global_step, beta=model.beta,
                        message=f"the test loss ({what}) became NaN or infinite after epoch {epoch}; the weights are "
                                f"kept as they are. Try a lower learning rate (it was {lrs[row]:g})."))
                    bad.append(row)
                    continue
                ends.append((run, EpochEnd(epoch=epoch, train=dict(zip(("loss", *names), train_means[row])), test=test,
                                           seconds=time.perf_counter() - epoch_start,
                                           samples_per_s=n / max(train_seconds, 1e-9))))
            if bad:
                drop(bad)
            epochs_done = epoch
            for run, end in ends:
                yield RunEvent(run, end)
                yield RunEvent(run, Snapshot(epoch, global_step, _cpu(models[run])))
                if run in recorders:  # the frame follows its EpochEnd, as the engine's does
                    yield RunEvent(run, recorders[run].frame(models[run], epoch, global_step,
                                                             epoch_losses(end.train, end.test)))
            last_snapshot = time.perf_counter()
            if not active:
                return [results[i] for i in range(len(models))]
        return finish("completed")
    except BaseException:  # closed (GeneratorExit) or interrupted mid-step (KeyboardInterrupt)
        keep_last_logged()
        raise


def _cpu(model: Autoencoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
