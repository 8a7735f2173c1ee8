"""How late the GUI event loop runs while training goes on in the worker thread.

A 10 ms QTimer records how late each tick fires (its lateness is what a person feels as
stutter: a drag or a repaint waits that long). Prints median, p99 and max lateness while
training the default model on the bundled MNIST, with an idle baseline measured in the
same run for reference.

    python benchmarks/gui_lag.py [--seconds 20] [--limit N] [--preset vae] [--offscreen]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time

import numpy as np


def measure(app, seconds: float, interval_ms: int = 10) -> np.ndarray:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    expected = [interval_ms]

    def tick() -> None:
        now = clock.elapsed()
        lateness.append(max(0, now - expected[0]))
        expected[0] = now + interval_ms

    timer = QTimer()
    timer.setTimerType(timer.timerType().PreciseTimer)
    timer.setInterval(interval_ms)
    timer.timeout.connect(tick)
    timer.start()
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()
    return np.asarray(lateness[5:], dtype=np.float64)


def summary(name: str, lateness: np.ndarray) -> dict:
    return {"case": name, "ticks": int(lateness.size), "median_ms": float(np.median(lateness)),
            "p99_ms": float(np.percentile(lateness, 99)), "max_ms": float(lateness.max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--limit", type=int, default=0, help="images per split (0 = all)")
    parser.add_argument("--preset", default="vae")
    parser.add_argument("--no-gc-freeze", action="store_true", help="skip gc.freeze() (to measure its effect)")
    parser.add_argument("--offscreen", action="store_true", help="use Qt's offscreen platform (no display)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.offscreen or not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from explorer.gui.app.main_window import MainWindow

    settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.set_autosave_every(0)
    window.show()
    window.panel.preset.setCurrentIndex(window.panel.preset.findData(args.preset))
    window.panel.latent.setValue(2)
    window.panel.limit.setValue(args.limit)
    window.panel.epochs.setValue(1000)
    app.processEvents()
    if not args.no_gc_freeze:
        gc.collect()
        gc.freeze()
    sys.setswitchinterval(0.001)

    results = [summary("idle window", measure(app, min(3.0, args.seconds)))]
    window.start_training()
    deadline = time.perf_counter() + 60
    while window.session.state != "training" and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    steps_before = window.loss_plot.point_count()
    results.append(summary(f"training {args.preset}", measure(app, args.seconds)))
    steps = window.loss_plot.point_count() - steps_before
    window.session.stop()
    window.session.shutdown()
    window.close()

    if args.json:
        print(json.dumps({"results": results, "loss_points_drawn": steps}))
    else:
        print(f"GUI event-loop lateness (10 ms timer), {args.seconds:.0f} s of training, gc.freeze "
              f"{'off' if args.no_gc_freeze else 'on'}, platform {app.platformName()}")
        print(f"{'case':<22}{'ticks':>7}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}")
        for r in results:
            print(f"{r['case']:<22}{r['ticks']:>7}{r['median_ms']:>11.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}")
        print(f"loss points received while measuring: {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
