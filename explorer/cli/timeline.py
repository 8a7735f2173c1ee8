"""``latent-explorer timeline``: a checkpoint's training timeline as a film."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.cli.common import _output_path, check_checkpoint
from explorer.cli.signals import _Signals

FILM_SUFFIXES = (".gif", ".mp4")  # explorer.training.film.FILM_SUFFIXES (that module imports torch)


def check_timeline_args(args: argparse.Namespace) -> None:
    """--out (a film's name in a folder that can take it) and the checkpoint's path, before
    torch is imported."""
    _output_path(args.out, FILM_SUFFIXES)
    check_checkpoint(args.checkpoint)


def cmd_timeline(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """A film of the checkpoint's training timeline (explorer.training.film), written atomically."""
    from explorer.atomic import check_writable
    from explorer.display import plural
    from explorer.training.checkpoint import load_checkpoint
    from explorer.training.film import check_film_path, export_film

    check_film_path(args.out)
    check_writable(Path(args.out))
    if "\x00" in args.checkpoint:
        from explorer.errors import CheckpointError

        raise CheckpointError(f"{args.checkpoint!r} is not a file name (it holds a NUL character)")
    try:
        frames = export_film(load_checkpoint(args.checkpoint), args.out, fps=args.fps, manifold=args.manifold)
    except Exception as exc:
        from explorer.errors import UserError
        from explorer.oom import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        # Frames stream to the file one at a time, so the film's length is not what ran out;
        # advise only what this call used (telling someone to drop a --manifold they never
        # gave sends them looking for the wrong cause).
        advice = "a film without --manifold or " if args.manifold else ""
        raise UserError(f"out of memory while making the film; try {advice}a machine with more memory") from None
    print(f"wrote {plural(frames, 'frame')} to {args.out}", file=sys.stderr)
    return 0
