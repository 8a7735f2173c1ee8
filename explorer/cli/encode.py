"""``latent-explorer encode``: the latent codes of a split."""

from __future__ import annotations

import argparse

from explorer.cli.common import _load, _load_data, _output_path, check_checkpoint
from explorer.cli.signals import _Signals

SUFFIXES = (".npy", ".csv")


def check_encode_args(args: argparse.Namespace) -> None:
    """--out and the checkpoint's path, before torch is imported."""
    _output_path(args.out, SUFFIXES)
    check_checkpoint(args.checkpoint)


def cmd_encode(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    from explorer.analysis.export import save_codes
    from explorer.analysis.latents import encode_images

    out = _output_path(args.out, SUFFIXES)
    ckpt, model, dev = _load(args.checkpoint)
    data = _load_data(ckpt)
    images = data.train_images if args.split == "train" else data.test_images
    labels = data.train_labels if args.split == "train" else data.test_labels
    codes, _ = encode_images(model, images, labels.to(dev) if labels is not None else None)
    save_codes(out, codes.numpy(), labels)
    return 0
