"""Input corruption for denoising autoencoders (applied only while training)."""

from __future__ import annotations

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
        return (x + level * _randn(x, generator)).clamp_(0.0, 1.0)
    hit = _rand(x, generator) < level
    if kind == "mask":
        return x.masked_fill(hit, 0.0)
    if kind == "salt-pepper":
        salt = (_rand(x, generator) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ValueError(f"unknown noise type {kind!r}")


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _rand(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.rand_like(x)
    return torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
