"""Preset names to configs: the zoo, each with its own training defaults.

Kept free of torch so that listing presets (``latent-explorer --help``) is instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from explorer.config import ModelConfig
from explorer.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    description: str
    model: ModelConfig
    epochs: int
    batch_size: int
    lr: float


def _mlp(name: str, latent: int, hidden: tuple[int, ...], variational: bool, **kw: object) -> ModelConfig:
    return ModelConfig(preset=name, family="mlp", variational=variational, latent_dim=latent,
                       hidden_dims=hidden, **kw)  # type: ignore[arg-type]


def _conv(name: str, latent: int, variational: bool, **kw: object) -> ModelConfig:
    return ModelConfig(preset=name, family="conv", variational=variational, latent_dim=latent,
                       conv_channels=(32, 64), hidden_dims=(256,), **kw)  # type: ignore[arg-type]


PRESETS: dict[str, Preset] = {
    "ae": Preset("undercomplete autoencoder, 784-32 (the seeds' first model)",
                 _mlp("ae", 32, (), False), epochs=20, batch_size=256, lr=1e-3),
    "deep-ae": Preset("deep (stacked) autoencoder, 784-128-64-32",
                      _mlp("deep-ae", 32, (128, 64), False), epochs=20, batch_size=256, lr=1e-3),
    "sparse-ae": Preset("sparse autoencoder: overcomplete 1024-unit ReLU code with an L1 activity penalty",
                        _mlp("sparse-ae", 1024, (), False, code_activation="relu", sparsity_weight=0.01),
                        epochs=20, batch_size=256, lr=1e-3),
    "denoising-ae": Preset("denoising autoencoder: Gaussian input noise 0.5, 784-512-256-64",
                           _mlp("denoising-ae", 64, (512, 256), False, noise="gaussian", noise_level=0.5),
                           epochs=20, batch_size=128, lr=1e-3),
    "conv-ae": Preset("convolutional autoencoder, two stride-2 conv layers, 32-d code",
                      _conv("conv-ae", 32, False), epochs=10, batch_size=128, lr=1e-3),
    "vae": Preset("variational autoencoder, the classic 784-400-20 MLP (BCE + KL)",
                  _mlp("vae", 20, (400,), True), epochs=10, batch_size=128, lr=1e-3),
    "beta-vae": Preset("beta-VAE (beta 4, 10-d latent) for more disentangled codes",
                       _mlp("beta-vae", 10, (400,), True, beta=4.0), epochs=10, batch_size=128, lr=1e-3),
    "conv-vae": Preset("convolutional VAE, 16-d latent",
                       _conv("conv-vae", 16, True), epochs=10, batch_size=128, lr=1e-3),
    # The conditional presets keep a 2-D code on purpose: the class then has to come from
    # the label, so samples are the class asked for (measured with an independent
    # classifier after 3 epochs: 99-100% per digit at 2-D, 75% at 4-D, 25-54% at 20-D,
    # where the code carries the class and the decoder half ignores the label), and the
    # latent plane shows pure style (slant, thickness) that carries across classes.
    "cvae": Preset("conditional VAE: one-hot class on encoder and decoder, 784-400-2 (a 2-D style code)",
                   _mlp("cvae", 2, (400,), True, conditional=True, num_classes=10),
                   epochs=10, batch_size=128, lr=1e-3),
    "conv-cvae": Preset("convolutional conditional VAE, 2-D style code",
                        _conv("conv-cvae", 2, True, conditional=True, num_classes=10),
                        epochs=10, batch_size=128, lr=1e-3),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}") from None
