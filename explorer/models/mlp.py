"""Fully connected backbones: flatten the image, a stack of ReLU layers, and back."""

from __future__ import annotations

import torch
from torch import nn

from explorer.config import ModelConfig


def _stack(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPEncoderBody(nn.Module):
    """Image (and one-hot class) to a feature vector of ``out_features``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        n_in = config.input_size + (config.num_classes if config.conditional else 0)
        self.layers = _stack([n_in, *config.hidden_dims])
        self.out_features = config.hidden_dims[-1] if config.hidden_dims else n_in

    def forward(self, x: torch.Tensor, y_onehot: torch.Tensor | None) -> torch.Tensor:
        h = x.flatten(1)
        if y_onehot is not None:
            h = torch.cat([h, y_onehot], dim=1)
        return self.layers(h)


class MLPDecoder(nn.Module):
    """Code (and one-hot class) to image logits, mirroring the encoder's hidden sizes."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        n_in = config.latent_dim + (config.num_classes if config.conditional else 0)
        hidden = list(reversed(config.hidden_dims))
        self.hidden = _stack([n_in, *hidden])
        self.out = nn.Linear(hidden[-1] if hidden else n_in, config.input_size)
        self.image_shape = config.image_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(z)).view(-1, *self.image_shape)
