"""How long each picture view holds the GUI thread when it redraws for new weights.

Reconstructions, samples, interpolation and traversal encode or decode a batch through the
model; they ask for it in the task runner (``views/background_picture.py``), so the GUI thread
only asks (a copy of the new weights included) and paints the result. The reference, measured
in the same run on the same model, is the same work done on the GUI thread with the view's
model, as the views did before: the request's work function called inline, then the paint.

    python benchmarks/view_refresh.py [--checkpoint PATH] [--repeats 15] [--busy 0] [--json]

Without ``--checkpoint`` a conv-VAE is trained for one epoch on a generated folder of
64x64 colour images (the issue's case). ``--busy N`` adds N busy-loop processes while it
measures (a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

VIEWS = ("reconstructions", "samples", "interpolation", "traversal")


def spin() -> None:
    while True:
        pass


def make_checkpoint(folder: str) -> str:
    """A conv-VAE trained one epoch on 320 generated 64x64 colour images (two classes)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = os.path.join(folder, "images")
    for name, colour in (("red", (200, 60, 40)), ("blue", (40, 90, 210))):
        os.makedirs(os.path.join(images, name))
        for i in range(160):
            yy, xx = np.mgrid[0:64, 0:64]
            cx, cy, r = *rng.uniform(16, 48, 2), rng.uniform(6, 16)
            disk = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
            pixels = np.where(disk, np.array(colour), rng.integers(0, 60, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(images, name, f"{i:03d}.png"))
    path = os.path.join(folder, "conv-vae-64.safetensors")
    subprocess.run([sys.executable, "-m", "explorer", "train", "--model", "conv-vae", "--dataset", images,
                    "--image-size", "64", "--channels", "3", "--epochs", "1", "--out", path],
                   check=True, capture_output=True)
    return path


def wait_until(app, condition, timeout_s: float = 120.0) -> None:
    end = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the views did not settle")
        app.processEvents()
        time.sleep(0.001)


def measure(app, view, repeats: int) -> dict:
    """Median ms on the GUI thread: asking plus painting now, and the reference (the work inline)."""
    import torch

    pictures = view.pictures
    redraw = view.refresh if hasattr(view, "refresh") else view.redraw
    painted: list[float] = []
    show = pictures._show

    def timed_show(result) -> None:
        start = time.perf_counter()
        show(result)
        painted.append((time.perf_counter() - start) * 1000)

    pictures._show = timed_show
    asked, landed, reference = [], [], []
    for _ in range(repeats):
        pictures.drop_copy()  # as after every snapshot of a training run: the copy is taken again
        start = time.perf_counter()
        redraw()
        asked.append((time.perf_counter() - start) * 1000)
        wait_until(app, lambda: pictures.current and not pictures.pending)
        landed.append((time.perf_counter() - start) * 1000)
    own = [a + p for a, p in zip(asked, painted[-repeats:], strict=True)]
    pictures._show = show

    real_request = pictures.request

    def inline(model, work) -> None:  # the old way: the work and the paint on the GUI thread
        with torch.no_grad():
            show(work(model))

    pictures.request = inline
    for _ in range(repeats):
        start = time.perf_counter()
        redraw()
        reference.append((time.perf_counter() - start) * 1000)
    pictures.request = real_request
    return {"gui_thread_ms": float(np.median(own)), "asking_ms": float(np.median(asked)),
            "painting_ms": float(np.median(painted)), "to_picture_ms": float(np.median(landed)),
            "reference_gui_thread_ms": float(np.median(reference)),
            "ratio": float(np.median(own) / np.median(reference))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a model to open (default: train the 64x64 colour conv-VAE)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--busy", type=int, default=0, help="busy-loop processes to add while measuring")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = tempfile.mkdtemp()
    os.environ.setdefault("LATENT_EXPLORER_DATA", os.path.join(folder, "data"))
    checkpoint = args.checkpoint or make_checkpoint(folder)

    from explorer.gui.app.application import make_application, tune_runtime
    from explorer.gui.state.latent_state import LatentState
    from explorer.gui.state.session import TrainingSession
    from explorer.gui.views.interpolation_view import InterpolationView
    from explorer.gui.views.recon_view import ReconstructionView
    from explorer.gui.views.samples_view import SamplesView
    from explorer.gui.views.traversal_view import TraversalView

    app = make_application(sys.argv[:1])
    session = TrainingSession()
    latent = LatentState(session)
    views = dict(zip(VIEWS, (ReconstructionView(session), SamplesView(latent), InterpolationView(latent),
                             TraversalView(latent)), strict=True))
    for view in views.values():
        view.resize(700, 450)
        view.show()
    session.open(checkpoint)
    wait_until(app, lambda: latent.ready and session.tasks.idle and all(v.pictures.current for v in views.values()))
    tune_runtime()
    busy = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    try:
        results = {name: measure(app, view, args.repeats) for name, view in views.items()}
    finally:
        for process in busy:
            process.terminate()
            process.join()
        latent.shutdown()
        session.shutdown()
    config = session.view_model.config
    result = {"model": f"{config.preset} {config.image_shape} latent {config.latent_dim}", "busy": args.busy,
              "load_average": os.getloadavg()[0], "views": results}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, {args.busy} busy processes added, load average {result['load_average']:.1f}; "
          f"median of {args.repeats}")
    print(f"{'view':<16}{'GUI thread':>12}{'(ask':>9}{'paint)':>9}{'to picture':>12}{'reference':>11}{'ratio':>8}")
    for name, r in results.items():
        print(f"{name:<16}{r['gui_thread_ms']:>10.2f}ms{r['asking_ms']:>7.2f}ms{r['painting_ms']:>7.2f}ms"
              f"{r['to_picture_ms']:>10.1f}ms{r['reference_gui_thread_ms']:>9.1f}ms{r['ratio']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
