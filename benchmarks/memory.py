"""Peak memory of full-MNIST training: the project's engine, the app's window, the reference.

Each case runs in a fresh Python process (a peak is per process), trains one epoch on the
60000 bundled MNIST images and reports the peak resident set size (``ru_maxrss``), and on
CUDA the peak of ``torch.cuda.max_memory_allocated``. ``baseline`` is a process that only
imports torch and loads the data, so the figures above it are what training itself costs.

- ``reference``: the pytorch/examples VAE loop (see train_throughput.py), torchvision
  MNIST through a DataLoader;
- ``engine``: ``explorer.training.engine.train`` with the ``--preset`` model;
- ``window``: the app's main window (offscreen, 1920x1080), every dock shown side by side
  and the manifold on (as ``gui_lag.py`` lays them out), Start clicked, until the epoch
  ends: training plus every live view.

``--latent-dim`` sets the code size of the engine's and the window's model (20 is the
case where the views hold the most: per-dimension sliders, the PCA plane, the map).

    python benchmarks/memory.py [--preset vae] [--latent-dim 20] [--device auto|cpu|cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = ("baseline", "reference", "engine", "window")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_case(case: str, preset: str, device_name: str, latent_dim: int | None = None) -> dict:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    from explorer.config import DataConfig, TrainConfig
    from explorer.data import load_dataset

    device = torch.device("cuda" if device_name == "auto" and torch.cuda.is_available() else
                          ("cpu" if device_name == "auto" else device_name))
    out: dict = {"case": case, "device": device.type}
    if case == "baseline":
        load_dataset(DataConfig())
    elif case == "reference":
        from train_throughput import make_reference_loader, run_reference, unpack_mnist

        with tempfile.TemporaryDirectory(prefix="mnist-ref-") as tmp:
            unpack_mnist(Path(tmp))
            loader = make_reference_loader(Path(tmp), device, 128, None)
            run_reference(loader, device, 1, 1e-3, 1)
    elif case == "engine":
        from dataclasses import replace

        from explorer.models import build_model, config_for_data, get_preset
        from explorer.training.engine import run_to_end, train

        data = load_dataset(DataConfig())
        config = get_preset(preset).model
        if latent_dim:
            config = replace(config, latent_dim=latent_dim)
        model = build_model(config_for_data(config, data.image_shape, data.num_classes))
        result = run_to_end(train(model, data, TrainConfig(epochs=1, device=device.type)))[1]
        assert result.status == "completed", result
    elif case == "window":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtCore import QEventLoop, QSettings, QTimer

        from explorer.gui.app.application import make_application, tune_runtime
        from explorer.gui.app.main_window import MainWindow

        app = make_application(sys.argv[:1])
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["LATENT_EXPLORER_DATA"] = tmp
            window = MainWindow(settings=QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat))
            from gui_lag import show_every_dock

            window.resize(1920, 1080)
            window.show()
            app.processEvents()
            show_every_dock(window)
            panel = window.panel
            panel.preset.setCurrentIndex(panel.preset.findData(preset))
            if latent_dim:
                panel.latent.setValue(latent_dim)
            manifold = getattr(window.plane, "show_manifold", None)
            if manifold is not None:
                manifold.setChecked(True)
            panel.epochs.setValue(1)
            tune_runtime()
            loop = QEventLoop()
            window.session.run_finished.connect(lambda _r: loop.quit())
            window.session.error.connect(lambda m: (print(m, file=sys.stderr), loop.quit()))
            QTimer.singleShot(0, window.start_training)
            QTimer.singleShot(600_000, loop.quit)
            loop.exec()
            assert window.session.history.last_epoch == 1, "the epoch did not finish"
            window.session.shutdown()
            window.latent.shutdown()
            app.processEvents()
    out["peak_rss_mib"] = peak_rss_mib()
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="vae")
    p.add_argument("--latent-dim", type=int, help="the code size (default: the preset's)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--json", action="store_true")
    p.add_argument("--case", help=argparse.SUPPRESS)  # the child process's job
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.preset, args.device, args.latent_dim)))
        return 0
    results = []
    for case in args.cases.split(","):
        extra = ["--latent-dim", str(args.latent_dim)] if args.latent_dim else []
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--preset", args.preset,
                               "--device", args.device, *extra], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"{case} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if not args.json:
            print(f"  {case}: {results[-1]['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    base = next((r["peak_rss_mib"] for r in results if r["case"] == "baseline"), None)
    latent = f", {args.latent_dim}-D" if args.latent_dim else ""
    print(f"peak memory, one epoch of full MNIST, preset {args.preset}{latent}, device {results[0]['device']}")
    print(f"{'case':<10}{'peak RSS MiB':>14}{'above baseline':>16}" + (f"{'peak CUDA MiB':>16}" if any(
        "peak_cuda_mib" in r for r in results) else ""))
    for r in results:
        above = f"{r['peak_rss_mib'] - base:>16.0f}" if base is not None else ""
        cuda = f"{r['peak_cuda_mib']:>16.0f}" if "peak_cuda_mib" in r else ""
        print(f"{r['case']:<10}{r['peak_rss_mib']:>14.0f}{above}{cuda}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
