"""``latent-explorer generate``: new images from a generative model."""

from __future__ import annotations

import argparse

from explorer.cli.common import _load, _output_path, _save_npy, check_checkpoint
from explorer.cli.signals import _Signals

SUFFIXES = (".png", ".npy")


def check_generate_args(args: argparse.Namespace) -> None:
    """--out or --folder, and the checkpoint's path, before torch is imported."""
    if args.out is not None:
        _output_path(args.out, SUFFIXES)
    else:
        from explorer.atomic import check_writable_folder

        check_writable_folder(args.folder)
    check_checkpoint(args.checkpoint)


def cmd_generate(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    import torch

    from explorer.analysis.grids import image_grid, save_png
    from explorer.display import plural
    from explorer.errors import UserError

    out = _output_path(args.out, SUFFIXES) if args.out is not None else None
    if out is None:
        from explorer.atomic import check_writable_folder

        check_writable_folder(args.folder)
    ckpt, model, dev = _load(args.checkpoint)
    cfg = ckpt.model_config
    if args.label is not None and not cfg.conditional:
        raise UserError(f"this {cfg.preset or 'model'} has no classes, so --label cannot be used; "
                        "train a conditional model (cvae, conv-cvae) for that")
    y = None
    nrow = None
    if cfg.conditional:
        if args.label is not None:
            if not 0 <= args.label < cfg.num_classes:
                names = ckpt.class_names
                raise UserError(f"this model knows classes 0 to {cfg.num_classes - 1}"
                                + (f" ({', '.join(names)})" if names else "") + f", not {args.label}")
            y = torch.full((args.n,), args.label, dtype=torch.long)
        elif args.folder:
            y = torch.arange(cfg.num_classes).repeat_interleave(args.n)
        else:
            y = torch.arange(args.n) % cfg.num_classes
            nrow = cfg.num_classes
    n = args.n if y is None else y.numel()
    from explorer.memory_budget import check_generate

    check_generate(cfg, n, device=dev)  # before anything is drawn: one line saying how many fit
    with torch.no_grad():
        images = model.sample(n, y=None if y is None else y.to(dev),
                              generator=torch.Generator().manual_seed(args.seed)).cpu()
    if out is None:
        from explorer.analysis.dataset_export import write_image_folder

        written = write_image_folder(args.folder, images.numpy(), None if y is None else y.numpy(),
                                     ckpt.class_names)
        print(f"wrote {plural(len(written), 'image')} to {args.folder}")
        return 0
    if out.suffix.lower() == ".npy":
        _save_npy(out, images.numpy())
    else:
        save_png(image_grid(images, nrow=nrow), out)
    return 0
