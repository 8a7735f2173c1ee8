"""The command line: a contract outside scripts rely on (docs/architecture.md, "The command line").

User mistakes end as one sentence on stderr and exit status 2; no tracebacks for them.
Every output path is proven writable before any work starts, and every file is written
atomically (explorer.atomic). SIGINT, SIGTERM and SIGHUP all interrupt like Ctrl+C; an
interrupted or diverged ``train`` never replaces an existing file at ``--out`` (it saves
beside it), and a second signal during a save waits until the save is complete.

One module per command (train.py, evaluate.py, sweep.py, ...), each a thin layer over
the public API and the engine; the parser (parse.py), signals (signals.py) and what they
share (common.py). ``main`` dispatches.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from explorer.cli.anomaly import cmd_anomaly
from explorer.cli.common import EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_PROCESS_LOST, EXIT_USER_ERROR, _error
from explorer.cli.encode import cmd_encode
from explorer.cli.evaluate import cmd_evaluate
from explorer.cli.export import cmd_export
from explorer.cli.generate import cmd_generate
from explorer.cli.parse import build_parser
from explorer.cli.plugins import cmd_plugins
from explorer.cli.reconstruct import cmd_reconstruct
from explorer.cli.signals import _import_while_starting, _Signals
from explorer.cli.sweep import cmd_sweep
from explorer.cli.timeline import cmd_timeline
from explorer.cli.train import cmd_train

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

        no_display = missing_display()
        if no_display is not None:  # Qt would abort the process (status 134) instead of saying so
            _error(no_display)
            return EXIT_USER_ERROR
        return run_gui(getattr(args, "checkpoint", None))
    handler = {"train": cmd_train, "evaluate": cmd_evaluate, "generate": cmd_generate, "timeline": cmd_timeline,
               "sweep": cmd_sweep, "plugins": cmd_plugins,
               "reconstruct": cmd_reconstruct, "encode": cmd_encode, "anomaly": cmd_anomaly,
               "export": cmd_export}[command]
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
