"""``latent-explorer`` and ``python -m explorer``: the same entry point."""

from __future__ import annotations

import sys


def main() -> int:
    from explorer.cli import main as cli_main

    return cli_main(sys.argv[1:], process=True)


if __name__ == "__main__":
    sys.exit(main())
