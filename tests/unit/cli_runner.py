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


def assert_user_error(rc: int, err: str, *words: str) -> str:
    """Exit 2 and one 'latent-explorer: error: ...' line on stderr, no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("latent-explorer: error: "), err
    for word in words:
        assert word.lower() in lines[0].lower(), err
    return lines[0]


def assert_usage_error(rc: int, err: str, *words: str) -> None:
    """argparse's kind of error: usage, then exactly one error line; exit 2; no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    for word in words:
        assert word.lower() in errors[0].lower(), err
