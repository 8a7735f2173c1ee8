"""Fully connected backbones: flatten the image, a stack of ReLU layers, and back."""

from __future__ import annotations

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.models.layers import class_features, decoder_stack, relu_stack, with_class


class MLPEncoderBody(nn.Module):
    """Image (and one-hot class) to a feature vector of ``out_features``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers, self.out_features = relu_stack(config.input_size + class_features(config), config.hidden_dims)

    def forward(self, x: torch.Tensor, y_onehot: torch.Tensor | None) -> torch.Tensor:
        return self.layers(with_class(x, y_onehot))


class MLPDecoder(nn.Module):
    """Code (and one-hot class) to image logits, mirroring the encoder's hidden sizes."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden, width = decoder_stack(config)
        self.out = nn.Linear(width, config.input_size)
        self.image_shape = config.image_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(z)).view(-1, *self.image_shape)
