"""The VQ-VAE model: an MLP encoder, a codebook, an MLP decoder.

It subclasses :class:`explorer.models.base.LatentModel`, which supplies the contract
(decode, reconstruct, loss_parts, combine, sample...) from ``encode`` and ``decode_logits``.
"""

from __future__ import annotations

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.models.base import LatentDist, LatentModel

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def _mlp(n_in: int, n_out: int, hidden: int, layers: int, activation: str) -> nn.Sequential:
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(n_in, hidden), ACTIVATIONS[activation]()]
        n_in = hidden
    modules.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*modules)


class Codebook(nn.Module):
    """``size`` vectors of ``group`` dimensions; a code of D dimensions is D / group groups,
    each snapped to its nearest vector."""

    def __init__(self, size: int, group: int) -> None:
        super().__init__()
        self.group = group
        # Spread like the codes of a unit Gaussian, so every entry starts near some code.
        self.vectors = nn.Parameter(torch.randn(size, group))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Each group of ``z`` (N, D) replaced by its nearest codebook vector (no gradient
        flows through the choice itself)."""
        n, d = z.shape
        groups = z.reshape(n * (d // self.group), self.group)
        distance = (groups.square().sum(1, keepdim=True) - 2 * groups @ self.vectors.t()
                    + self.vectors.square().sum(1))
        index = distance.argmin(1)
        return self.vectors[index].reshape(n, d)


class Decoder(nn.Module):
    """Quantise, then decode: the codebook lives here, so the training timeline (which keeps
    the decoder of every epoch) replays what each epoch's model really drew."""

    def __init__(self, config: ModelConfig, codebook: Codebook, body: nn.Module) -> None:
        super().__init__()
        self.codebook = codebook
        self.body = body
        self.image_shape = tuple(config.image_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        quantised = self.codebook.nearest(z)
        # The straight-through estimator: the value is the codebook entry, the gradient
        # goes to the encoder's code as if quantisation were the identity.
        z_q = z + (quantised - z).detach()
        return self.body(z_q).view(-1, *self.image_shape)


class VQVAE(LatentModel):
    extra_part_names = ("codebook", "commitment")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        p = config.params  # every schema field, checked and completed by the app
        if config.latent_dim % p["group_size"]:
            raise ConfigError(f"vqvae: the latent size {config.latent_dim} does not split into groups of "
                              f"{p['group_size']} (choose a group size that divides it)")
        if config.conditional:
            raise ConfigError("vqvae has no conditional variant")
        layers = 2 if p["two_layers"] else 1
        self.encoder = _mlp(config.input_size, config.latent_dim, p["hidden"], layers, p["activation"])
        body = _mlp(config.latent_dim, config.input_size, p["hidden"], layers, p["activation"])
        self.decoder = Decoder(config, Codebook(p["codebook_size"], p["group_size"]), body)
        self.commitment = float(p["commitment"])

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LatentDist:
        # The continuous code before quantisation (no log-variance: not a Gaussian posterior).
        return LatentDist(self.encoder(x.flatten(1)))

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)

    def extra_losses(self, x: torch.Tensor, dist: LatentDist, z: torch.Tensor,
                     logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two VQ terms: squared distances between codes and their entries, averaged
        over code dimensions and scaled by the pixels, so they weigh against the
        reconstruction (a sum over pixels) as in the paper (where it is a mean). Smaller,
        the codes drift away from the codebook faster than its entries follow."""
        quantised = self.decoder.codebook.nearest(z)
        scale = float(self.config.input_size)
        return {
            # Moves the codebook towards the codes (the codes held still).
            "codebook": scale * (quantised - z.detach()).square().mean(),
            # Keeps the codes near their entries (the codebook held still).
            "commitment": scale * (z - quantised.detach()).square().mean(),
        }

    def part_weight(self, name: str) -> float:
        return self.commitment if name == "commitment" else 1.0
