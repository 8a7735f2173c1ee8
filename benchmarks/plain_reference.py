"""A plain PyTorch training loop of a preset's own architecture: the reference the conv
models (and any preset) are measured against in ``train_throughput.py --reference plain``.

Written as a user would without this project: ``nn.Sequential`` layers built from the
preset's sizes (the same layers and shapes as the project's model), torchvision MNIST with
``ToTensor`` through a shuffling ``DataLoader``, float32, eager, summed BCE-with-logits plus
the Gaussian KL (VAE family), Adam, and ``loss.item()`` every batch. Nothing from
``explorer`` runs inside the loop; the preset only supplies the sizes.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn


class PlainModel(nn.Module):
    """The preset's encoder and decoder as plain layers (MLP or stride-2 conv stacks)."""

    def __init__(self, config) -> None:  # config: explorer.config.ModelConfig (sizes only)
        super().__init__()
        c, h, w = config.image_shape
        self.image_shape = (c, h, w)
        self.classes = config.num_classes if config.conditional else 0
        self.variational = config.variational
        latent = config.latent_dim
        enc: list[nn.Module] = []
        if config.family == "conv":
            sizes = [(h, w)]
            ch = c
            for out in config.conv_channels:
                enc += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.ReLU()]
                ch = out
                sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
            self.convs = nn.Sequential(*enc)
            n_in = ch * sizes[-1][0] * sizes[-1][1]
        else:
            self.convs = nn.Identity()
            n_in = c * h * w
        self.fc = nn.Sequential(*_relu_layers(n_in + self.classes, config.hidden_dims))
        width = config.hidden_dims[-1] if config.hidden_dims else n_in + self.classes
        self.mu = nn.Linear(width, latent)
        self.logvar = nn.Linear(width, latent) if self.variational else None
        hidden = list(reversed(config.hidden_dims))
        dec = _relu_layers(latent + self.classes, hidden)
        width = hidden[-1] if hidden else latent + self.classes
        if config.family == "conv":
            channels = list(config.conv_channels)
            self.start = (channels[-1], *sizes[-1])
            dec += [nn.Linear(width, channels[-1] * sizes[-1][0] * sizes[-1][1]), nn.ReLU()]
            self.dec_fc = nn.Sequential(*dec)
            ups: list[nn.Module] = []
            outs = list(reversed(channels[:-1])) + [c]
            ch = channels[-1]
            for i, out in enumerate(outs):
                th, tw = sizes[len(channels) - 1 - i]
                pad = (1 if th % 2 == 0 else 0, 1 if tw % 2 == 0 else 0)
                ups.append(nn.ConvTranspose2d(ch, out, 3, stride=2, padding=1, output_padding=pad))
                if i < len(outs) - 1:
                    ups.append(nn.ReLU())
                ch = out
            self.ups = nn.Sequential(*ups)
        else:
            self.start = None
            self.dec_fc = nn.Sequential(*dec, nn.Linear(width, c * h * w))
            self.ups = nn.Identity()

    def forward(self, x, y):
        onehot = F.one_hot(y, self.classes).float() if self.classes else None
        h = self.convs(x).flatten(1)
        h = self.fc(h if onehot is None else torch.cat([h, onehot], 1))
        mu = self.mu(h)
        logvar = self.logvar(h) if self.logvar is not None else None
        z = mu if logvar is None else mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        d = self.dec_fc(z if onehot is None else torch.cat([z, onehot], 1))
        if self.start is not None:
            d = self.ups(d.view(-1, *self.start))
        return d.view(-1, *self.image_shape), mu, logvar


def _relu_layers(n_in: int, widths) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_out in widths:
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        n_in = n_out
    return layers


def plain_loss(logits, x, mu, logvar):
    loss = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    if logvar is not None:
        loss = loss - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return loss


def run_plain(loader, config, device: torch.device, epochs: int, lr: float, seed: int,
              max_batches: int | None = None) -> dict:
    """Train ``epochs`` epochs of the plain loop; the same result keys as ``run_reference``."""
    torch.manual_seed(seed)
    model = PlainModel(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(loader.dataset)
    start = time.perf_counter()
    train_loss = 0.0
    for _epoch in range(epochs):
        model.train()
        train_loss = 0.0
        for batch_idx, (data, labels) in enumerate(loader):
            if max_batches is not None and batch_idx >= max_batches:
                break
            data, labels = data.to(device), labels.to(device)
            optimizer.zero_grad()
            logits, mu, logvar = model(data, labels)
            loss = plain_loss(logits, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {"samples": n * epochs, "train_seconds": seconds, "samples_per_s": n * epochs / seconds,
            "seconds_per_epoch": seconds / epochs, "last_epoch_loss": train_loss / n}


def main(argv: list[str] | None = None) -> int:
    """The plain loop alone (``train_throughput.py --reference plain`` runs it beside the engine)."""
    import argparse
    import sys
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parent
    sys.path[:0] = [str(repo), str(repo.parent)]
    from train_throughput import make_reference_loader, unpack_mnist

    from explorer.config import DataConfig
    from explorer.data import load_dataset
    from explorer.models import config_for_data, get_preset

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="conv-vae", help="whose architecture to train (default: conv-vae)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="only the first N training images")
    args = p.parse_args(argv)
    data = load_dataset(DataConfig(limit=args.limit))
    config = config_for_data(get_preset(args.preset).model, data.image_shape, data.num_classes)
    with tempfile.TemporaryDirectory(prefix="mnist-plain-") as tmp:
        unpack_mnist(Path(tmp))
        loader = make_reference_loader(Path(tmp), torch.device("cpu"), args.batch_size, args.limit)
        out = run_plain(loader, config, torch.device("cpu"), args.epochs, 1e-3, 1)
    print(f"plain {args.preset} loop: {out['samples_per_s']:.0f} samples/s, {out['seconds_per_epoch']:.2f} s/epoch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
