"""Start-up time: launch to the first painted frame, to the main window, to "ready to train".

Launches the real app (``python -m explorer``) several times with
``LATENT_EXPLORER_STARTUP_TRACE`` pointing at a fresh file; the app appends its milestones
on the system-wide monotonic clock, and this script subtracts the moment it called
``Popen``. Milestones:

- ``first_paint``: the splash has painted (only Qt is loaded at that point);
- ``window_shown``: torch, pyqtgraph and the main window are built and shown;
- ``ready``: the first event-loop turn after that: a click on Start is handled now.

The *reference*, in the same run, is the design the splash replaced: import everything,
build the main window, show it; its first paint is the main window's. Each launch uses
private settings, data and cache folders.

    python benchmarks/startup.py [--runs 5] [--platform offscreen|xcb] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from explorer.gui.app.startup import read_trace  # noqa: E402

REFERENCE = r"""
import json, os, sys, time
from PySide6.QtWidgets import QApplication
from explorer.gui.app.application import make_application
app = make_application(sys.argv[:1])
from explorer.gui.app.main_window import MainWindow
def mark(event):
    with open(os.environ["LATENT_EXPLORER_STARTUP_TRACE"], "a") as f:
        f.write(json.dumps({"event": event, "monotonic": time.monotonic()}) + "\n")
class Traced(MainWindow):
    painted = False
    def paintEvent(self, event):
        super().paintEvent(event)
        if not self.painted:
            self.painted = True
            mark("first_paint")
w = Traced()
w.show()
mark("window_shown")
from PySide6.QtCore import QTimer
QTimer.singleShot(0, lambda: mark("ready"))
app.exec()
"""


def launch(command: list[str], env: dict[str, str], timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        trace = Path(tmp) / "trace.jsonl"
        env = {**env, "LATENT_EXPLORER_STARTUP_TRACE": str(trace), "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
               "LATENT_EXPLORER_DATA": str(Path(tmp) / "data"), "LATENT_EXPLORER_CACHE": str(Path(tmp) / "cache")}
        t0 = time.monotonic()
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        marks: dict[str, float] = {}
        try:
            while not {"ready", "first_paint"} <= marks.keys() and time.monotonic() - t0 < timeout:
                if proc.poll() is not None:
                    raise SystemExit(f"the app exited early ({proc.returncode}): "
                                     f"{proc.stderr.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.01)
                marks = {name: item["monotonic"] - t0 for name, item in read_trace(trace).items()}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not {"ready", "first_paint"} <= marks.keys():
            raise SystemExit(f"no first paint or no 'ready' within {timeout} s; got {marks}")
        return marks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="launches of each (default 5; the first warms the disk cache)")
    p.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
                   help="Qt platform: xcb (a real or Xvfb display) or offscreen (default: $QT_QPA_PLATFORM "
                        "or offscreen)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    env = {**os.environ, "QT_QPA_PLATFORM": args.platform}
    app = [sys.executable, "-m", "explorer"]
    ref = [sys.executable, "-c", REFERENCE]
    launch(app, env, args.timeout)  # untimed: fill the page cache for both
    launch(ref, env, args.timeout)
    results: dict[str, list[dict[str, float]]] = {"app": [], "reference": []}
    for i in range(args.runs):
        results["app"].append(launch(app, env, args.timeout))
        results["reference"].append(launch(ref, env, args.timeout))
        if not args.json:
            a, r = results["app"][-1], results["reference"][-1]
            print(f"  run {i + 1}/{args.runs}: app first paint {a['first_paint']:.3f} s, ready {a['ready']:.3f} s; "
                  f"reference first paint {r['first_paint']:.3f} s", file=sys.stderr, flush=True)
    summary = {name: {event: statistics.median(run[event] for run in runs)
                      for event in ("first_paint", "window_shown", "ready")} for name, runs in results.items()}
    ratio = summary["reference"]["first_paint"] / summary["app"]["first_paint"]
    if args.json:
        print(json.dumps({"platform": args.platform, "runs": results, "median": summary,
                          "first_paint_speedup": ratio}, indent=2))
        return 0
    print(f"platform {args.platform}, {args.runs} launches each, medians in seconds from Popen")
    print(f"{'':<34}{'first paint':>12}{'window shown':>14}{'ready':>8}")
    labels = {"app": "app (splash, then heavy imports)", "reference": "reference (import all, then show)"}
    for name, label in labels.items():
        s = summary[name]
        print(f"{label:<34}{s['first_paint']:>12.3f}{s['window_shown']:>14.3f}{s['ready']:>8.3f}")
    print(f"first paint: the app is {ratio:.1f}x sooner than the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
