"""The packaged app's entry script (PyInstaller needs a file): the same ``main`` as the
``latent-explorer`` console script, so ``--self-test`` and every command work there too."""

import sys

from explorer.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
