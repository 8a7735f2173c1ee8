"""``latent-explorer`` and ``python -m explorer``: the same entry point."""

from __future__ import annotations

import signal
import sys

from explorer import startup_signals


def main() -> int:
    # First, before anything heavy: a signal while numpy, torch or Qt is importing ends the
    # process at once (exit 128 + signum, one line) instead of raising KeyboardInterrupt
    # into a half-imported module (explorer.startup_signals). Commands put their own
    # handlers in place once their imports are done.
    startup_signals.install()
    startup_signals.pause_point("before-imports")
    from explorer.cli import main as cli_main

    status = cli_main(sys.argv[1:], process=True)
    # The work is done and reported: a signal from now on must not turn the exit status
    # into "killed" (Python puts the default handlers back while it shuts down).
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                                                  if hasattr(signal, name)})
    return status


if __name__ == "__main__":
    sys.exit(main())
