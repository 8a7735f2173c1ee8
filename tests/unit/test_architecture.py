"""The layering rule (DESIGN.md section 1): nothing outside explorer.gui loads Qt."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import explorer

QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "superqt")


def _non_gui_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(explorer.__path__, prefix="explorer."):
        if info.name.startswith("explorer.gui") or info.name in ("explorer.app",):
            continue
        names.append(info.name)
    return names


def test_the_walk_finds_the_core_modules():
    names = _non_gui_modules()
    for expected in ("explorer.cli", "explorer.training.engine", "explorer.models.autoencoder",
                     "explorer.data.folder", "explorer.training.checkpoint"):
        assert expected in names


def test_no_module_outside_gui_imports_qt():
    names = _non_gui_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"Qt modules loaded by non-GUI code: {out.stdout.strip()}"


def test_the_cli_parser_builds_without_torch_or_qt():
    """`latent-explorer --help` should be instant: no torch, no Qt at parse time."""
    code = (
        "import sys\n"
        "from explorer.cli import build_parser\n"
        "build_parser()\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
