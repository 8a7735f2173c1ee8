"""Image folders larger than memory: the memory-mapped folder cache against loading into RAM.

Generates (once, kept in ``--folder``) a folder of ``--images`` small grey PNGs (28x28, ten
class sub-folders), then runs each case in a fresh Python process (a peak is per process):

- ``baseline``: imports torch and the project and builds the model: what every case costs;
- ``decode``: the first load through the cache (``LATENT_EXPLORER_FOLDER_CACHE=always``),
  which decodes every file into ``images.u8``: seconds and peak RSS;
- ``reload``: the second load, a cache hit: seconds and peak RSS;
- ``mapped``: a cache hit, then one epoch of ``--preset`` training on the mapped images;
- ``memory``: today's path (``LATENT_EXPLORER_FOLDER_CACHE=never``): every image decoded
  into RAM, then the same epoch.

Peak RSS is ``ru_maxrss``; it counts the map's pages that were read while they stay
resident (clean file pages the kernel can drop), so it is an upper bound on what the mapped
path needs.

    python benchmarks/large_folder.py [--images 200000] [--folder /tmp/large-folder] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = ("baseline", "decode", "reload", "mapped", "memory")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_folder(folder: Path, n: int, classes: int = 10) -> float:
    """``n`` 28x28 grey PNGs in ``classes`` sub-folders (skipped when already there); seconds taken."""
    import numpy as np
    from PIL import Image

    stamp = folder / ".complete"
    if stamp.exists() and stamp.read_text() == str(n):
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    for c in range(classes):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        base = ((np.sin(xx * (c + 1) / 5) + np.cos(yy * (c + 2) / 7)) * 60 + 128)
        img = (base + rng.normal(0, 20, (28, 28))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img, mode="L").save(folder / f"class{c}" / f"{i:07d}.png", compress_level=1)
    stamp.write_text(str(n))
    return time.perf_counter() - start


def run_case(case: str, folder: str, preset: str, batch: int, repeats: int = 1) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    from explorer.config import DataConfig, TrainConfig
    from explorer.data import load_dataset
    from explorer.data.folder_cache import is_memmapped
    from explorer.models import build_model, config_for_data, get_preset
    from explorer.training.engine import drive, train

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    config = DataConfig(dataset=folder, image_size=28, channels=1)
    out: dict = {"case": case}
    if case == "baseline":
        build_model(config_for_data(get_preset(preset).model, (1, 28, 28), 10))
        out["peak_rss_mib"] = peak_rss_mib()
        return out
    start = time.perf_counter()
    data = load_dataset(config)
    out["load_s"] = time.perf_counter() - start
    out["mapped"] = is_memmapped(data.train_images)
    out["train_images"] = int(data.train_images.shape[0])
    out["rss_after_load_mib"] = peak_rss_mib()
    if case in ("mapped", "memory"):
        epochs: list[int] = []  # min_steps may raise the epoch count on small folders

        def keep(ev: object) -> None:
            if type(ev).__name__ == "RunStarted":
                epochs.append(ev.epochs)  # type: ignore[attr-defined]

        times = []
        for _ in range(repeats):  # best of: other work on the machine only ever slows a run
            model = build_model(config_for_data(get_preset(preset).model, data.image_shape, data.num_classes))
            start = time.perf_counter()
            result = drive(train(model, data, TrainConfig(epochs=1, batch_size=batch, device="cpu")), keep)
            times.append(time.perf_counter() - start)
            assert result.status == "completed", result
        out["epochs"] = epochs[0] if epochs else 1
        out["train_s"] = min(times)
        out["train_s_all"] = times
        out["samples_per_s"] = out["epochs"] * data.train_images.shape[0] / min(times)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--folder", default="/tmp/large-folder", help="where the generated folder is kept")
    parser.add_argument("--preset", default="vae")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=1, help="training epochs timed per case (best of)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.folder, args.preset, args.batch_size, args.repeats)))
        return 0
    folder = Path(args.folder)
    made = make_folder(folder, args.images)
    cache = Path(str(folder) + "-cache")
    shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for case in args.cases.split(","):
        env = {**os.environ, "LATENT_EXPLORER_CACHE": str(cache),
               "LATENT_EXPLORER_FOLDER_CACHE": "never" if case == "memory" else "always"}
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--folder", str(folder),
                               "--preset", args.preset, "--batch-size", str(args.batch_size),
                               "--repeats", str(args.repeats)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    summary = {"images": args.images, "generate_s": made, "preset": args.preset, "batch_size": args.batch_size,
               "repeats": args.repeats,
               "cases": rows}
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{args.images:,} images of 28x28 grey; generated in {made:.1f} s (0 = reused)")
    print(f"{'case':10} {'load s':>8} {'train s':>8} {'samples/s':>10} {'RSS after load MiB':>19} {'peak RSS MiB':>13}")
    for r in rows:
        def f(key: str, width: int, fmt: str, r: dict = r) -> str:
            return format(format(r[key], fmt) if key in r else "-", f">{width}")
        print(f"{r['case']:10} {f('load_s', 8, '.1f')} {f('train_s', 8, '.1f')} {f('samples_per_s', 10, ',.0f')} "
              f"{f('rss_after_load_mib', 19, '.0f')} {f('peak_rss_mib', 13, '.0f')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
