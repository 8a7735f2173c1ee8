"""``latent-explorer`` and ``python -m explorer``: the same entry point."""

from __future__ import annotations

import signal
import sys


def main() -> int:
    try:
        from explorer.cli import main as cli_main
    except KeyboardInterrupt:  # Ctrl+C while Python is still starting: nothing was done yet
        print("latent-explorer: interrupted", file=sys.stderr)
        return 130
    status = cli_main(sys.argv[1:], process=True)
    # The work is done and reported: a signal from now on must not turn the exit status
    # into "killed" (Python puts the default handlers back while it shuts down).
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                                                  if hasattr(signal, name)})
    return status


if __name__ == "__main__":
    sys.exit(main())
