"""Checking that a model keeps the contract views, the engine and the CLI rely on.

Every model a plugin builds is checked here before it is used (``registry.build_model``),
and each plugin once when it is discovered (:func:`check_plugin`): the attributes and
methods of :class:`explorer.models.base.LatentModel`, then a forward pass of a tiny CPU
batch (two images) in eval and in train mode, whose shapes must be right and whose values
must be finite. Whatever is wrong is a :class:`ContractError`, one line naming the first
broken promise. The caller's random state and the model's train/eval mode are left as they
were.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.errors import ConfigError

METHODS = ("encode", "decode_logits", "decode", "reconstruct", "loss_parts", "combine", "sample")


class ContractError(ConfigError):
    """A model that does not keep the model contract (one line)."""


def _fail(message: str) -> None:
    raise ContractError(message)


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _tensor(value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        from explorer.display import with_article

        _fail(f"{what} is {with_article(type(value).__name__)}, not a tensor")
    if tuple(value.shape) != shape:
        _fail(f"{what} has shape {_shape(value)}, not {shape}")
    if not value.is_floating_point():
        _fail(f"{what} is not floating point ({value.dtype})")
    if value.device.type != "meta" and not bool(torch.isfinite(value).all()):
        _fail(f"{what} is not finite")
    return value


def check_contract(model: Any, config: ModelConfig) -> None:
    """Refuse (ContractError) a model that breaks the contract for ``config``. The forward
    pass runs where the model's weights are (a model on the ``meta`` device is checked for
    its attributes only)."""
    if not isinstance(model, nn.Module):
        _fail(f"build gave a {type(model).__name__}, not a torch.nn.Module")
    if getattr(model, "config", None) != config:
        _fail("its config attribute is not the ModelConfig it was built from (keep model.config = config)")
    beta = getattr(model, "beta", None)
    if not isinstance(beta, (int, float)) or isinstance(beta, bool):
        _fail("it has no number beta (the KL weight the engine may change; LatentModel sets it)")
    for name in METHODS:
        if not callable(getattr(model, name, None)):
            _fail(f"it has no method {name}")
    names = getattr(model, "part_names", None)
    if (not isinstance(names, tuple) or not names or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        _fail("part_names is not a tuple of distinct loss-term names")
    if "recon" not in names:
        _fail("part_names has no 'recon' term")
    if "loss" in names:
        _fail("'loss' is not a loss term's name (it is the total)")
    for flag in ("is_generative", "is_conditional"):
        if not isinstance(getattr(model, flag, None), bool):
            _fail(f"{flag} is not true or false")
    if model.is_conditional != config.conditional:
        _fail(f"is_conditional is {model.is_conditional} for a config whose conditional is {config.conditional}")
    decoder = getattr(model, "decoder", None)
    if decoder is not None and not isinstance(decoder, nn.Module):
        _fail("its decoder attribute is not a torch.nn.Module")
    tensors = [*model.parameters(), *model.buffers()]
    if not tensors:
        _fail("it has no weights")
    device = tensors[0].device
    if device.type == "meta":
        return
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            torch.manual_seed(0)
            _forward_checks(model, config, names, device)
    except ContractError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the model's code raises breaks the contract
        text = " ".join(str(exc).split())[:200]
        _fail(f"a forward pass of two images failed ({type(exc).__name__}: {text})")
    finally:
        model.train(was_training)


def _forward_checks(model: Any, config: ModelConfig, names: tuple[str, ...], device: torch.device) -> None:
    from explorer.models.base import ModelOutput

    n, image = 2, tuple(config.image_shape)
    x = torch.rand(n, *image, device=device)
    y = torch.tensor([0, config.num_classes - 1], device=device) if config.conditional else None
    model.eval()
    with torch.no_grad():
        dist = model.encode(x, y)
        mean = _tensor(getattr(dist, "mean", None), (n, config.latent_dim), "encode(x).mean")
        logvar = getattr(dist, "logvar", "missing")
        if isinstance(logvar, str):
            _fail("encode(x) gave no LatentDist (it lacks logvar)")
        if logvar is not None:
            _tensor(logvar, (n, config.latent_dim), "encode(x).logvar")
        if not callable(getattr(dist, "sample", None)):
            _fail("encode(x) gave no LatentDist (it lacks sample)")
        _tensor(model.decode_logits(mean, y), (n, *image), "decode_logits(z)")
        images = _tensor(model.decode(mean, y), (n, *image), "decode(z)")
        if bool((images < 0).any()) or bool((images > 1).any()):
            _fail("decode(z) gave values outside [0, 1]")
        _tensor(model.reconstruct(x, y), (n, *image), "reconstruct(x)")
        _check_parts(model, x, y, names, n, image, config, ModelOutput)
        if model.is_generative:
            _tensor(model.sample(n, y), (n, *image), "sample(2)")
    model.train()
    with torch.enable_grad():
        out = _check_parts(model, x, y, names, n, image, config, ModelOutput)
    if not out.loss.requires_grad:
        _fail("the training loss does not depend on any weight (no gradient)")


def _check_parts(model: Any, x: torch.Tensor, y: torch.Tensor | None, names: tuple[str, ...], n: int,
                 image: tuple[int, ...], config: ModelConfig, output_type: type) -> Any:
    mode = "train" if model.training else "eval"
    got = model.loss_parts(x, y)
    if not isinstance(got, tuple) or len(got) != 3:
        _fail(f"loss_parts(x) ({mode} mode) gave no (parts, logits, z)")
    parts, logits, z = got
    if not isinstance(parts, dict) or set(parts) != set(names):
        keys = sorted(parts) if isinstance(parts, dict) else type(parts).__name__
        _fail(f"loss_parts(x) ({mode} mode) gave the terms {keys}, not part_names {list(names)}")
    for key, value in parts.items():
        _tensor(value.reshape(()) if isinstance(value, torch.Tensor) and value.numel() == 1 else value, (),
                f"the {key} term ({mode} mode)")
    _tensor(logits, (n, *image), f"the logits of loss_parts ({mode} mode)")
    _tensor(z, (n, config.latent_dim), f"the codes of loss_parts ({mode} mode)")
    out = model.combine(parts, logits, z)
    if not isinstance(out, output_type):
        _fail("combine gave no explorer.models.base.ModelOutput")
    _tensor(out.loss.reshape(()) if isinstance(out.loss, torch.Tensor) and out.loss.numel() == 1 else out.loss, (),
            f"the loss ({mode} mode)")
    return out


def check_plugin(plugin: Any) -> None:
    """Check a plugin once, at discovery: its default model builds on the ``meta`` device
    (how a checkpoint's shapes are checked before any weight is read) and, on the CPU, keeps
    the contract (for a conditional default, with 10 classes)."""
    from explorer.config import replace
    from explorer.models.registry import build_plugin_model

    config = plugin.config()
    if config.conditional and config.num_classes < 2:
        config = replace(config, num_classes=10)
    try:
        with torch.device("meta"):
            meta = build_plugin_model(plugin, config, check=False)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        text = " ".join(str(exc).split())[:200]
        _fail(f"its model cannot be built on the meta device ({type(exc).__name__}: {text})")
    check_contract(meta, config)
    check_contract(build_plugin_model(plugin, config, check=False), config)
