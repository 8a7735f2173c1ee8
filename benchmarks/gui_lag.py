"""How late the GUI event loop runs while training goes on in the worker thread.

A 10 ms QTimer records how late each tick fires (its lateness is what a person feels as
stutter: a drag or a repaint waits that long). Prints median, p99 and max lateness while
training a preset on the bundled MNIST, with an idle baseline measured in the same run for
reference, and the training throughput reached meanwhile (training competes with painting
for the same cores, so a lag figure means little without it).

Every dock is shown and painted: the window tabs its bottom docks in two groups, and a
tabbed-away view costs nothing, so the benchmark splits them side by side (two rows) and
turns the latent plane's manifold overlay on, as a person exploring the model would.

    python benchmarks/gui_lag.py [--seconds 20] [--epochs N] [--limit N] [--preset vae]
                                 [--latent-dim 2] [--case train|replay|side-by-side] [--offscreen]
                                 [--axes pca|map] [--posteriors]

``--case replay`` scrubs the latent plane through the run's training timeline (the next
recorded epoch every 150 ms, cycling) while the run goes on; ``--case side-by-side`` trains
a 4-run beta sweep together in the Side by side dock while the linked cursor moves every
100 ms (every model decodes each new code). ``--posteriors`` turns the plane's Prior on and
moves the pointer onto a random test dot every 100 ms (its posterior ellipse drawn; on the
neighbour map the prior's contours are pushed through each refit in the background).
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


def print_gc_report(top: int = 15) -> None:
    """What a full collection walks now (objects made since ``gc.freeze``): a long GC pause
    on the GUI thread grows with this count."""
    from collections import Counter

    objects = gc.get_objects()
    kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    print(f"gc: {len(objects)} tracked objects outside the frozen {gc.get_freeze_count()}", file=sys.stderr)
    for kind, count in kinds.most_common(top):
        print(f"gc:   {count:>8}  {kind}", file=sys.stderr)
    modules = Counter(getattr(o, "__module__", None) or "?" for o in objects if type(o).__name__ == "function")
    print("gc: functions by module: " + ", ".join(f"{m} {n}" for m, n in modules.most_common(top)), file=sys.stderr)
    del objects


def measure(app, seconds: float, interval_ms: int = 10, until=None) -> np.ndarray:
    """Lateness (ms) of each tick of an ``interval_ms`` timer for ``seconds``, or until the
    signal ``until`` fires (a run that ends early). The first ticks are dropped: they pay
    for the loop starting, not for anything a person would see."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    expected = [float(interval_ms)]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        lateness.append(max(0.0, now - expected[0]))
        expected[0] = now + interval_ms

    timer = QTimer()
    timer.setTimerType(timer.timerType().PreciseTimer)
    timer.setInterval(interval_ms)
    timer.timeout.connect(tick)
    timer.start()
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    if until is not None:
        until.connect(loop.quit)
    loop.exec()
    if until is not None:
        until.disconnect(loop.quit)
    timer.stop()
    return np.asarray(lateness[5:] or [0.0], dtype=np.float64)


def summary(name: str, lateness: np.ndarray) -> dict:
    return {"case": name, "ticks": int(lateness.size), "median_ms": float(np.median(lateness)),
            "p99_ms": float(np.percentile(lateness, 99)), "max_ms": float(lateness.max())}


