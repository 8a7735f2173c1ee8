"""One model class for the whole zoo.

The presets differ only by config: backbone family (MLP or conv), variational or not,
conditional or not, input noise, activity penalty, beta and reconstruction loss. One class
keeps one contract, so every view and command works with every preset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explorer.config import ModelConfig
from explorer.errors import UserError
from explorer.models.base import LatentDist, ModelOutput, loss_part_names
from explorer.models.conv import ConvDecoder, ConvEncoderBody
from explorer.models.losses import gaussian_kl, reconstruction_loss
from explorer.models.mlp import MLPDecoder, MLPEncoderBody
from explorer.models.noise import corrupt


class Autoencoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Runtime copy of beta: the engine may change it mid-run; the config stays frozen.
        self.beta = float(config.beta)
        if config.family == "conv":
            self.encoder_body: nn.Module = ConvEncoderBody(config)
            self.decoder: nn.Module = ConvDecoder(config)
        else:
            self.encoder_body = MLPEncoderBody(config)
            self.decoder = MLPDecoder(config)
        n_feat = self.encoder_body.out_features
        self.mean_head = nn.Linear(n_feat, config.latent_dim)
        self.logvar_head = nn.Linear(n_feat, config.latent_dim) if config.variational else None

    # -- contract -------------------------------------------------------------------------

    @property
    def is_generative(self) -> bool:
        return self.config.variational

    @property
    def is_conditional(self) -> bool:
        return self.config.conditional

    @property
    def part_names(self) -> tuple[str, ...]:
        return loss_part_names(self.config.variational, self.config.sparsity_weight > 0)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LatentDist:
        h = self.encoder_body(x, self._onehot(y, x.shape[0]))
        mean = self.mean_head(h)
        if self.config.code_activation == "relu":
            mean = F.relu(mean)
        logvar = self.logvar_head(h) if self.logvar_head is not None else None
        return LatentDist(mean, logvar)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        onehot = self._onehot(y, z.shape[0])
        return self.decoder(z if onehot is None else torch.cat([z, onehot], dim=1))

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
        return ModelOutput(loss=loss, parts=parts, logits=logits, z=z)

    def sample(self, n: int, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` images from the prior (VAE family only)."""
        if not self.is_generative:
            raise UserError(f"a {self.config.preset or 'plain'} autoencoder has no prior to sample from; "
                            "use a VAE-family model (vae, beta-vae, conv-vae, cvae, conv-cvae)")
        device = self.mean_head.weight.device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device="cpu").to(device)
        return self.decode(z, y)

    # -- helpers --------------------------------------------------------------------------

    def _onehot(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.config.conditional:
            return None
        if y is None:
            raise UserError("this is a conditional model: it needs a class label for every image")
        y = torch.as_tensor(y, device=self.mean_head.weight.device).long().reshape(-1)
        if y.numel() == 1 and n > 1:
            y = y.expand(n)
        if y.numel() != n:
            raise UserError(f"got {y.numel()} labels for {n} images")
        # The range check syncs with the device, so the hot training loop (whose labels the
        # dataset already validated) skips it.
        if not self.training:
            bad = y[(y < 0) | (y >= self.config.num_classes)]
            if bad.numel():
                raise UserError(f"this model knows classes 0 to {self.config.num_classes - 1}, not {int(bad[0])}")
        return F.one_hot(y, self.config.num_classes).to(self.mean_head.weight.dtype)
