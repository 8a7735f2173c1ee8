"""Loss terms, each summed over an image and averaged over the batch (nats per image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction loss from decoder *logits* (BCE is computed with logits
    for numerical safety and speed)."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - target).square()
    return per_pixel.flatten(1).sum(1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(q(z|x) || N(0, I))."""
    return -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum(1)


def kl_per_dimension(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL of each latent dimension over a batch: which dimensions carry information."""
    return (-0.5 * (1 + logvar - mean.square() - logvar.exp())).mean(0)
