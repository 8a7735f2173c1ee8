"""Latent maps on real codes (issue #23): how long a map takes, how well it separates the
digits, how far its inverse lands from the code a point stands for, and how fast a drag is.

For each latent size it trains a ``vae`` through ``explorer.train`` on the first
``--train-images`` bundled MNIST training images, encodes (mean codes) ``--fit-codes``
further training images the model never saw and the test split, and then:

- **fit time** of ``explorer.analysis.maps.fit_map`` ("pca" and "umap") on the fit codes
  with ``--threads`` torch threads: the first fit in a fresh process (this script started
  again for each map; its import is timed apart) and warm (median of ``--repeats``);
- **separation**: the leave-one-out 10-nearest-neighbour accuracy of the 2-D map points
  against the digit labels, PCA vs UMAP-style (and of the codes themselves, a ceiling);
- **the inverse** on held-out test codes z: each is placed on the map (``transform``),
  brought back (z') and decoded. Figures: the relative code error ||z' - z|| / spread
  (spread: the RMS distance of the fit codes from their mean) and the decoded pixel error
  (per-pixel MSE of decode(z') against decode(z)), for the map's own inverse and the
  baselines: the nearest mapped code, the 8-neighbour inverse-distance blend (what maps.py
  uses), a small MLP (2 -> D, trained on the fit codes' (point, code) pairs), and the mean
  code (no map at all);
- **drag latency**: ``MapAxes.lift`` of one point and the model's decode of that code on
  one torch thread (as on the GUI thread), over ``--drag-points`` random points within the
  map's 1-99 percentile box; target p95 under 15 ms.

Each timed part also reports how many CPUs other processes took meanwhile (``/proc/stat``):
on a shared 2-core machine a competing process changes the fit time several-fold.

    python benchmarks/latent_map.py [--dims 16,20] [--train-images 20000] [--epochs 5]
        [--fit-codes 10000] [--held-out 2000] [--threads 2] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUSY_WARNING = 0.25  # other processes' CPUs above which a timing is marked as disturbed


# -- contention -------------------------------------------------------------------------------

def _cpu_ticks() -> tuple[int, int] | None:
    """(busy ticks of the machine, ticks of this process); None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12])
    except (OSError, ValueError, IndexError):
        return None


class Timed:
    """``with Timed() as t: ...`` then ``t.seconds`` and ``t.others_cpus`` (how many CPUs
    other processes kept busy meanwhile, None off Linux)."""

    def __enter__(self) -> Timed:
        self._ticks, self._start = _cpu_ticks(), time.perf_counter()
        return self

    def __exit__(self, *_) -> None:
        self.seconds = time.perf_counter() - self._start
        after = _cpu_ticks()
        self.others_cpus = None  # too short a span to tell (the counters tick at 100 Hz)
        if self._ticks is not None and after is not None and self.seconds >= 0.2:
            hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
            others = (after[0] - self._ticks[0]) - (after[1] - self._ticks[1])
            self.others_cpus = max(others, 0) / hz / self.seconds


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__}


# -- the pieces -------------------------------------------------------------------------------

