"""The contract every model keeps, so views, the engine and the CLI treat them alike.

:class:`LatentModel` is that contract with everything but the architecture filled in: the
built-in :class:`~explorer.models.autoencoder.Autoencoder` and model plugins (README, "Model
plugins") subclass it and give ``encode`` and ``decode_logits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.errors import UserError
from explorer.models.losses import gaussian_kl, reconstruction_loss
from explorer.models.noise import corrupt


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


class LatentModel(nn.Module):
    """The model contract, all but the architecture.

    A subclass calls ``super().__init__(config)``, builds its layers, and implements
    :meth:`encode` (images, and one class label per image for a conditional model, to a
    :class:`LatentDist` of ``(N, latent_dim)`` codes) and :meth:`decode_logits` (codes to
    ``(N, *image_shape)`` logits: images are ``sigmoid(logits)``). The rest follows:

    - ``config``: the ModelConfig it was built from; ``beta``: the KL weight (the engine may
      change it mid-run);
    - ``is_generative`` (``config.variational``: sampling draws codes from N(0, I)) and
      ``is_conditional`` (``config.conditional``);
    - ``part_names``: the loss terms, "recon" then "kl" (variational) and "sparsity" (an
      activity penalty), then :attr:`extra_part_names`;
    - :meth:`loss_parts`: corrupts the input while training (``config.noise``), encodes,
      samples a code, decodes, and returns the batch-mean terms, the logits and the codes;
      :meth:`extra_losses` adds terms of the subclass's own;
    - :meth:`combine`: the weighted sum (``config.recon_weight``, ``beta``,
      ``config.sparsity_weight``, then :meth:`part_weight` of each extra term);
    - :meth:`decode`, :meth:`reconstruct` (through the mean code), :meth:`sample`, ``forward``.

    A ``decoder`` attribute (an ``nn.Module`` holding every weight :meth:`decode_logits`
    uses) lets the training timeline keep and replay the decoder of each epoch.
    """

    # Loss terms of the subclass's own, in the order curves and the CLI show them.
    extra_part_names: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Runtime copy of beta: the engine may change it mid-run; the config stays frozen.
        self.beta = float(config.beta)

    # -- what a subclass gives -------------------------------------------------------------

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LatentDist:
        raise NotImplementedError(f"{type(self).__name__} must implement encode(x, y=None) -> LatentDist")

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement decode_logits(z, y=None) -> logits")

    def extra_losses(self, x: torch.Tensor, dist: LatentDist, z: torch.Tensor,
                     logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch-mean loss terms of the subclass's own, one per :attr:`extra_part_names`."""
        return {}

    def part_weight(self, name: str) -> float:
        """The weight of the extra loss term ``name`` in :meth:`combine` (default 1)."""
        return 1.0

    # -- the rest of the contract ------------------------------------------------------------

    @property
    def is_generative(self) -> bool:
        return self.config.variational

    @property
    def is_conditional(self) -> bool:
        return self.config.conditional

    @property
    def part_names(self) -> tuple[str, ...]:
        return loss_part_names(self.config.variational, self.config.sparsity_weight > 0) + tuple(self.extra_part_names)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1], shaped like the input."""
        return torch.sigmoid(self.decode_logits(z, y))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic reconstruction through the mean code (what views show)."""
        return self.decode(self.encode(x, y).mean, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        return self.combine(*self.loss_parts(x, y))

    def loss_parts(self, x: torch.Tensor, y: torch.Tensor | None = None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The batch-mean loss terms, the logits and the codes, without beta: the part a
        compiled training step specialises, so changing beta mid-run never recompiles."""
        cfg = self.config
        x_in = corrupt(x, cfg.noise, cfg.noise_level) if self.training else x
        dist = self.encode(x_in, y)
        z = dist.sample()
        logits = self.decode_logits(z, y)
        parts = {"recon": reconstruction_loss(logits, x, cfg.recon_loss).mean()}
        if dist.logvar is not None:
            parts["kl"] = gaussian_kl(dist.mean.float(), dist.logvar.float()).mean()
        if cfg.sparsity_weight > 0:
            parts["sparsity"] = dist.mean.float().abs().sum(1).mean()
        if self.extra_part_names:
            parts.update(self.extra_losses(x, dist, z, logits))
        return parts, logits, z

    def combine(self, parts: dict[str, torch.Tensor], logits: torch.Tensor, z: torch.Tensor) -> ModelOutput:
        """The weighted loss from the terms (the mean of a sum is the sum of the means). A
        reconstruction weight of 1 adds no product, so the usual loss stays bit for bit."""
        weight = self.config.recon_weight
        loss = parts["recon"] if weight == 1.0 else weight * parts["recon"]
        if "kl" in parts:
            loss = loss + self.beta * parts["kl"]
        if "sparsity" in parts:
            loss = loss + self.config.sparsity_weight * parts["sparsity"]
        for name in self.extra_part_names:
            w = self.part_weight(name)
            loss = loss + (parts[name] if w == 1.0 else w * parts[name])
        return ModelOutput(loss=loss, parts=parts, logits=logits, z=z)

    def onehot(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The one-hot class of each of ``n`` images, ``(n, num_classes)`` floats on the
        model's device, for a conditional model (None for an unconditional one). One label
        for many images is repeated; a missing or out-of-range label is a UserError."""
        if not self.config.conditional:
            return None
        if y is None:
            raise UserError("this is a conditional model: it needs a class label for every image")
        y = torch.as_tensor(y, device=device_of(self)).long().reshape(-1)
        if y.numel() == 1 and n > 1:
            y = y.expand(n)
        if y.numel() != n:
            raise UserError(f"got {y.numel()} labels for {n} images")
        if not self.training and y.device.type != "meta":
            bad = y[(y < 0) | (y >= self.config.num_classes)]
            if bad.numel():
                raise UserError(f"this model knows classes 0 to {self.config.num_classes - 1}, not {int(bad[0])}")
        return torch.nn.functional.one_hot(y, self.config.num_classes).float()

    def sample(self, n: int, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` images from the prior N(0, I) (generative models only)."""
        if not self.is_generative:
            from explorer.display import with_article

            raise UserError(f"{with_article(self.config.preset or 'plain')} autoencoder has no prior to sample from; "
                            "use a VAE-family model (vae, beta-vae, conv-vae, cvae, conv-cvae)")
        z = torch.randn(n, self.config.latent_dim, generator=generator, device="cpu").to(device_of(self))
        return self.decode(z, y)


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model takes its inputs: its ``device`` if it says (a user's own encoder and
    decoder take CPU tensors, whatever device they run on), else its first parameter's."""
    device = getattr(model, "input_device", None)
    if device is not None:
        return torch.device(device)
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")
