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
from explorer.models.base import LatentDist, LatentModel
from explorer.models.conv import ConvDecoder, ConvEncoderBody
from explorer.models.layers import one_hot
from explorer.models.mlp import MLPDecoder, MLPEncoderBody


class Autoencoder(LatentModel):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        if config.family == "conv":
            self.encoder_body: nn.Module = ConvEncoderBody(config)
            self.decoder: nn.Module = ConvDecoder(config)
        else:
            self.encoder_body = MLPEncoderBody(config)
            self.decoder = MLPDecoder(config)
        n_feat = self.encoder_body.out_features
        self.mean_head = nn.Linear(n_feat, config.latent_dim)
        self.logvar_head = nn.Linear(n_feat, config.latent_dim) if config.variational else None

    # -- contract (the rest comes from LatentModel) ------------------------------------------

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
        return one_hot(y, self.config.num_classes, self.mean_head.weight.dtype)
