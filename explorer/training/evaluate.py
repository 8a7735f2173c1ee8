"""Test-set metrics: mean per image of the loss and each of its terms.

For the VAE family the loss is the negative ELBO in nats (one reparameterised sample per
image, seeded so repeated evaluations agree); for plain AEs it is the summed
reconstruction loss (plus any activity penalty).
"""

from __future__ import annotations

import torch

from explorer.data.dataset import to_float
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import device_of


@torch.no_grad()
def evaluate_tensors(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None,
                     batch_size: int = 1000, seed: int = 0) -> dict[str, float]:
    was_training = model.training
    model.eval()
    device = device_of(model)
    names = model.part_names
    sums = torch.zeros(1 + len(names), device=device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, images.shape[0], batch_size):
            xb = to_float(images[start:start + batch_size].to(device))
            yb = labels[start:start + batch_size].to(device) if labels is not None and model.is_conditional else None
            out = model(xb, yb)
            sums += torch.stack([out.loss, *(out.parts[k] for k in names)]) * xb.shape[0]
    model.train(was_training)
    values = (sums / images.shape[0]).tolist()
    return dict(zip(("loss", *names), values))