def show_every_dock(window) -> list[dict]:
    """Untabify and show every dock so each view is painted while training.

    Docks that share a tab group in an area are taken out and laid out again side by side
    (bottom and top areas: two rows; left and right: one column). The main window's own
    attribute names are not used: docks are found as children, so a rebuilt window keeps
    working. Returns each dock's name and size once laid out."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget

    area_of = window.dockWidgetArea
    docks = [d for d in window.findChildren(QDockWidget) if d.parent() is window]
    for dock in docks:
        dock.setVisible(True)
    Area = Qt.DockWidgetArea
    for area in (Area.LeftDockWidgetArea, Area.RightDockWidgetArea, Area.TopDockWidgetArea,
                 Area.BottomDockWidgetArea):
        group = [d for d in docks if area_of(d) == area and not d.isFloating()]
        if not any(window.tabifiedDockWidgets(d) for d in group):
            continue
        for dock in group:
            window.removeDockWidget(dock)
        horizontal = area in (Area.TopDockWidgetArea, Area.BottomDockWidgetArea)
        rows = [group[: (len(group) + 1) // 2], group[(len(group) + 1) // 2:]] if horizontal else [group]
        window.addDockWidget(area, rows[0][0])
        rows[0][0].show()
        if len(rows) > 1 and rows[1]:
            window.splitDockWidget(rows[0][0], rows[1][0], Qt.Orientation.Vertical)
        along = Qt.Orientation.Horizontal if horizontal else Qt.Orientation.Vertical
        for row in rows:
            for before, dock in zip(row, row[1:]):
                window.splitDockWidget(before, dock, along)
        for dock in group:
            dock.show()
    return [{"dock": d.objectName() or d.windowTitle(), "width": d.width(), "height": d.height(),
             "tabbed": bool(window.tabifiedDockWidgets(d)), "visible": d.isVisible()} for d in docks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of training measured (default 20)")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="epochs the run is set to (default 1000: it outlasts --seconds); the measurement "
                             "ends early when the run does")
    parser.add_argument("--limit", type=int, default=0, help="images per split (0 = all)")
    parser.add_argument("--preset", default="vae")
    parser.add_argument("--latent-dim", type=int, default=2,
                        help="size of the code (default 2: the exact plane; above 2 the plane shows PCA axes)")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="seconds of the idle reference (default 3)")
    parser.add_argument("--no-manifold", action="store_true", help="leave the plane's manifold overlay off")
    parser.add_argument("--axes", choices=("pca", "map"), default="pca",
                        help="the plane's axes: pca, or the neighbour map, refitted in the background while it trains")
    parser.add_argument("--size", default="1920x1080", help="window size WxH (default 1920x1080)")
    parser.add_argument("--no-gc-freeze", action="store_true", help="skip gc.freeze() (to measure its effect)")
    parser.add_argument("--gc-report", action="store_true",
                        help="after the run, list the kinds of objects a full collection has to walk")
    parser.add_argument("--offscreen", action="store_true", help="use Qt's offscreen platform (no display)")
    parser.add_argument("--case", choices=("train", "replay", "side-by-side"), default="train",
                        help="what happens while training: nothing else (default), scrubbing the timeline, or "
                             "a 4-run sweep side by side with the linked cursor moving")
    parser.add_argument("--posteriors", action="store_true",
                        help="Prior on, and the pointer onto a random test dot every 100 ms (train and replay cases)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # A sweep side by side saves its runs: into a scratch folder, never the user's data.
    os.environ.setdefault("LATENT_EXPLORER_DATA", tempfile.mkdtemp(prefix="gui-lag-data-"))
    if args.offscreen or not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from explorer.presets import PRESETS

    if args.preset not in PRESETS:
        parser.error(f"--preset must be one of {', '.join(PRESETS)}")
    if args.latent_dim < 1 or args.epochs < 1 or args.seconds <= 0:
        parser.error("--latent-dim and --epochs must be positive, --seconds above 0")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error("--size must look like 1920x1080")

    from PySide6.QtCore import QSettings

    from explorer.gui.app.application import make_application

    app = make_application(sys.argv[:1])  # the app's own set-up: plotting options, GC on the GUI thread
    from explorer.gui.app.main_window import MainWindow
    from explorer.gui.views.latent_plane import LatentPlane
    from explorer.gui.views.training_panel import TrainingPanel

    settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.autosave.set_every(0)
    window.resize(width, height)
    window.show()
    app.processEvents()
    docks = show_every_dock(window)
    panel = window.findChild(TrainingPanel)
    panel.preset.setCurrentIndex(panel.preset.findData(args.preset))
    panel.latent.setValue(args.latent_dim)
    panel.limit.setValue(args.limit)
    panel.epochs.setValue(args.epochs)
    from explorer.runtime.heap import keep_collections_short

    plane = window.findChild(LatentPlane)
    if args.axes != "pca":
        plane.axes_mode.setCurrentIndex(plane.axes_mode.findData(args.axes))
    manifold = getattr(plane, "show_manifold", None)
    if manifold is not None and not args.no_manifold:
        manifold.setChecked(True)
    for _ in range(3):
        app.processEvents()
    docks = show_every_dock(window)  # sizes once laid out
    if not args.no_gc_freeze:
        keep_collections_short()  # as the app does once its window is built
    sys.setswitchinterval(0.001)

    session = window.session
    steps: list[tuple[float, int, float]] = []  # (time, global step, samples/s the engine reported)
    session.step.connect(lambda ev: steps.append((time.perf_counter(), ev.global_step, ev.samples_per_s)))
    batch_size = panel.batch_size.value()

    results = [summary("idle window", measure(app, min(args.idle_seconds, args.seconds)))]
    from PySide6.QtCore import QTimer

    busy = QTimer()  # what the case does on the GUI thread while it is measured
    hovering = QTimer()  # --posteriors: the pointer onto a test dot
    if args.case == "side-by-side":
        window.runs_dock.show()
        window.runs_view.betas.setText("0.5, 1, 2, 4")
        window.runs_view.train_beta_sweep()
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline and window.runs.sweeping and \
                not all(r.coords is not None for r in window.runs.runs if window.runs.runs):
            app.processEvents()
            time.sleep(0.005)
        if not window.runs.sweeping:
            print(f"gui_lag: the sweep did not start ({window.runs_view.status.text()})", file=sys.stderr)
            return 1
        rng = np.random.default_rng(0)

        def move_cursor() -> None:
            runs = [r for r in window.runs.runs if r.axes is not None]
            if runs:
                window.runs.set_point(runs[0], *rng.normal(size=2))

        busy.timeout.connect(move_cursor)
        busy.start(100)
        case = f"4-run sweep {args.preset} {args.latent_dim}-D side by side"
        started = time.perf_counter()
        results.append(summary(case, measure(app, args.seconds)))
        window.runs.stop_sweep()
        window.runs.shutdown()
    else:
        window.start_training()
        deadline = time.perf_counter() + 120
        while session.state != "training" and session.is_running and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.005)
        if session.state != "training":
            print(f"gui_lag: training did not start (state {session.state})", file=sys.stderr)
            return 1
        case = f"training {args.preset} {args.latent_dim}-D"
        if args.case == "replay":
            bar = window.plane.timeline_bar
            deadline = time.perf_counter() + 300
            while bar.frames < 2 and session.is_running and time.perf_counter() < deadline:
                app.processEvents()
                time.sleep(0.005)
            if bar.frames < 2:
                print("gui_lag: the run recorded fewer than 2 timeline frames", file=sys.stderr)
                return 1

            def scrub() -> None:
                bar.slider.setValue((bar.slider.value() + 1) % max(bar.frames, 1))

            busy.timeout.connect(scrub)
            busy.start(150)
            case += ", scrubbing the timeline"
        if args.posteriors:
            from PySide6.QtCore import QPointF
            from PySide6.QtTest import QTest

            plane.show_prior.setChecked(True)
            rng = np.random.default_rng(0)

            def hover_a_dot() -> None:
                scatters = [item for item in plane.scatters if len(item.data)]
                if not scatters:
                    return
                item = scatters[int(rng.integers(len(scatters)))]
                k = int(rng.integers(len(item.data)))
                x, y = float(item.data["x"][k]), float(item.data["y"][k])
                QTest.mouseMove(plane.plot.viewport(), plane.plot.mapFromScene(plane.box.mapViewToScene(QPointF(x, y))))

            hovering.timeout.connect(hover_a_dot)
            hovering.start(100)
            case += ", Prior on, hovering a dot every 100 ms"
        started = time.perf_counter()
        results.append(summary(case, measure(app, args.seconds, until=session.run_finished)))
    busy.stop()
    hovering.stop()
    if args.gc_report:
        print_gc_report()
    measured_s = time.perf_counter() - started
    window.session.stop()
    window.session.shutdown()
    getattr(window, "close_without_asking", window.close)()  # the model is unsaved: no question

    inside = [s for s in steps if s[0] >= started]
    throughput = {"steps": 0, "samples_per_s": 0.0, "engine_median_samples_per_s": 0.0}
    if len(inside) >= 2:
        (t0, g0, _), (t1, g1, _) = inside[0], inside[-1]
        throughput = {"steps": g1 - g0, "samples_per_s": (g1 - g0) * batch_size / max(t1 - t0, 1e-9),
                      "engine_median_samples_per_s": float(np.median([s[2] for s in inside]))}
    results[-1].update(throughput)
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    report = {"results": results, "case": args.case, "preset": args.preset, "latent_dim": args.latent_dim,
              "limit": args.limit,
              "measured_s": measured_s, "batch_size": batch_size, "docks": docks,
              "manifold": bool(manifold is not None and manifold.isChecked()), "loadavg": list(load),
              "cpus": os.cpu_count(), "platform": app.platformName()}
    if args.json:
        print(json.dumps(report))
    else:
        hidden = [d["dock"] for d in docks if d["tabbed"] or not d["visible"]]
        print(f"GUI event-loop lateness (10 ms timer), {measured_s:.0f} s of training {args.preset} "
              f"{args.latent_dim}-D on {'all' if not args.limit else args.limit} images, gc.freeze "
              f"{'off' if args.no_gc_freeze else 'on'}, platform {app.platformName()}, window {width}x{height}")
        print(f"{len(docks)} docks shown{' (hidden: ' + ', '.join(hidden) + ')' if hidden else ', none tabbed'}; "
              f"manifold overlay {'on' if report['manifold'] else 'off'}; load average {load[0]:.2f} "
              f"on {os.cpu_count()} CPUs")
        print(f"{'case':<52}{'ticks':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'samples/s':>11}")
        for r in results:
            rate = f"{r['samples_per_s']:>11.0f}" if "samples_per_s" in r else f"{'':>11}"
            print(f"{r['case']:<52}{r['ticks']:>7}{r['median_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}{rate}")
        print(f"training steps while measuring: {throughput['steps']} (engine-reported median "
              f"{throughput['engine_median_samples_per_s']:.0f} samples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
