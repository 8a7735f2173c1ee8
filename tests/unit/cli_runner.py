"""Running the CLI in-process for tests (imported by the CLI test modules)."""

from __future__ import annotations

import contextlib
import io

from explorer.cli import main


def run(*argv: object) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr). argparse errors exit via SystemExit."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()
