"""The command line: a contract outside scripts rely on (docs/architecture.md, "The command line").

User mistakes end as one sentence on stderr and exit status 2; no tracebacks for them.
Names and paths (a preset, a checkpoint, a dataset, the folder of an output) are checked
by each command's ``check_*_args`` before torch is imported, so such a mistake is refused
in milliseconds, not after the seconds torch takes to load.
Every output path is proven writable before any work starts, and every file is written
atomically (explorer.atomic). SIGINT, SIGTERM and SIGHUP all interrupt like Ctrl+C; an
interrupted or diverged ``train`` never replaces an existing file at ``--out`` (it saves
beside it), and a second signal during a save waits until the save is complete.

One module per command (train.py, evaluate.py, sweep.py, ...), each a thin layer over
the public API and the engine; the parser (parse.py), signals (signals.py) and what they
share (common.py). ``main`` dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from explorer.cli.anomaly import check_anomaly_args, cmd_anomaly
from explorer.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_PROCESS_LOST,
    EXIT_USER_ERROR,
    _error,
    _other_rank,
    check_checkpoint,
)
from explorer.cli.encode import check_encode_args, cmd_encode
from explorer.cli.evaluate import check_evaluate_args, cmd_evaluate
from explorer.cli.export import check_export_args, cmd_export
from explorer.cli.generate import check_generate_args, cmd_generate
from explorer.cli.parse import build_parser
from explorer.cli.plugins import cmd_plugins
from explorer.cli.reconstruct import check_reconstruct_args, cmd_reconstruct
from explorer.cli.signals import _import_while_starting, _Signals
from explorer.cli.sweep import check_sweep_args, cmd_sweep
from explorer.cli.timeline import check_timeline_args, cmd_timeline
from explorer.cli.train import check_train_args, cmd_train

__all__ = ["EXIT_DIVERGED", "EXIT_INTERRUPTED", "EXIT_PROCESS_LOST", "EXIT_USER_ERROR", "build_parser", "cmd_anomaly",
           "cmd_encode", "cmd_evaluate", "cmd_export", "cmd_generate", "cmd_plugins", "cmd_reconstruct", "cmd_sweep",
           "cmd_timeline", "cmd_train", "main"]

# What to change when a command runs out of memory: (the batch-like knob, the data-like knob).
_OOM_ADVICE = {
    "train": ("a smaller --batch-size", "fewer images (--limit) or a smaller model (--hidden, --latent-dim)"),
    "generate": ("a smaller --n", "several smaller calls with different --seed values"),
    "reconstruct": ("a smaller --n", "a machine with more memory"),
    "evaluate": ("--device cpu", "a machine with more memory"),
    "encode": ("--split test (the smaller split)", "a machine with more memory"),
    "anomaly": ("a machine with more memory", "fewer normal classes"),
    "timeline": ("a machine with more memory", "a film without --manifold"),
    "plugins": ("a machine with more memory", "fewer model plugins installed"),
    "sweep": ("a smaller --batch-size", "fewer runs or fewer images (--limit)"),
    "export": ("one part at a time (--part encoder or --part decoder)", "a machine with more memory"),
}

def _no_checks(args: argparse.Namespace) -> None:
    """A command with no names or paths to check."""


# Each command's checks of names and paths, which import no torch (the command itself is looked
# up when it runs, so a test may replace it here).
CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": check_train_args, "evaluate": check_evaluate_args, "generate": check_generate_args,
    "timeline": check_timeline_args, "sweep": check_sweep_args, "plugins": _no_checks,
    "reconstruct": check_reconstruct_args, "encode": check_encode_args, "anomaly": check_anomaly_args,
    "export": check_export_args,
}


def main(argv: Sequence[str] | None = None, *, process: bool = False) -> int:
    """Run one command. ``process`` (the entry points): this process ends when the command
    does, so the signal handlers stay in place, holding any late signal, instead of being
    put back for a caller; a Ctrl+C as the program exits then ends it quietly."""
    try:
        return _main(argv, process)
    except KeyboardInterrupt:  # before the handlers are in place, or after they are put back
        print("latent-explorer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

def _main(argv: Sequence[str] | None, process: bool = False) -> int:
    from explorer.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        if args.command:
            parser.error(f"--self-test takes no command (got {args.command!r})")
        from explorer.gui.app.self_test import run_self_test

        return run_self_test()
    command = args.command or "gui"
    if command == "gui":
        from explorer.app import missing_display, run_gui

        if getattr(args, "checkpoint", None) is not None:
            try:
                check_checkpoint(args.checkpoint)  # one line now, not a dialog after Qt and torch load
            except UserError as exc:
                _error(exc)
                return EXIT_USER_ERROR
        no_display = missing_display()
        if no_display is not None:  # Qt would abort the process (status 134) instead of saying so
            _error(no_display)
            return EXIT_USER_ERROR
        return run_gui(getattr(args, "checkpoint", None))
    handler = {"train": cmd_train, "evaluate": cmd_evaluate, "generate": cmd_generate, "timeline": cmd_timeline,
               "sweep": cmd_sweep, "plugins": cmd_plugins,
               "reconstruct": cmd_reconstruct, "encode": cmd_encode, "anomaly": cmd_anomaly,
               "export": cmd_export}[command]
    try:
        CHECKS[command](args)  # names and paths: refused before torch is imported
    except UserError as exc:
        if not _other_rank():  # under torchrun, rank 0 alone says it
            _error(exc)
        return EXIT_USER_ERROR
    if process:
        _import_while_starting()
    with _Signals(restore=not process) as signals:
        try:
            return handler(args, signals)
        except UserError as exc:
            _error(exc)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print(f"latent-explorer: interrupted{signals.named()}; nothing was written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            from explorer.oom import is_out_of_memory, out_of_memory_message

            if not is_out_of_memory(exc):
                raise
            _error(out_of_memory_message(exc, *_OOM_ADVICE[command]))
            return EXIT_USER_ERROR
