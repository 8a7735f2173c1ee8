"""Drag-to-image latency on the latent plane, and the time to decode and draw a manifold grid.

Opens the real main window on a model, presses the left button on the marker and moves
the mouse across the plane in small steps, spaced like a real mouse (pyqtgraph drops
moves closer than 10 ms apart). For each move it times from sending the mouse event to
the decoded image being painted: the event handled, the code decoded, and the event
loop run until Qt has repainted what changed (``--full-repaint`` instead repaints the
whole plane, 10,000 dots included, and the image synchronously: the worst case). Then it
times an n x n manifold grid over the visible region from the request to the picture painted
(decoded in the task runner; the request's own time on the GUI thread is given apart), against
the same grid decoded one image at a time (the reference: what a naive loop does), in the
same run.

    python benchmarks/latent_drag.py [--preset vae] [--latent-dim 2] [--moves 300]
        [--grid 20] [--while-training] [--offscreen] [--json]

Targets (issue #4): drag p95 under 15 ms (30+ frames a second with room to spare), a
20 x 20 grid under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": int(a.size), "median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max())}


def make_checkpoint(preset: str, latent_dim: int | None, folder: str) -> str:
    """A model trained for one epoch on 5,000 images, so the plane has real clusters."""
    import torch

    from explorer.config import DataConfig
    from explorer.training.checkpoint import save_checkpoint
    from explorer.training.engine import run_to_end, train
    from explorer.training.runs import model_config_for, prepare_run, train_config_for

    run = prepare_run(model_config_for(preset, latent_dim=latent_dim), DataConfig(limit=5000),
                      train_config_for(preset, epochs=1))
    run_to_end(train(run.model, run.data, run.train_config))
    path = os.path.join(folder, f"{preset}.safetensors")
    save_checkpoint(path, run.model, run.data_config, run.train_config, class_names=run.data.class_names)
    torch.set_num_threads(1)
    return path


def wait_until(app, predicate, seconds: float = 60) -> None:
    deadline = time.perf_counter() + seconds
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the window did not get ready in time")
        app.processEvents()
        time.sleep(0.005)


def send_mouse(widget, kind, pos, button, buttons) -> None:
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = QPointF(pos)
    event = QMouseEvent(kind, local, widget.mapToGlobal(local), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def measure_drag(app, window, moves: int, full_repaint: bool) -> tuple[list[float], int]:
    from PySide6.QtCore import QEvent, QPointF, Qt

    plane, viewport = window.plane, window.plane.plot.viewport()
    decoded_view = window.code_view.decoded.view.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    (x0, x1), (y0, y1) = plane.visible_region()

    def pixel(x: float, y: float) -> QPointF:
        return QPointF(plane.plot.mapFromScene(plane.box.mapViewToScene(QPointF(x, y))))

    pos = plane.marker.pos()
    start = pixel(pos.x(), pos.y())
    send_mouse(viewport, QEvent.Type.MouseMove, start, none, none)
    send_mouse(viewport, QEvent.Type.MouseButtonPress, start, left, left)
    updates = [0]
    window.latent.code_changed.connect(lambda source: updates.__setitem__(0, updates[0] + 1))
    # A loop around the plane: a circle through 80% of the visible region.
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, 0.4 * (x1 - x0), 0.4 * (y1 - y0)
    times: list[float] = []
    for i in range(moves):
        angle = 2 * np.pi * i / moves * 3
        target = pixel(cx + rx * np.cos(angle), cy + ry * np.sin(angle))
        time.sleep(0.012)
        app.processEvents()
        t0 = time.perf_counter()
        send_mouse(viewport, QEvent.Type.MouseMove, target, none, left)
        if full_repaint:
            viewport.repaint()
            decoded_view.repaint()
        else:
            app.processEvents()  # Qt repaints what changed, as in the running app
        times.append((time.perf_counter() - t0) * 1000)
    send_mouse(viewport, QEvent.Type.MouseButtonRelease, target, left, none)
    return times[5:], updates[0]


def measure_grid(app, window, n: int, repeats: int) -> tuple[list[float], list[float], list[float]]:
    """The manifold is decoded in the task runner: time the request on the GUI thread, and
    from the request to the new picture painted (the decode, the task's hand-over through
    the runner's 15 ms poll, the paint)."""
    from explorer.analysis.manifold import decode_codes

    plane, state = window.plane, window.latent
    plane.grid_size.setValue(n)
    plane.show_manifold.setChecked(True)
    wait_until(app, lambda: plane.manifold_picture is not None and window.session.tasks.idle)
    grid_ms, asked_ms, naive_ms = [], [], []
    for _ in range(repeats):
        before = plane.manifold_picture
        t0 = time.perf_counter()
        plane.redraw_manifold()
        asked_ms.append((time.perf_counter() - t0) * 1000)
        wait_until(app, lambda before=before: plane.manifold_picture is not before)
        plane.plot.viewport().repaint()
        grid_ms.append((time.perf_counter() - t0) * 1000)
    codes = plane.manifold_codes()
    for _ in range(max(3, repeats // 5)):
        t0 = time.perf_counter()
        for code in codes:
            decode_codes(state.model, code[None], state.label)
        naive_ms.append((time.perf_counter() - t0) * 1000)
    return grid_ms, asked_ms, naive_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vae")
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--grid", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--while-training", action="store_true",
                        help="measure while the window trains a 2-D VAE on the full MNIST")
    parser.add_argument("--full-repaint", action="store_true",
                        help="repaint the whole plane and image synchronously after each move (worst case) "
                             "instead of letting Qt repaint what changed")
    parser.add_argument("--offscreen", action="store_true", help="use Qt's offscreen platform (no display)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.offscreen or not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    folder = tempfile.mkdtemp()
    os.environ.setdefault("LATENT_EXPLORER_DATA", os.path.join(folder, "data"))

    from PySide6.QtCore import QSettings

    from explorer.gui.app.application import make_application, tune_runtime

    app = make_application(sys.argv[:1])
    from explorer.gui.app.main_window import MainWindow

    checkpoint = make_checkpoint(args.preset, args.latent_dim, folder)
    settings = QSettings(os.path.join(folder, "bench.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.autosave.set_every(0)
    window.resize(1280, 800)
    window.show()
    window.files.open_checkpoint(checkpoint)
    wait_until(app, lambda: window.latent.ready and window.plane.plot.isVisible())
    tune_runtime()
    if args.while_training:
        window.panel.preset.setCurrentIndex(window.panel.preset.findData("vae"))
        window.panel.latent.setValue(args.latent_dim)
        window.panel.limit.setValue(0)
        window.panel.epochs.setValue(1000)
        window.start_training()
        wait_until(app, lambda: window.session.state == "training" and window.latent.ready)

    drag_ms, updates = measure_drag(app, window, args.moves, args.full_repaint)
    grid_ms, asked_ms, naive_ms = measure_grid(app, window, args.grid, args.repeats)
    window.session.stop()
    window.session.shutdown()
    window.close()

    result = {"preset": args.preset, "latent_dim": args.latent_dim, "while_training": args.while_training,
              "full_repaint": args.full_repaint,
              "platform": app.platformName(), "drag": percentiles(drag_ms), "code_updates": updates,
              "grid": {"n": args.grid, **percentiles(grid_ms)},
              "grid_request_on_gui_thread": percentiles(asked_ms),
              "grid_reference_one_by_one": percentiles(naive_ms),
              "grid_speedup": float(np.median(naive_ms) / np.median(grid_ms))}
    if args.json:
        print(json.dumps(result))
        return 0
    d, g = result["drag"], result["grid"]
    print(f"{args.preset}, latent {args.latent_dim}, {'while training' if args.while_training else 'idle'}, "
          f"platform {result['platform']}")
    print(f"drag to painted image: median {d['median_ms']:.2f} ms, p95 {d['p95_ms']:.2f} ms, "
          f"max {d['max_ms']:.2f} ms over {d['n']} moves ({updates} code updates)")
    print(f"{args.grid}x{args.grid} manifold from request to painted: median {g['median_ms']:.1f} ms, "
          f"p95 {g['p95_ms']:.1f} ms (of it on the GUI thread to ask: median {np.median(asked_ms):.2f} ms); "
          f"one image at a time (reference): {np.median(naive_ms):.1f} ms, {result['grid_speedup']:.1f}x slower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
