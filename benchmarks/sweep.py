"""A beta sweep trained together against the same runs one after another.

The *together* side is ``explorer.training.batched.train_together``: the runs (default: the
``vae`` preset, betas 0.5, 1, 2 and 4, seed 0) as stacked weights, one batched forward and
one Adam step per training step. The *sequential* side is ``explorer.training.engine.train``
on each run in turn, in the same process, on the same data, with the same configs. Both
sides include what a run does besides its steps (the per-epoch test-set evaluation of every
run, the snapshots); data loading and model construction happen before either clock starts.
Runs alternate sequential, together, sequential, together, ... (``--repeats``), and the
summary takes the best of each side. Each side's final test losses are printed too: the
two compute the same runs, so they agree closely.

On a shared machine other processes distort CPU timings, so run it on a quiet one; the
``/proc/loadavg`` before and after each side is reported with ``--json``.

    python benchmarks/sweep.py                          # full MNIST, 1 epoch, 4 betas
    python benchmarks/sweep.py --epochs 2 --repeats 2 --threads 2
    python benchmarks/sweep.py --limit 2000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/sweep.py",
                                description="Seconds of a beta sweep trained together (stacked weights, one batched "
                                            "forward) against the same runs one after another with engine.train.")
    p.add_argument("--preset", default="vae", help="an MLP-family preset (default vae)")
    p.add_argument("--betas", default="0.5,1,2,4", help="comma-separated betas, one run each (default 0.5,1,2,4)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    p.add_argument("--limit", type=int, default=None, help="use only this many images (default: all of MNIST)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--precision", default="auto", help="auto (default), fp32 or bf16")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile of the step, on both sides (default auto: the engine's rule)")
    p.add_argument("--repeats", type=int, default=1, help="timed rounds of each side; the best counts (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from explorer.config import DataConfig
    from explorer.data import load_dataset
    from explorer.training.batched import train_together
    from explorer.training.engine import drive, train
    from explorer.training.events import EpochEnd
    from explorer.training.runs import model_config_for, prepare_run, train_config_for

    if args.threads:
        torch.set_num_threads(args.threads)
    betas = [float(b) for b in args.betas.split(",") if b.strip()]
    data_config = DataConfig(limit=args.limit)
    data = load_dataset(data_config)
    cfg = train_config_for(args.preset, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                           precision=args.precision, compile=args.compile)

    def models() -> list:
        return [prepare_run(model_config_for(args.preset, beta=b), data_config, cfg, data=data).model for b in betas]

    def sequential() -> tuple[float, list[float]]:
        ms = models()
        losses = []
        start = time.perf_counter()
        for m in ms:
            ends: list[EpochEnd] = []
            drive(train(m, data, cfg), lambda e, ends=ends: ends.append(e) if isinstance(e, EpochEnd) else None)
            losses.append(ends[-1].test["loss"] if ends else float("nan"))
        return time.perf_counter() - start, losses

    def together() -> tuple[float, list[float]]:
        ms = models()
        losses = [float("nan")] * len(ms)
        start = time.perf_counter()

        def listen(item) -> None:
            if isinstance(item.event, EpochEnd):
                losses[item.run] = item.event.test["loss"]

        drive(train_together(ms, data, cfg), listen)
        return time.perf_counter() - start, losses

    rounds = []
    for _ in range(max(1, args.repeats)):
        load_before = _load()
        seq_s, seq_losses = sequential()
        load_mid = _load()
        tog_s, tog_losses = together()
        rounds.append({"sequential_s": seq_s, "together_s": tog_s, "ratio": seq_s / tog_s,
                       "loadavg": [load_before, load_mid, _load()]})
    best_seq = min(r["sequential_s"] for r in rounds)
    best_tog = min(r["together_s"] for r in rounds)
    report = {"preset": args.preset, "betas": betas, "epochs": args.epochs,
              "train_size": int(data.train_images.shape[0]),
              "test_size": int(data.test_images.shape[0]), "device": args.device, "precision": args.precision,
              "threads": torch.get_num_threads(), "sequential_s": best_seq, "together_s": best_tog,
              "ratio": best_seq / best_tog, "rounds": rounds,
              "test_loss_sequential": seq_losses, "test_loss_together": tog_losses}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{len(betas)} runs of {args.preset} (betas {args.betas}), {args.epochs} epoch(s) on "
              f"{report['train_size']} images, {report['threads']} torch thread(s), {args.device}")
        print(f"  one after another (engine.train): {best_seq:8.2f} s")
        print(f"  together (train_together):       {best_tog:8.2f} s")
        print(f"  ratio:                            {best_seq / best_tog:8.2f}x")
        print("  test loss, sequential: " + ", ".join(f"{v:.3f}" for v in seq_losses))
        print("  test loss, together:   " + ", ".join(f"{v:.3f}" for v in tog_losses))
    return report


if __name__ == "__main__":
    main()
