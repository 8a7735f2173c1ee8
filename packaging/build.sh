#!/usr/bin/env bash
# Build the one-folder desktop app with PyInstaller, then run its self-test.
#
#   packaging/build.sh          (or: make package)
#
# Produces dist/latent-explorer/ (run dist/latent-explorer/latent-explorer); build/ holds
# PyInstaller's intermediate files. Uses the project's .venv (made by `make setup`), or the
# Python named by $VENV. LATENT_EXPLORER_BUNDLE_CUDA=1 keeps every CUDA library (GPU-capable,
# several GB larger); see packaging/latent-explorer.spec.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    echo "build.sh: no virtual environment at $VENV; run 'make setup' first" >&2
    exit 1
fi

# PyInstaller only (the 'package' extra); the app's own dependencies, torch included, are
# already in the venv and must not be replaced.
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    "$PY" -m pip install --quiet "pyinstaller>=6.11"
fi

nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build" packaging/latent-explorer.spec

APP="$ROOT/dist/latent-explorer/latent-explorer"
echo "build.sh: built $APP ($(du -sh "$ROOT/dist/latent-explorer" | cut -f1))"

# The packaged app must start, open its window, train and close: a missing library or data
# file shows up here, not on a user's machine.
start=$(date +%s.%N)
QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" "$APP" --self-test
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "build.sh: self-test passed in %.1f s\n", e - s }'
