"""Loss terms, each summed over an image and averaged over the batch (nats per image)."""

from __future__ import annotations

import torch


class _BCEWithLogits(torch.autograd.Function):
    """Per-pixel binary cross-entropy from logits, stable for any logit.

    Same values as ``F.binary_cross_entropy_with_logits`` (to ~1e-5 nats) and the same
    gradient, about 3x faster on the CPU: its ``log_sigmoid``/``log1p`` kernels are not
    vectorised there, while ``exp``, ``log`` and ``sigmoid`` are, and the backward pass is
    one fused expression instead of autograd's chain. It was 15% of a VAE training step.
    """

    @staticmethod
    def forward(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # log(1 + e^-|l|) with log, not log1p: where e^-|l| < 6e-8 the term is below 1e-7 anyway.
        return logits.clamp(min=0) - logits * target + torch.log(1 + torch.exp(-logits.abs()))

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> None:
        # Separate from forward, so torch.func.grad (the eager group step) can use it too.
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        logits, target = ctx.saved_tensors
        return grad * (torch.sigmoid(logits) - target), None


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _BCEWithLogits.apply(logits, target)


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction loss from decoder *logits*, in float32 whatever the
    forward pass ran in."""
    logits = logits.float()
    if kind == "bce":
        per_pixel = bce_with_logits(logits, target)
    else:
        per_pixel = (torch.sigmoid(logits) - target).square()
    return per_pixel.flatten(1).sum(1)


def kl_terms(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(N, D) KL(q(z_d|x) || N(0, 1)) of each sample and dimension: the one formula that
    the loss (summed over dimensions) and the latent statistics (averaged over samples)
    both reduce."""
    return -0.5 * (1 + logvar - mean.square() - logvar.exp())


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(q(z|x) || N(0, I))."""
    return kl_terms(mean, logvar).sum(1)


def kl_per_dimension(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL of each latent dimension over a batch: which dimensions carry information."""
    return kl_terms(mean, logvar).mean(0)
