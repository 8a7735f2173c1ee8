"""The contract every model keeps, so views, the engine and the CLI treat them alike."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LatentDist:
    """The encoder's answer: a mean code, and a log-variance for the VAE family."""

    mean: torch.Tensor
    logvar: torch.Tensor | None = None

    def sample(self) -> torch.Tensor:
        if self.logvar is None:
            return self.mean
        return self.mean + torch.randn_like(self.mean) * torch.exp(0.5 * self.logvar)


@dataclass
class ModelOutput:
    """``loss`` is what training minimises; ``parts`` names each term as a per-sample mean
    (``recon``, ``kl``, ``sparsity``) so curves and the CLI report them apart."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    logits: torch.Tensor
    z: torch.Tensor

    @property
    def recon(self) -> torch.Tensor:
        """Reconstructions in [0, 1] (computed on demand: training never needs them)."""
        return torch.sigmoid(self.logits)


def loss_part_names(variational: bool, sparse: bool) -> tuple[str, ...]:
    names = ["recon"]
    if variational:
        names.append("kl")
    if sparse:
        names.append("sparsity")
    return tuple(names)