def fresh_fit(path: str, method: str, threads: int, seed: int) -> dict:
    """The first fit in a fresh process: this script again, in ``--fresh-fit`` mode."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fresh-fit", path, method,
                          "--threads", str(threads), "--seed", str(seed)],
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fresh_fit_here(path: str, method: str, threads: int, seed: int) -> int:
    start = time.perf_counter()
    import torch

    from explorer.analysis.maps import fit_map

    imported = time.perf_counter() - start
    torch.set_num_threads(threads)
    codes = np.load(path)
    with Timed() as t:
        fit_map(codes, method, seed=seed)
    print(json.dumps({"import_s": imported, "fit_s": t.seconds, "others_cpus": t.others_cpus}))
    return 0


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 10, block: int = 1000) -> float:
    """Leave-one-out k-NN accuracy (majority vote) of ``points`` (N, d) against ``labels``."""
    from explorer.analysis.maps import _pairwise

    points = np.asarray(points, dtype=np.float64)
    classes = int(labels.max()) + 1
    right = 0
    for i in range(0, len(points), block):
        d2 = _pairwise(points[i:i + block], points)
        d2[np.arange(len(d2)), np.arange(i, i + len(d2))] = np.inf
        idx = np.argpartition(d2, k, axis=1)[:, :k]
        votes = np.zeros((len(d2), classes))
        np.add.at(votes, (np.repeat(np.arange(len(d2)), k), labels[idx].reshape(-1)), 1)
        right += int((votes.argmax(1) == labels[i:i + block]).sum())
    return right / len(points)


def fit_mlp_inverse(points: np.ndarray, codes: np.ndarray, steps: int, seed: int, width: int = 128,
                    batch: int = 1024, lr: float = 3e-3):
    """A small MLP 2 -> D (two hidden SiLU layers) fitted to (point, code) pairs with Adam and
    a one-cycle schedule, on standardised inputs and outputs; returns points -> codes."""
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(points, dtype=torch.float32)
    y = torch.as_tensor(codes, dtype=torch.float32)
    x_mean, x_std = x.mean(0), x.std(0).clamp(min=1e-6)
    y_mean, y_std = y.mean(0), y.std(0).clamp(min=1e-6)
    xn, yn = (x - x_mean) / x_std, (y - y_mean) / y_std
    net = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.SiLU(), torch.nn.Linear(width, width),
                              torch.nn.SiLU(), torch.nn.Linear(width, y.shape[1]))
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=max(steps, 1))
    for _ in range(steps):
        pick = torch.randint(0, len(x), (min(batch, len(x)),), generator=generator)
        loss = ((net(xn[pick]) - yn[pick]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    net.eval()

    def inverse(p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            q = (torch.as_tensor(p, dtype=torch.float32) - x_mean) / x_std
            return (net(q) * y_std + y_mean).numpy()

    return inverse


def inverse_row(name: str, model, held: np.ndarray, back: np.ndarray, spread: float, reference: np.ndarray,
                seconds: float | None = None) -> dict:
    from explorer.analysis.manifold import decode_codes

    error = np.linalg.norm(back.astype(np.float64) - held, axis=1) / spread
    decoded = decode_codes(model, back.astype(np.float32))
    pixels = ((decoded - reference) ** 2).reshape(len(held), -1).mean(1)
    row = {"inverse": name, "code_error_median": float(np.median(error)), "code_error_mean": float(error.mean()),
           "pixel_mse": float(pixels.mean())}
    if seconds is not None:
        row["fit_s"] = seconds
    return row


def drag_latency(model, latent_map, n: int, seed: int) -> dict:
    """MapAxes.lift of one point plus the decode of its code, on one torch thread."""
    import torch

    from explorer.analysis.manifold import decode_codes
    from explorer.analysis.maps import MapAxes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the GUI thread's setting
    try:
        axes = MapAxes.of(latent_map)
        low, high = np.percentile(latent_map.points, [1, 99], axis=0)
        rng = np.random.default_rng(seed)
        points = low + (high - low) * rng.random((n + 10, 2))
        reference = latent_map.codes.mean(0)
        lift_ms, decode_ms, total_ms = [], [], []
        for i, point in enumerate(points):
            t0 = time.perf_counter()
            code = axes.lift(point, reference)
            t1 = time.perf_counter()
            decode_codes(model, code[None])
            t2 = time.perf_counter()
            if i >= 10:  # the first few warm up
                lift_ms.append((t1 - t0) * 1e3)
                decode_ms.append((t2 - t1) * 1e3)
                total_ms.append((t2 - t0) * 1e3)
    finally:
        torch.set_num_threads(threads)
    return {"points": n, "median_ms": float(np.median(total_ms)), "p95_ms": float(np.percentile(total_ms, 95)),
            "max_ms": float(np.max(total_ms)), "lift_p95_ms": float(np.percentile(lift_ms, 95)),
            "decode_p95_ms": float(np.percentile(decode_ms, 95))}


# -- one latent size --------------------------------------------------------------------------

def measure(dim: int, data, args, folder: str) -> dict:
    import torch

    import explorer
    from explorer.analysis.latents import encode_images
    from explorer.analysis.manifold import decode_codes
    from explorer.analysis.maps import _blend, fit_map
    from explorer.data.dataset import ImageData

    torch.set_num_threads(args.threads)
    n_train = args.train_images
    test = slice(0, max(args.held_out, args.test_images))  # the engine evaluates these each epoch
    subset = ImageData(data.name, data.train_images[:n_train], data.train_labels[:n_train], data.test_images[test],
                       data.test_labels[test], data.class_names)
    with Timed() as trained:
        model = explorer.train("vae", data=subset, epochs=args.epochs, latent_dim=dim, seed=args.seed,
                               timeline=False)
    fit_slice = slice(n_train, n_train + args.fit_codes)
    with torch.no_grad():
        fit_codes = encode_images(model, data.train_images[fit_slice])[0].numpy().astype(np.float32)
        held = encode_images(model, data.test_images[:args.held_out])[0].numpy().astype(np.float64)
    labels = data.train_labels[fit_slice].numpy()
    path = os.path.join(folder, f"codes-{dim}.npy")
    np.save(path, fit_codes)

    result: dict = {"latent_dim": dim, "train_images": n_train, "epochs": args.epochs,
                    "train_s": trained.seconds, "fit_codes": len(fit_codes), "held_out": len(held), "fit": {}}
    maps = {}
    for method in ("pca", "umap"):
        fresh = fresh_fit(path, method, args.threads, args.seed) if not args.no_fresh else None
        fit_map(fit_codes, method, seed=args.seed)  # warm this process
        warm = []
        for _ in range(args.repeats):
            with Timed() as t:
                maps[method] = fit_map(fit_codes, method, seed=args.seed)
            warm.append(t)
        result["fit"][method] = {
            "fresh_s": None if fresh is None else fresh["fit_s"],
            "fresh_import_s": None if fresh is None else fresh["import_s"],
            "fresh_others_cpus": None if fresh is None else fresh["others_cpus"],
            "warm_s": statistics.median(t.seconds for t in warm), "warm_runs_s": [t.seconds for t in warm],
            "warm_others_cpus": max((t.others_cpus for t in warm if t.others_cpus is not None), default=None)}

    pca, umap = maps["pca"], maps["umap"]
    result["separation"] = {"pca": knn_accuracy(pca.points, labels), "umap": knn_accuracy(umap.points, labels),
                            "codes": knn_accuracy(fit_codes, labels)}

    spread = float(np.sqrt(((fit_codes - fit_codes.mean(0)) ** 2).sum(1).mean()))
    reference = decode_codes(model, held.astype(np.float32))
    rows = [inverse_row("pca (linear)", model, held, pca.inverse(pca.transform(held)), spread, reference)]
    placed = umap.transform(held).astype(np.float64)
    points, codes = umap.points.astype(np.float64), umap.codes.astype(np.float64)
    rows.append(inverse_row("umap: nearest code", model, held, _blend(points, codes, placed, k=1), spread,
                            reference))
    rows.append(inverse_row("umap: 8-neighbour blend", model, held, _blend(points, codes, placed, k=8), spread,
                            reference))
    rows.append(inverse_row("umap: fit_map's inverse", model, held, umap.inverse(placed), spread, reference))
    if args.mlp_steps > 0:
        with Timed() as t:
            mlp = fit_mlp_inverse(umap.points, umap.codes, args.mlp_steps, args.seed)
        rows.append(inverse_row(f"umap: MLP 2->{dim} ({args.mlp_steps} steps)", model, held, mlp(placed), spread,
                                reference, seconds=t.seconds))
    rows.append(inverse_row("mean code (no map)", model, held, np.broadcast_to(fit_codes.mean(0), held.shape),
                            spread, reference))
    result["spread"] = spread
    result["inverse"] = rows
    result["drag"] = drag_latency(model, umap, args.drag_points, args.seed)
    return result


# -- output -----------------------------------------------------------------------------------

def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 0.1 else f"{value:.2f} s"


def _busy(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" + (" (disturbed)" if value > BUSY_WARNING else "")


def print_report(out: dict) -> None:
    m = out["machine"]
    print(f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, Python {m['python']}, torch {m['torch']}, "
          f"NumPy {m['numpy']}; fits on {out['threads']} torch threads")
    for r in out["results"]:
        print(f"\nvae {r['latent_dim']}-D: trained {r['epochs']} epochs on {r['train_images']:,} images "
              f"({r['train_s']:.1f} s); maps fitted on {r['fit_codes']:,} codes of unseen training images; "
              f"{r['held_out']:,} held-out test codes")
        print(f"  {'fit':<6}{'fresh process':>15}{'(import)':>10}{'warm':>10}   others' CPUs fresh / warm")
        for method, f in r["fit"].items():
            print(f"  {method:<6}{_s(f['fresh_s']):>15}{_s(f['fresh_import_s']):>10}{_s(f['warm_s']):>10}   "
                  f"{_busy(f['fresh_others_cpus'])} / {_busy(f['warm_others_cpus'])}")
        sep = r["separation"]
        print(f"  separation (leave-one-out 10-NN accuracy): pca {sep['pca']:.3f}, umap {sep['umap']:.3f} "
              f"(the {r['latent_dim']}-D codes themselves: {sep['codes']:.3f})")
        print(f"  {'inverse on held-out codes':<34}{'code error median':>18}{'mean':>8}{'pixel MSE':>11}")
        for row in r["inverse"]:
            extra = f"   (fit {row['fit_s']:.2f} s)" if "fit_s" in row else ""
            print(f"  {row['inverse']:<34}{row['code_error_median']:>18.3f}{row['code_error_mean']:>8.3f}"
                  f"{row['pixel_mse']:>11.5f}{extra}")
        d = r["drag"]
        print(f"  drag (lift + decode, 1 thread, {d['points']} points): median {d['median_ms']:.2f} ms, "
              f"p95 {d['p95_ms']:.2f} ms, max {d['max_ms']:.2f} ms (lift p95 {d['lift_p95_ms']:.2f}, "
              f"decode p95 {d['decode_p95_ms']:.2f}); target p95 < 15 ms: "
              f"{'met' if d['p95_ms'] < 15 else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="16,20", help="latent sizes, comma-separated")
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fit-codes", type=int, default=10_000, help="codes the maps are fitted on")
    parser.add_argument("--held-out", type=int, default=2_000, help="test codes the inverse is measured on")
    parser.add_argument("--test-images", type=int, default=10_000, help="test images the training evaluates")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and fits")
    parser.add_argument("--repeats", type=int, default=3, help="warm fits per map (median reported)")
    parser.add_argument("--drag-points", type=int, default=500)
    parser.add_argument("--mlp-steps", type=int, default=500, help="0 leaves the MLP inverse out")
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-process fits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test, not figures")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fresh-fit", nargs=2, metavar=("CODES", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fresh_fit:
        return _fresh_fit_here(args.fresh_fit[0], args.fresh_fit[1], args.threads, args.seed)
    if args.quick:
        args.train_images, args.epochs, args.fit_codes, args.held_out, args.test_images = 600, 1, 400, 100, 100
        args.repeats, args.drag_points, args.mlp_steps = 1, 30, 20
    try:
        dims = [int(d) for d in args.dims.split(",") if d.strip()]
    except ValueError:
        parser.error("--dims must be whole numbers, e.g. 16,20")
    if not dims or min(dims) < 3:
        parser.error("--dims must be at least 3 (a 2-D code is its own map)")
    if args.train_images + args.fit_codes > 60_000 or min(args.train_images, args.fit_codes, args.held_out) < 10:
        parser.error("--train-images + --fit-codes must fit in MNIST's 60,000 training images")

    from explorer.data.mnist import load_mnist

    data = load_mnist()
    out = {"machine": machine(), "threads": args.threads, "quick": args.quick, "results": []}
    with tempfile.TemporaryDirectory() as folder:
        for dim in dims:
            out["results"].append(measure(dim, data, args, folder))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
