"""Building blocks both backbone families share (MLP and conv).

They live in one place so the two families cannot drift apart in how they stack hidden
layers or feed a conditional model its class. The modules they build keep the attribute
and ``nn.Sequential`` layout the backbones always had, so checkpoint keys do not change.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from explorer.config import ModelConfig


def relu_stack(n_in: int, widths: Iterable[int]) -> tuple[nn.Sequential, int]:
    """``Linear`` + ``ReLU`` from ``n_in`` through each of ``widths`` (empty for none), and
    the width it ends on."""
    layers: list[nn.Module] = []
    for n_out in widths:
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        n_in = n_out
    return nn.Sequential(*layers), n_in


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``F.one_hot`` for labels already checked: a comparison with each class, so tracing it
    (the compiled training step) needs no look at the labels' values, which ``F.one_hot``
    takes to find their range. An out-of-range label gives a row of zeros."""
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(-1) == classes).to(dtype)


def class_features(config: ModelConfig) -> int:
    """How many inputs the one-hot class adds to a layer (0 for an unconditional model)."""
    return config.num_classes if config.conditional else 0


def decoder_stack(config: ModelConfig) -> tuple[nn.Sequential, int]:
    """The decoder's hidden layers: from the code (and one-hot class) through the
    encoder's hidden sizes in reverse, and the width they end on."""
    return relu_stack(config.latent_dim + class_features(config), reversed(config.hidden_dims))


def with_class(h: torch.Tensor, y_onehot: torch.Tensor | None) -> torch.Tensor:
    """Flattened features with the one-hot class appended, when there is one."""
    h = h.flatten(1)
    return h if y_onehot is None else torch.cat([h, y_onehot], dim=1)
