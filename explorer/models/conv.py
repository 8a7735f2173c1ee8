"""Convolutional backbones that fit any image size.

Each stride-2 stage halves the size, rounding up; the decoder records those sizes and
picks each transposed convolution's output padding so it lands back on the exact input
size (28 -> 14 -> 7 -> 14 -> 28, but also 30 -> 15 -> 8 -> 15 -> 30).
"""

from __future__ import annotations

import torch
from torch import nn

from explorer.config import ModelConfig, stage_sizes
from explorer.models.layers import class_features, decoder_stack, relu_stack, with_class


class ConvEncoderBody(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, h, w = config.image_shape
        convs: list[nn.Module] = []
        for ch in config.conv_channels:
            convs += [nn.Conv2d(c, ch, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            c = ch
        self.convs = nn.Sequential(*convs)
        fh, fw = stage_sizes(h, w, len(config.conv_channels))[-1]
        self.fc, self.out_features = relu_stack(c * fh * fw + class_features(config), config.hidden_dims)

    def forward(self, x: torch.Tensor, y_onehot: torch.Tensor | None) -> torch.Tensor:
        return self.fc(with_class(self.convs(x), y_onehot))


class ConvDecoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c_img, h, w = config.image_shape
        channels = list(config.conv_channels)
        sizes = stage_sizes(h, w, len(channels))
        self.start_shape = (channels[-1], *sizes[-1])
        n_start = channels[-1] * sizes[-1][0] * sizes[-1][1]
        hidden, width = decoder_stack(config)
        self.fc = nn.Sequential(hidden, nn.Linear(width, n_start), nn.ReLU())
        deconvs: list[nn.Module] = []
        outs = list(reversed(channels[:-1])) + [c_img]
        c = channels[-1]
        for i, c_out in enumerate(outs):
            th, tw = sizes[len(channels) - 1 - i]
            pad = (1 if th % 2 == 0 else 0, 1 if tw % 2 == 0 else 0)
            deconvs.append(nn.ConvTranspose2d(c, c_out, kernel_size=3, stride=2, padding=1, output_padding=pad))
            if i < len(outs) - 1:
                deconvs.append(nn.ReLU())
            c = c_out
        self.deconvs = nn.Sequential(*deconvs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.fc(z).view(-1, *self.start_shape))
