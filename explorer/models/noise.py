"""Input corruption for denoising autoencoders (applied only while training)."""

from __future__ import annotations

import torch


def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """Gaussian: add ``level`` x N(0, 1) and clip to [0, 1] (the seeds' noise_factor).
    Salt-and-pepper: a ``level`` fraction of pixels set to 0 or 1. Mask: a ``level``
    fraction of pixels set to 0."""
    if kind == "none" or level <= 0:
        return x
    if kind == "gaussian":
        return (x + level * torch.randn_like(x)).clamp_(0.0, 1.0)
    hit = torch.rand_like(x) < level
    if kind == "mask":
        return x.masked_fill(hit, 0.0)
    if kind == "salt-pepper":
        salt = (torch.rand_like(x) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ValueError(f"unknown noise type {kind!r}")
