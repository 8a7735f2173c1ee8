"""Input corruption for denoising autoencoders (applied only while training)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian: add ``level`` x N(0, 1) and clip to [0, 1] (the seeds' noise_factor).
    Salt-and-pepper: a ``level`` fraction of pixels set to 0 or 1. Mask: a ``level``
    fraction of pixels set to 0. ``generator`` makes the noise repeatable without touching
    torch's global generator (which a training thread may be using). The kinds are
    :data:`explorer.config.NOISE_TYPES`."""
    if kind == "none" or level <= 0:
        return x
    if kind == "gaussian":
        return (x + level * _like(torch.randn, x, generator)).clamp_(0.0, 1.0)
    hit = _like(torch.rand, x, generator) < level
    if kind == "mask":
        return x.masked_fill(hit, 0.0)
    if kind == "salt-pepper":
        salt = (_like(torch.rand, x, generator) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ValueError(f"unknown noise type {kind!r}")


def _like(draw: Callable[..., torch.Tensor], x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``draw`` (torch.rand or torch.randn) shaped like ``x`` on ``x``'s device: from the
    global generator, or drawn where ``generator`` lives and then moved (a CPU generator
    cannot draw on a GPU)."""
    if generator is None:
        return draw(x.shape, dtype=x.dtype, device=x.device)
    return draw(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
