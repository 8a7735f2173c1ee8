"""The model's training forward pass through ``torch.compile``, with a way back.

Compiling needs a working C/C++ compiler (CPU) or Triton (CUDA) and can fail on an unusual
setup; a failed compile must cost the user speed, never the run. The first call is the
compile, so only errors raised there fall back to the eager model; later errors (out of
memory, for example) propagate as they would without compiling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from explorer.models.autoencoder import Autoencoder
from explorer.models.base import ModelOutput


class CompiledForward:
    def __init__(self, model: Autoencoder) -> None:
        self.model = model
        # Only the loss terms are compiled; beta weighs them outside, so a new beta is not
        # a new graph. Shapes stay fixed (the engine drops a short last batch).
        self._fn: Any = torch.compile(model.loss_parts, dynamic=False)
        self._first = True
        self.failure: str | None = None

    @property
    def compiled(self) -> bool:
        return self._fn is not self.model

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> ModelOutput:
        if not self._first:
            return self.model.combine(*self._fn(x, y))
        try:
            out = self.model.combine(*self._fn(x, y))
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure: train uncompiled instead
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            self.failure = f"{type(exc).__name__}: {first_line}"
            self._fn = self.model
            out = self.model(x, y)
        self._first = False
        return out


def _compile_graph(step: Callable[..., Any], args: tuple) -> Callable[..., Any]:
    """``step`` traced once on fake tensors shaped like ``args`` (``make_fx``) and compiled by
    inductor: a callable taking ``args``' flattened leaves.

    ``torch.compile`` would put TorchDynamo in front of the graph, which evaluates some 700
    guards (the model's modules, the dicts of weights) on every call: about 0.1 ms of a
    2 ms vae step, with as much again in its frame handling. The step is a pure function of
    tensors whose shapes the caller fixes for the whole run, so it is traced once and the
    compiled graph called directly (the batch's shapes are checked on each call instead)."""
    from torch._guards import TracingContext, tracing
    from torch._inductor import compile as inductor_compile
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    leaves, spec = tree_flatten(args)

    def flat(*values: Any) -> Any:
        return step(*tree_unflatten(list(values), spec))

    # Fake tensors with a (static) shape environment: inductor's on-disk graph cache keys on
    # it, and without one compiles the graph afresh in every process.
    fake_mode = FakeTensorMode(shape_env=ShapeEnv())
    fakes = [fake_mode.from_tensor(v, static_shapes=True) if isinstance(v, torch.Tensor) else v for v in leaves]
    with fake_mode:
        graph = make_fx(flat, tracing_mode="fake")(*fakes)
    with tracing(TracingContext(fake_mode)):
        return inductor_compile(graph, leaves)


class _WholeStep:
    """What the compiled whole steps share: the first call traces and compiles the step
    (``_compile_graph``), and a failure there (before any weight changed) becomes
    ``CompileFailed`` with ``failure`` set. Uncompiled (``_compiles`` false) the same
    function runs eagerly."""

    _step_fn: Callable[..., Any]
    _compiles = True
    _graph: Callable[..., Any] | None = None
    _shapes: list[tuple[torch.Size, torch.dtype] | None] = []
    failure: str | None = None

    def _run(self, args: tuple) -> torch.Tensor:
        if not self._compiles:
            return self._step_fn(*args)
        if self._graph is not None:
            return self._graph(*self._leaves(args))
        try:
            graph = _compile_graph(self._step_fn, args)
            leaves, _spec = tree_flatten(args)
            self._shapes = [_shape(v) for v in leaves]
            terms = graph(*leaves)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure: train uncompiled instead
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            self.failure = f"{type(exc).__name__}: {first_line}"
            raise CompileFailed(self.failure) from exc
        self._graph = graph
        return terms

    def _leaves(self, args: tuple) -> list[Any]:
        """``args`` flattened as the graph was traced; a batch of another shape (the graph is
        specialised to one) is refused rather than computed wrongly."""
        leaves, _spec = tree_flatten(args)
        if len(leaves) != len(self._shapes) or any(_shape(v) != s for v, s in zip(leaves, self._shapes)):
            raise ValueError("the compiled step was traced for other shapes: "
                             f"{[s for s in self._shapes if s]} against {[_shape(v) for v in leaves if _shape(v)]}")
        return leaves

    def _retrace(self) -> None:
        """The tensors changed shape (a run left a group): trace and compile again."""
        self._graph = None

    def _zero_moments(self, device: torch.device) -> None:
        """Adam's state for ``self._params``: both moments and the step count."""
        self._exp_avg = {k: torch.zeros_like(p) for k, p in self._params.items()}
        self._exp_avg_sq = {k: torch.zeros_like(p) for k, p in self._params.items()}
        self._step = torch.zeros((), device=device)


class CompiledStep(_WholeStep):
    """The whole training step of a built-in MLP or conv Autoencoder (forward, backward and
    Adam) as one compiled graph.

    On the CPU the MLP step is small enough that what lies between the matrix products (the
    bfloat16 casts autocast makes of every weight, the loss's elementwise passes, Adam's
    separate pass and the dispatch of some hundred operators) costs as much as the products;
    one graph fuses them, about 1.4x the eager step for the 784-400-20 VAE at batch 128. The
    Adam update is torch's (no weight decay, no amsgrad); it writes into the model's own
    parameters, so the engine's good-state copies, snapshots and NaN guard see them as usual.
    ``lr`` and ``beta`` are tensors, so changing either never recompiles.

    ``failure`` is set when the first call (the compile) fails; the caller then trains
    eagerly with a fresh optimizer (no step was taken).
    """

    def __init__(self, model: Autoencoder, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, bf16: bool = False, binarize: bool = False, channels_last: bool = False) -> None:
        self.model = model
        device = model.mean_head.weight.device
        self._params = {k: p.detach() for k, p in model.named_parameters()}
        self._zero_moments(device)
        self._lr = torch.tensor(float(lr), device=device)
        self._beta = torch.tensor(float(model.beta), device=device)
        self._beta_value = float(model.beta)  # what _beta holds, without reading the tensor back
        self._step_fn = _adam_step(model, betas, eps, bf16, device.type, _BatchFrom(binarize, channels_last))

    def set_lr(self, lr: float) -> None:
        self._lr.fill_(float(lr))

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, idx: torch.Tensor | None = None) -> torch.Tensor:
        """One step on a batch; returns the batch-mean loss and its terms, ``(1 + parts,)``.

        With ``idx``, ``x`` and ``y`` are the whole training split (uint8 images, labels) and
        the batch is gathered, scaled (binarised, laid out channels-last, as the step was
        made to) inside the graph: the gather fuses with the first pass over the batch
        instead of costing one pass and a fresh float buffer of its own (about 0.15 ms of a
        2.2 ms vae step)."""
        if self._beta_value != self.model.beta:
            self._beta_value = float(self.model.beta)
            self._beta.fill_(self._beta_value)
        args = (self._params, self._exp_avg, self._exp_avg_sq, self._step, self._lr, self._beta, x, y, idx)
        return self._run(args)


def _shape(value: object) -> tuple[torch.Size, torch.dtype] | None:
    return (value.shape, value.dtype) if isinstance(value, torch.Tensor) else None


class CompileFailed(RuntimeError):
    """The whole-step compile failed before any weight changed."""


class _LossParts(torch.nn.Module):
    """``model.loss_parts`` as a module's forward, for ``torch.func.functional_call``."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None):  # noqa: ANN201 - loss_parts' tuple
        return self.model.loss_parts(x, y)


class _BatchFrom:
    """The batch a step trains on: given, or gathered from the training split by index."""

    def __init__(self, binarize: bool, channels_last: bool) -> None:
        self.binarize = binarize
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, idx: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if idx is None:
            return x, y
        batch = x[idx].to(torch.float32) / 255.0  # data.dataset.to_float
        if self.binarize:
            batch = torch.bernoulli(batch)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch, (y[idx] if y is not None else None)


def _adam_step(model: Autoencoder, betas: tuple[float, float], eps: float, bf16: bool, device_type: str,
               batch_from: _BatchFrom):
    """The pure function the compiled step traces: gradients by ``torch.func.grad`` of the
    weighted loss, then Adam in place on the parameters and their moments."""
    from torch.func import functional_call, grad

    wrapped = _LossParts(model)
    names = model.part_names
    beta1, beta2 = betas

    def loss(params, x, y, beta):
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            parts, _logits, _z = functional_call(wrapped, {"model." + k: v for k, v in params.items()}, (x, y))
        # LatentModel.combine with beta as a tensor (combine reads the float model.beta and
        # would bake it into the graph).
        weight = model.config.recon_weight
        total = parts["recon"] if weight == 1.0 else weight * parts["recon"]
        if "kl" in parts:
            total = total + beta * parts["kl"]
        if "sparsity" in parts:
            total = total + model.config.sparsity_weight * parts["sparsity"]
        return total, torch.stack([total.detach(), *(parts[k].detach() for k in names)])

    def step(params, exp_avg, exp_avg_sq, count, lr, beta, x, y, idx):
        x, y = batch_from(x, y, idx)
        grads, terms = grad(loss, has_aux=True)(params, x, y, beta)
        _adam(params, grads, exp_avg, exp_avg_sq, count, lr, beta1, beta2, eps)
        return terms

    return step


def _adam(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], exp_avg: dict[str, torch.Tensor],
          exp_avg_sq: dict[str, torch.Tensor], count: torch.Tensor, lr: torch.Tensor, beta1: float, beta2: float,
          eps: float) -> None:
    """torch's Adam (no weight decay, no amsgrad), in place, traced into the compiled step.
    ``lr`` is a scalar, or one per run ``(R,)`` for tensors stacked over runs."""
    count.add_(1)
    bias1 = 1 - beta1 ** count
    bias2_sqrt = (1 - beta2 ** count).sqrt()
    for k, p in params.items():
        g = grads[k]
        exp_avg[k].lerp_(g, 1 - beta1)
        exp_avg_sq[k].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (exp_avg_sq[k].sqrt() / bias2_sqrt).add_(eps)
        rate = lr if lr.dim() == 0 else lr.view(lr.shape[0], *([1] * (p.dim() - 1)))
        p.sub_((rate / bias1) * exp_avg[k] / denom)


class CompiledStackedStep(_WholeStep):
    """The whole training step of R stacked MLP runs (``batched.StackedAutoencoders``) as one
    compiled graph: the batched forward, the backward of the runs' summed loss (each run's
    gradient is its own loss's) and R Adams, one per run, each with its own learning rate.

    The eager sweep step spent as much time between the batched products as in them, so
    the compiled single run (``CompiledStep``) had caught up with it; one graph for the
    group fuses the same way. Each run's reparameterisation noise is drawn outside the
    graph from its own generator, as the eager step draws it, and passed in.

    After ``keep`` (a run left the group) the step continues on the stack's new tensors
    (one recompile for the smaller group). ``failure`` is set when the first call fails.
    """

    def __init__(self, stacked: Any, lr: torch.Tensor | float | Sequence[float], bf16: bool,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, compile: bool = True) -> None:
        self.stacked = stacked
        device = stacked.beta.device
        self._bind()
        self._zero_moments(device)
        self._lr = torch.as_tensor(lr, dtype=torch.float32, device=device).expand(stacked.size).clone()
        names = stacked.names
        beta1, beta2 = betas
        from torch.func import grad

        def loss(params, beta, recon_weight, x, y, noise):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                per_run, parts = stacked.parts(x, y, eps=noise, params=params, beta=beta, recon_weight=recon_weight)
            terms = torch.stack([per_run.detach(), *(parts[k].detach() for k in names)], dim=1)
            return per_run.sum(), terms

        gather = _BatchFrom(binarize=False, channels_last=False)

        def step(params, exp_avg, exp_avg_sq, count, lr, beta, recon_weight, x, y, noise, idx):
            x, y = gather(x, y, idx)
            grads, terms = grad(loss, has_aux=True)(params, beta, recon_weight, x, y, noise)
            _adam(params, grads, exp_avg, exp_avg_sq, count, lr, beta1, beta2, eps)
            return terms

        # Uncompiled, the same function is the eager step of a group whose runs have
        # learning rates of their own (one fused torch Adam over the stack has one rate).
        self.compiled = self._compiles = compile
        self._step_fn = step

    def _bind(self) -> None:
        self._params = {k: p.detach() for k, p in self.stacked.params.items()}

    def set_lr(self, lr: torch.Tensor | float | Sequence[float]) -> None:
        """One learning rate for every run, or one per run ``(R,)``."""
        self._lr.copy_(torch.as_tensor(lr, dtype=torch.float32).expand_as(self._lr))

    @torch.no_grad()
    def keep(self, rows: list[int]) -> None:
        """Follow ``stacked.keep(rows)``: the kept runs' moments and learning rates."""
        index = torch.tensor(rows, device=self._lr.device)
        self._bind()
        self._retrace()
        self._exp_avg = {k: v.index_select(0, index) for k, v in self._exp_avg.items()}
        self._exp_avg_sq = {k: v.index_select(0, index) for k, v in self._exp_avg_sq.items()}
        self._lr = self._lr.index_select(0, index)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, noise: torch.Tensor | None,
                 idx: torch.Tensor | None = None) -> torch.Tensor:
        """One step; returns each run's batch-mean loss and terms, ``(R, 1 + parts)``.

        With ``idx`` (``(R, B)``, each run's own batch), ``x`` and ``y`` are the whole training
        split and the batches are gathered and scaled inside the graph, as ``CompiledStep``
        does (not binarised: each run draws its binary pixels from its own generator, outside)."""
        # The stack's weights are arguments, not constants of the graph, so inductor's on-disk
        # cache serves the next sweep of the same shapes (a graph with constants is compiled
        # afresh each time: 4.6 s against about 2 s).
        stacked = self.stacked
        args = (self._params, self._exp_avg, self._exp_avg_sq, self._step, self._lr, stacked.beta,
                stacked.recon_weight, x, y, noise, idx)
        return self._run(args)
