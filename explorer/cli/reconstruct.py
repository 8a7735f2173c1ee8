"""``latent-explorer reconstruct``: test images and their reconstructions."""

from __future__ import annotations

import argparse

from explorer.cli.common import _load, _load_data, _output_path, _save_npy, check_checkpoint
from explorer.cli.signals import _Signals

SUFFIXES = (".png", ".npy")


def check_reconstruct_args(args: argparse.Namespace) -> None:
    """--out and the checkpoint's path, before torch is imported."""
    _output_path(args.out, SUFFIXES)
    check_checkpoint(args.checkpoint)


def cmd_reconstruct(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    import torch

    from explorer.analysis.grids import pairs_grid, save_png
    from explorer.data import to_float

    out = _output_path(args.out, SUFFIXES)
    ckpt, model, dev = _load(args.checkpoint)
    data = _load_data(ckpt)
    n = min(args.n, data.test_images.shape[0])
    x = to_float(data.test_images[:n]).to(dev)
    y = data.test_labels[:n].to(dev) if model.is_conditional and data.test_labels is not None else None
    with torch.no_grad():
        recon = model.reconstruct(x, y).cpu()
    if out.suffix.lower() == ".npy":
        _save_npy(out, recon.numpy())
    else:
        save_png(pairs_grid(x.cpu(), recon), out)
    return 0
