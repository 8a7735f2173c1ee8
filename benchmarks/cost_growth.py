"""How training cost grows: samples/s and peak memory as the latent size, the image size,
the dataset and the batch size grow, for the MLP `vae` and the `conv-vae`.

One factor moves at a time from a base case (20-D code, 28x28 grey, 60,000 images, batch
128), so each row says what that factor alone costs. Every case runs in a fresh process, so
its peak RSS is its own (torch, the data on the device, the model, the optimizer, the
compiled step); the engine trains with the project's defaults (precision and ``--compile``
"auto" over the preset's own epoch count, so the MLP step compiles as it does in a default
run; the table's "step" column says which) until ``--steps`` steps after the first
``--warmup`` (which pay for compiling), and the figure is the engine's own samples/s over
those steps, each logged window timed alone (so the test passes at epoch ends, frequent on
small data, are left out).

Images are seeded random uint8 pictures of the asked shape: the cost of a step does not
depend on what the pixels show. The test split is 1,000 images.

    python benchmarks/cost_growth.py [--presets vae,conv-vae] [--steps 120] [--warmup 30] [--compile auto]
                                     [--factors latent,image,data,batch] [--markdown] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, replace

# The base latent size is the preset's own (20 for vae, 16 for conv-vae): 0 stands for it.
BASE_LATENT, BASE_IMAGE, BASE_DATA, BASE_BATCH = 0, (1, 28), 60_000, 128
FACTORS = {
    "latent": [("latent", v) for v in (2, 16, 20, 64, 256)],
    "image": [("image", v) for v in ((1, 28), (3, 32), (3, 64))],
    "data": [("data", v) for v in (10_000, 60_000, 200_000)],
    "batch": [("batch", v) for v in (32, 128, 512)],
}


@dataclass(frozen=True)
class Case:
    preset: str
    latent: int = BASE_LATENT
    channels: int = BASE_IMAGE[0]
    size: int = BASE_IMAGE[1]
    images: int = BASE_DATA
    batch: int = BASE_BATCH

    @property
    def latent_dim(self) -> int:
        from explorer.presets import get_preset

        return self.latent or get_preset(self.preset).model.latent_dim

    @property
    def label(self) -> str:
        return (f"{self.preset} {self.latent_dim}-D {self.size}x{self.size}x{self.channels} "
                f"{self.images // 1000}k batch {self.batch}")


def run_case(case: Case, steps: int, warmup: int, compile_mode: str = "auto") -> dict:
    """In this process: train ``case`` for ``warmup + steps`` steps and measure it."""
    import resource

    import torch

    from explorer.config import TrainConfig
    from explorer.data.dataset import ImageData
    from explorer.models.registry import build_model
    from explorer.presets import get_preset
    from explorer.training.control import TrainingControl
    from explorer.training.engine import train
    from explorer.training.events import RunStarted, StepLoss

    preset = get_preset(case.preset)
    config = replace(preset.model, latent_dim=case.latent_dim, image_shape=(case.channels, case.size, case.size))
    generator = torch.Generator().manual_seed(0)
    shape = (case.channels, case.size, case.size)
    data = ImageData("synthetic", torch.randint(0, 256, (case.images, *shape), dtype=torch.uint8, generator=generator),
                     None, torch.randint(0, 256, (1000, *shape), dtype=torch.uint8, generator=generator), None)
    model = build_model(config)
    # The preset's own epoch count, so ``--compile auto`` decides as it does for a user's
    # default run (the MLP step compiles when the run is long enough; the table says which).
    cfg = TrainConfig(epochs=preset.epochs, batch_size=case.batch, lr=preset.lr, log_every=10, timeline=False,
                      compile=compile_mode)
    control = TrainingControl()
    run = train(model, data, cfg, control)
    measured_steps = 0
    seconds = 0.0
    previous_step = 0
    run_started: RunStarted | None = None
    for event in run:
        if isinstance(event, RunStarted):
            run_started = event
        if not isinstance(event, StepLoss):
            continue
        # Each StepLoss times its own window of steps, which leaves out the epoch-end test
        # pass (small data ends an epoch every few dozen steps).
        window = event.global_step - previous_step
        previous_step = event.global_step
        if event.global_step - window >= warmup:
            measured_steps += window
            seconds += window * case.batch / event.samples_per_s
            if measured_steps >= steps:
                break
    control.stop()
    run.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**asdict(case), "latent": case.latent_dim, "label": case.label,
            "samples_per_s": measured_steps * case.batch / seconds if measured_steps else float("nan"),
            "peak_rss_mib": peak_kib / 1024, "data_mib": data.train_images.numel() / 2**20,
            "precision": run_started.precision if run_started else "?",
            "compiled": bool(run_started.compiled) if run_started else False}


def cases(presets: list[str], factors: list[str]) -> list[Case]:
    out: list[Case] = []
    for preset in presets:
        for factor in factors:
            for name, value in FACTORS[factor]:
                case = Case(preset)
                if name == "latent":
                    case = replace(case, latent=value)
                elif name == "image":
                    case = replace(case, channels=value[0], size=value[1])
                elif name == "data":
                    case = replace(case, images=value)
                else:
                    case = replace(case, batch=value)
                if case.label not in {c.label for c in out}:
                    out.append(case)
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| preset | latent | image | images | batch | step | samples/s | peak RSS (MiB) | of which data |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['latent']} | {r['size']}x{r['size']}x{r['channels']} | "
                     f"{r['images']:,} | {r['batch']} | {'compiled' if r['compiled'] else 'eager'} | "
                     f"{r['samples_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} | {r['data_mib']:,.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="vae,conv-vae")
    parser.add_argument("--factors", default="latent,image,data,batch")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="the engine's --compile for every case (default auto: as a default run decides)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, as JSON (the child process)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(Case(**json.loads(args.case)), args.steps, args.warmup, args.compile)))
        return 0
    factors = [f.strip() for f in args.factors.split(",") if f.strip()]
    if any(f not in FACTORS for f in factors):
        parser.error(f"--factors takes {', '.join(FACTORS)}")
    rows = []
    for case in cases([p.strip() for p in args.presets.split(",") if p.strip()], factors):
        done = subprocess.run([sys.executable, __file__, "--case", json.dumps(asdict(case)), "--steps",
                               str(args.steps), "--warmup", str(args.warmup), "--compile", args.compile],
                              capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if done.returncode != 0:
            print(f"{case.label}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        if not (args.json or args.markdown):
            print(f"{row['label']:<42} {row['samples_per_s']:>9,.0f} samples/s  peak {row['peak_rss_mib']:>6,.0f} MiB"
                  f"  ({row['precision']}{', compiled' if row['compiled'] else ''})", flush=True)
    if args.json:
        print(json.dumps({"rows": rows, "loadavg": os.getloadavg()}))
    elif args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
