"""``latent-explorer`` and ``python -m explorer``: the same entry point."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from explorer.cli import main as cli_main
    except KeyboardInterrupt:  # Ctrl+C while Python is still starting: nothing was done yet
        print("latent-explorer: interrupted", file=sys.stderr)
        return 130
    return cli_main(sys.argv[1:], process=True)


if __name__ == "__main__":
    sys.exit(main())
