"""Evaluating a model in the window against the CLI, the same request on the same checkpoint.

The window evaluates the open model in a background task (``EvaluationView.evaluate_current``)
while the GUI thread keeps painting; the CLI runs ``latent-explorer evaluate`` in a process of
its own. Both go through ``evaluation.suite.evaluate_model``, so any gap is the window's: its
thread count, its thread priority, the GIL shared with the GUI thread, progress reports.

The CLI figure is the whole command as a user types it (the torch import and the data load
included); the window figure runs from the click on "Evaluate this model" to the numbers in
the table, with the checkpoint already open. Runs alternate (CLI, window, CLI, ...), so a
machine that gets busier part-way hits both alike.

    python benchmarks/evaluation_window.py [--checkpoint FILE] [--iw 100] [--repeats 2]
                                           [--groups loss,recon,latent,samples,likelihood]
                                           [--train-limit N] [--json]

Without ``--checkpoint`` a ``vae`` is trained for one epoch on the bundled MNIST first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROUPS = ("loss", "recon", "latent", "samples", "likelihood")
CLI_FLAGS = {"recon": ["--recon"], "latent": ["--latent"], "samples": ["--samples"]}


def cli_command(checkpoint: Path, groups: set[str], iw: int, n_samples: int) -> list[str]:
    command = [sys.executable, "-m", "explorer", "evaluate", str(checkpoint), "--n-samples", str(n_samples)]
    for group in sorted(groups):
        command += CLI_FLAGS.get(group, [])
    if "likelihood" in groups:
        command += ["--iw", str(iw)]
    return command


def time_cli(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


class WindowBench:
    """One offscreen window with the checkpoint open, evaluated again on each call."""

    def __init__(self, checkpoint: Path, groups: set[str], iw: int, n_samples: int) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtCore import QSettings

        from explorer.gui.app.application import make_application

        self.app = make_application(sys.argv[:1])
        from explorer.gui.app.main_window import MainWindow

        settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(settings=settings)
        self.window.autosave.set_every(0)
        self.window.resize(1280, 800)
        self.window.show()
        opened: list[bool] = []
        self.window.files.open_checkpoint(str(checkpoint), remember=False, on_opened=lambda: opened.append(True),
                                          on_failed=lambda: opened.append(False))
        session = self.window.session
        self._wait(lambda: bool(opened) and session.view_model is not None and session.data is not None, 300,
                   "opening")
        if not opened[0]:
            raise SystemExit("evaluation_window: the window could not open the checkpoint")
        view = self.window.evaluation_view
        view.likelihood.setChecked("likelihood" in groups)
        view.samples.setChecked("samples" in groups)
        view.latent.setChecked("latent" in groups)
        view.recon.setChecked("recon" in groups)
        view.iw_k.setValue(iw)
        self.view = view
        self.n_samples = n_samples

    def _wait(self, done, seconds: float, what: str) -> None:
        deadline = time.perf_counter() + seconds
        while not done():
            if time.perf_counter() > deadline:
                raise SystemExit(f"evaluation_window: {what} took over {seconds:.0f} s")
            self.app.processEvents()
            time.sleep(0.002)

    def run(self) -> float:
        view = self.view
        assert view.request().n_samples == self.n_samples, "the window's sample count differs from the CLI's"
        started = time.perf_counter()
        view.evaluate_button.click()
        self._wait(lambda: view._current_model is None, 3600, "the window's evaluation")
        seconds = time.perf_counter() - started
        row = view._current_row()
        # Beside a training run the model moves on while it is evaluated: the numbers belong to
        # the snapshot taken at the click, said in the status line rather than put in the row.
        if (row is None or row.record is None) and not view.status.text().startswith("Evaluated"):
            raise SystemExit(f"evaluation_window: no numbers in the table ({view.status.text()})")
        return seconds

    def run_beside_training(self, epochs: int) -> tuple[float, float, float]:
        """Evaluate the model being trained while its run goes on: (evaluation seconds, the
        run's samples/s in the window before the click, and while the evaluation ran)."""
        session, panel = self.window.session, self.window.panel
        panel.epochs.setValue(epochs)
        rates: list[tuple[float, float]] = []
        session.step.connect(lambda ev: rates.append((time.perf_counter(), ev.samples_per_s)))
        self.window.start_training()
        self._wait(lambda: len(rates) >= 8 and session.view_model is not None and session.data is not None, 600,
                   "starting the run")
        before = sorted(r for _, r in rates[-5:])[2]
        started = time.perf_counter()
        seconds = self.run()
        during = [r for t, r in rates if started < t]
        session.stop()
        self._wait(lambda: not session.is_running, 120, "stopping the run")
        return seconds, before, (sorted(during)[len(during) // 2] if during else float("nan"))

    def close(self) -> None:
        self.window.session.shutdown()
        self.window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint to evaluate (default: train a vae first)")
    parser.add_argument("--groups", default="loss,recon,latent,likelihood",
                        help=f"comma-separated, from {', '.join(GROUPS)} (loss is always measured)")
    parser.add_argument("--iw", type=int, default=100, help="K of the importance-weighted likelihood")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=0, help="train the vae on this many images (0: all)")
    parser.add_argument("--while-training", type=int, default=0, metavar="EPOCHS",
                        help="then evaluate once more while the window trains a vae for this many epochs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    groups = {g.strip() for g in args.groups.split(",") if g.strip()} | {"loss"}
    unknown = groups - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    from explorer.evaluation.suite import DEFAULT_SAMPLES

    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = Path(tempfile.mkdtemp()) / "vae.safetensors"
        command = [sys.executable, "-m", "explorer", "train", "--model", "vae", "--epochs", "1",
                   "--out", str(checkpoint)]
        if args.train_limit:
            command += ["--limit", str(args.train_limit)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    window = WindowBench(checkpoint, groups, args.iw, DEFAULT_SAMPLES)
    cli: list[float] = []
    gui: list[float] = []
    for _ in range(args.repeats):
        cli.append(time_cli(cli_command(checkpoint, groups, args.iw, DEFAULT_SAMPLES)))
        gui.append(window.run())
    beside = window.run_beside_training(args.while_training) if args.while_training else None
    window.close()
    result = {"groups": sorted(groups), "iw_k": args.iw, "cli_s": cli, "window_s": gui,
              "ratio_best": min(gui) / min(cli), "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    if beside is not None:
        result.update(beside_training_s=beside[0], training_samples_per_s_before=beside[1],
                      training_samples_per_s_during=beside[2])
    if args.json:
        print(json.dumps(result))
    else:
        print(f"groups {', '.join(result['groups'])}, K={args.iw}")
        print(f"CLI (whole command)   best {min(cli):7.2f} s   runs {', '.join(f'{v:.2f}' for v in cli)}")
        print(f"window (click->table) best {min(gui):7.2f} s   runs {', '.join(f'{v:.2f}' for v in gui)}")
        print(f"window / CLI (best)   {result['ratio_best']:.2f}x   load {result['loadavg'][0]:.1f}")
        if beside is not None:
            print(f"window, beside a training run: {beside[0]:.2f} s ({beside[0] / min(gui):.2f}x idle); the run's "
                  f"samples/s {beside[1]:,.0f} before, {beside[2]:,.0f} during")
    return 0


if __name__ == "__main__":
    sys.exit(main())
