"""A VQ-VAE for Latent Explorer, as a model plugin (the entry point names ``PLUGIN``).

The code is continuous before quantisation (what the latent plane and sliders show); the
decoder snaps it to the nearest codebook entries, so the plane tiles into cells, one image
each. With the default group size 1, each code dimension is quantised on its own to one of
``codebook_size`` learnt levels: a 2-D code gives a grid of codebook_size x codebook_size
cells.
"""

from __future__ import annotations

from explorer.config import ModelConfig
from explorer.plugins import Field, ModelPlugin
from latent_explorer_vqvae.model import VQVAE

PLUGIN = ModelPlugin(
    name="vqvae",
    description="VQ-VAE: a codebook with the straight-through estimator (recon + codebook + commitment terms)",
    schema=(
        Field("codebook_size", "int", 32, min=2, max=4096,
              help="Codebook entries: the levels (or vectors) each group of code dimensions snaps to"),
        Field("group_size", "int", 1, min=1, max=64,
              help="Code dimensions quantised together by one codebook vector (must divide the latent size)"),
        Field("commitment", "float", 0.25, min=0.0, max=100.0,
              help="Weight of the commitment term, which keeps the encoder's codes near their codebook entries"),
        Field("hidden", "int", 400, min=8, max=8192, help="Units of each hidden layer"),
        Field("two_layers", "bool", False, help="Two hidden layers in the encoder and the decoder instead of one"),
        Field("activation", "choice", "relu", choices=("relu", "elu", "silu"), help="Hidden layers' activation"),
    ),
    build=VQVAE,
    model=ModelConfig(latent_dim=2, variational=False, hidden_dims=(400,), recon_loss="bce"),
    epochs=10,
    batch_size=128,
    lr=1e-3,
)

__all__ = ["PLUGIN", "VQVAE"]
