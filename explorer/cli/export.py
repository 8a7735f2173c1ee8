"""``latent-explorer export``: a model in formats other tools run (ONNX, pt2, a web page)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.cli.common import _load, _load_data, check_checkpoint
from explorer.cli.signals import _Signals


def _format_and_part(args: argparse.Namespace) -> tuple[str, str]:
    """The format and the part asked for, each checked against --out (no torch)."""
    from explorer.display import with_article
    from explorer.errors import UserError
    from explorer.export import DEFAULT_PART, SUFFIXES, format_for_suffix

    named = Path(args.out).name or args.out
    by_suffix = format_for_suffix(args.out)
    fmt = args.format or by_suffix
    if fmt is None:
        raise UserError(f"{named}: end --out in .onnx, .pt2 or .html, or say --format onnx, pt2 or web")
    if by_suffix != fmt:
        raise UserError(f"{named}: {with_article(fmt)} export must end in {SUFFIXES[fmt]}")
    part = args.part or DEFAULT_PART[fmt]
    if fmt == "web" and part != "decoder":
        raise UserError("the web page runs the decoder only; use --part decoder (the default for web)")
    return fmt, part


def _files(out: str, fmt: str, part: str) -> list[Path]:
    """The files an export writes (explorer.export.common.targets, whose module imports torch):
    one part at --out; both beside it as NAME.encoder.SUFFIX and NAME.decoder.SUFFIX."""
    from explorer.export import SUFFIXES

    path = Path(out)
    if part != "both":
        return [path]
    suffix = ".htm" if out.lower().endswith(".htm") else SUFFIXES[fmt]
    stem = path.name[: -len(suffix)]
    return [path.with_name(f"{stem}.{name}{suffix}") for name in ("encoder", "decoder")]


def check_export_args(args: argparse.Namespace) -> None:
    """The format and part, the files --out names (each writable) and the checkpoint's path,
    before torch is imported."""
    from explorer.atomic import check_writable

    fmt, part = _format_and_part(args)
    for path in _files(args.out, fmt, part):
        check_writable(path)
    check_checkpoint(args.checkpoint)


def cmd_export(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """The model for tools other than this app (explorer.export): ONNX files, torch.export
    programs or one web page. Every file is proven writable, and a missing package or a
    model the format cannot hold is said, before the checkpoint is even loaded where it can."""
    from explorer.export import SUFFIXES, export_model
    from explorer.export.common import check_targets, targets

    fmt, part = _format_and_part(args)
    if fmt == "onnx":
        from explorer.export.onnx import require_packages

        require_packages()
    check_targets(targets(args.out, part, ".htm" if args.out.lower().endswith(".htm") else SUFFIXES[fmt]))
    ckpt, model, _ = _load(args.checkpoint)
    codes = labels = None
    class_names = ckpt.class_names
    if fmt == "web":
        from explorer.export.web import check_web, first_codes

        check_web(model)  # a conv model is refused before its data is loaded
        data = _load_data(ckpt)
        codes, labels = first_codes(model, data.test_images, data.test_labels)
        class_names = class_names or data.class_names
    written = export_model(model, fmt, part, args.out, codes=codes, labels=labels, class_names=class_names)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1024**2:,.1f} MB)", file=sys.stderr)
    return 0
