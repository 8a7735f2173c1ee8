"""Training throughput: this project's engine against the PyTorch examples VAE loop.

The *reference* is the training loop of pytorch/examples ``vae/main.py``: torchvision
``datasets.MNIST`` with ``transforms.ToTensor()`` through a
``DataLoader(batch_size=128, shuffle=True)`` (``num_workers=1, pin_memory=True`` on CUDA,
the defaults on CPU, as the example does), the 784-400-20 MLP VAE (fc1, fc21/fc22, fc3,
fc4, relu/sigmoid), summed BCE + KLD, Adam lr 1e-3, ``loss.backward()`` and
``train_loss += loss.item()`` per batch (the example's logging prints are left out). The
reference is always that MLP VAE, whatever ``--preset`` says.

The *project* side is ``explorer.training.engine.train`` on the same 60000 MNIST training
images (loaded as uint8 tensors by ``explorer.data.load_dataset``), with the preset named by
``--preset`` (default ``vae``, the same 784-400-20 model) and the same batch size and lr.

Both are timed over the training loop only: the reference from the first batch request to
the end of the last epoch's last step; the project through ``EpochEnd.samples_per_s``, which
the engine measures over the training steps alone (its per-epoch test-set evaluation is
excluded). Data loading/unpacking and model construction happen before the clock starts on
both sides. Runs alternate reference, project, reference, project, ...; the summary uses the
best run of each side (``--stat best``, the default) or the median (``--stat median``).

On a shared machine other processes distort CPU timings badly (two OpenMP pools on two
cores can slow each other tenfold), so each timed run measures how much CPU everything else
took meanwhile (from /proc/stat, on Linux): before a run the script waits up to
``--wait-quiet`` seconds for the machine to go quiet, reruns a run disturbed by more than
``--busy-limit`` CPUs up to ``--retries`` times, summarises only undisturbed runs when there
are any, and says so.

MNIST comes from the files bundled in ``explorer/resources/mnist``: they are gunzipped into a
temporary ``<root>/MNIST/raw/`` for torchvision (``download=False``), so nothing touches the
network.

    python benchmarks/train_throughput.py                      # vae vs reference, CPU or CUDA
    python benchmarks/train_throughput.py --device cpu --preset conv-vae --repeats 3
    python benchmarks/train_throughput.py --preset families --compile off,on --epochs 3
    python benchmarks/train_throughput.py --json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

REFERENCE_LABEL = "reference (pytorch/examples vae, MLP 784-400-20)"
# One preset per model family: MLP AE, MLP VAE, conv VAE, conditional VAE.
FAMILIES = ["ae", "vae", "conv-vae", "cvae"]


# -- the reference, as in pytorch/examples vae/main.py ------------------------------------

class ReferenceVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def reference_loss(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def unpack_mnist(root: Path) -> None:
    """Gunzip the bundled MNIST into ``root/MNIST/raw/`` where torchvision looks for it."""
    from explorer.paths import RESOURCES

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    sources = sorted((RESOURCES / "mnist").glob("*.gz"))
    if not sources:
        raise SystemExit(f"no bundled MNIST .gz files under {RESOURCES / 'mnist'}")
    for src in sources:
        with gzip.open(src, "rb") as fin, open(raw / src.name[:-3], "wb") as fout:
            shutil.copyfileobj(fin, fout)


def make_reference_loader(root: Path, device: torch.device, batch_size: int, limit: int | None):
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    kwargs = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, **kwargs)


def run_reference(loader, device: torch.device, epochs: int, lr: float, seed: int,
                  max_batches: int | None = None) -> dict:
    torch.manual_seed(seed)
    model = ReferenceVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(loader.dataset)
    sync(device)
    start = time.perf_counter()
    train_loss = 0.0
    for _epoch in range(1, epochs + 1):
        model.train()
        train_loss = 0.0
        for batch_idx, (data, _) in enumerate(loader):
            if max_batches is not None and batch_idx >= max_batches:
                break
            data = data.to(device)
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = reference_loss(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    sync(device)
    seconds = time.perf_counter() - start
    return {"samples": n * epochs, "train_seconds": seconds, "samples_per_s": n * epochs / seconds,
            "seconds_per_epoch": seconds / epochs, "last_epoch_loss": train_loss / n}


# -- the project's engine ---------------------------------------------------------------------

def run_project(data, preset_name: str, device_name: str, epochs: int, batch_size: int, lr: float,
                seed: int, precision: str = "auto", compile_mode: str = "auto") -> dict:
    from explorer.config import TrainConfig
    from explorer.models import build_model, config_for_data, get_preset
    from explorer.training.engine import run_to_end, train
    from explorer.training.events import EpochEnd, Notice, RunStarted

    preset = get_preset(preset_name)
    torch.manual_seed(seed)
    model = build_model(config_for_data(preset.model, data.image_shape, data.num_classes))
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device_name,
                      precision=precision, compile=compile_mode)
    events, result = run_to_end(train(model, data, cfg))
    if result.status != "completed":
        raise SystemExit(f"project run did not complete: {result.status} {result.message}")
    for notice in (e for e in events if isinstance(e, Notice)):
        print(f"  note: {notice.message}", file=sys.stderr)
    started = next(e for e in events if isinstance(e, RunStarted))
    ends = [e for e in events if isinstance(e, EpochEnd)]
    n = int(data.train_images.shape[0])
    # A compiled run drops the short last batch, so it trains on fewer samples an epoch.
    per_epoch = started.steps_per_epoch * min(batch_size, n) if started.compiled else n
    seconds = [per_epoch / e.samples_per_s for e in ends]
    # The first epoch carries one-time costs (compiling, first-touch allocations); the rest
    # is what a long run sees.
    later = seconds[1:] or seconds
    return {"samples": per_epoch * len(ends), "train_seconds": sum(seconds),
            "samples_per_s": per_epoch * len(ends) / sum(seconds), "seconds_per_epoch": sum(seconds) / len(ends),
            "steady_samples_per_s": per_epoch * len(later) / sum(later),
            "first_epoch_seconds": seconds[0], "compiled": started.compiled,
            "epoch_seconds_with_eval": sum(e.seconds for e in ends) / len(ends),
            "last_epoch_loss": ends[-1].train["loss"]}


# -- plumbing ---------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is available here")
    return torch.device(name)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process), both in USER_HZ; None off Linux.

    Busy counts user, nice, system, irq, softirq and steal time (steal: the hypervisor gave
    our virtual CPUs to someone else), so busy - own is what everything else took."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12])
    except (OSError, ValueError, IndexError):
        return None


def others_cpus(before: tuple[int, int] | None, after: tuple[int, int] | None, seconds: float) -> float | None:
    """How many CPUs other processes (and the hypervisor) kept busy, on average, between two readings."""
    if before is None or after is None or seconds <= 0:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(others, 0) / hz / seconds


def wait_until_quiet(limit: float, timeout: float, verbose: bool) -> float | None:
    """Poll (1 s windows) until other processes use under ``limit`` CPUs; give up after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        before, t0 = _cpu_ticks(), time.perf_counter()
        time.sleep(1.0)
        busy = others_cpus(before, _cpu_ticks(), time.perf_counter() - t0)
        if busy is None or busy < limit or time.monotonic() >= deadline:
            return busy
        if verbose and not told:
            print(f"  waiting for the machine to go quiet (others using {busy:.2f} CPUs)...",
                  file=sys.stderr, flush=True)
            told = True


def timed(fn, args, limit: float, wait_s: float, retries: int, label: str, verbose: bool) -> dict:
    """Run ``fn`` once (plus up to ``retries`` reruns when other processes took more than
    ``limit`` CPUs during it) and return its result with the contention it saw."""
    attempt = 0
    while True:
        if wait_s > 0:
            wait_until_quiet(limit, wait_s, verbose)
        before, t0 = _cpu_ticks(), time.perf_counter()
        out = fn(*args)
        out["others_cpus"] = others_cpus(before, _cpu_ticks(), time.perf_counter() - t0)
        out["attempts"] = attempt + 1
        busy = out["others_cpus"]
        if busy is None or busy <= limit or attempt >= retries:
            return out
        attempt += 1
        if verbose:
            print(f"  {label}: other processes used {busy:.2f} CPUs during the run; rerunning",
                  file=sys.stderr, flush=True)


def machine_info(device: torch.device) -> dict:
    info = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_num_threads": torch.get_num_threads(), "device": str(device)}
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def summarise(all_runs: list[dict], stat: str, limit: float) -> dict:
    """Best or median over the undisturbed runs (all runs when none was undisturbed)."""
    clean = [r for r in all_runs if r.get("others_cpus") is None or r["others_cpus"] <= limit]
    runs = clean or all_runs
    rates = [r["samples_per_s"] for r in runs]
    if stat == "best":
        chosen = max(runs, key=lambda r: r["samples_per_s"])
        rate, spe = chosen["samples_per_s"], chosen["seconds_per_epoch"]
    else:
        rate = statistics.median(rates)
        spe = statistics.median(r["seconds_per_epoch"] for r in runs)
    busy = [r["others_cpus"] for r in runs if r.get("others_cpus") is not None]
    return {"samples_per_s": rate, "seconds_per_epoch": spe, "runs_used": len(runs), "runs_samples_per_s": rates,
            "spread": max(rates) / min(rates), "max_others_cpus": max(busy) if busy else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = cuda when available, else cpu (default: auto)")
    p.add_argument("--preset", default="vae",
                   help="project model preset(s) to benchmark, comma-separated (vae, ae, conv-vae, cvae, ...), "
                        "or 'families' for ae,vae,conv-vae,cvae; the reference is always the MLP VAE (default: vae)")
    p.add_argument("--reference", choices=("examples", "plain"), default="examples",
                   help="examples: the pytorch/examples MLP VAE loop (default); plain: a plain PyTorch loop of the "
                        "preset's own architecture (benchmarks/plain_reference.py: DataLoader, fp32, eager), for "
                        "one --preset")
    p.add_argument("--compile", default="auto",
                   help="the project's torch.compile mode(s), comma-separated: auto (CUDA only), on, off; "
                        "for example off,on to compare (default: auto)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs per run (default: 1)")
    p.add_argument("--repeats", type=int, default=2,
                   help="runs of each side, alternating reference/project (default: 2)")
    p.add_argument("--stat", choices=("best", "median"), default="best",
                   help="how runs are summarised: best (highest samples/s) or median (default: best)")
    p.add_argument("--batch-size", type=int, default=128, help="both sides (default: 128, the example's)")
    p.add_argument("--lr", type=float, default=1e-3, help="both sides (default: 1e-3)")
    p.add_argument("--seed", type=int, default=1, help="torch seed for both sides (default: 1, the example's)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the project's precision (auto: bf16 matrix products where fast); the reference is fp32")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images on both sides (smoke tests; not for figures)")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the untimed warm-up (a few reference batches and a short project run that pay "
                        "one-time costs such as lazy imports and kernel set-up before either side is timed)")
    p.add_argument("--busy-limit", type=float, default=0.25,
                   help="CPUs that other processes may use during a timed run before it counts as disturbed "
                        "(default: 0.25)")
    p.add_argument("--wait-quiet", type=float, default=60.0,
                   help="before each timed run, wait up to this many seconds for other processes to use less "
                        "than --busy-limit CPUs; 0 = do not wait (default: 60)")
    p.add_argument("--retries", type=int, default=2,
                   help="rerun a disturbed timed run up to this many times (default: 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        p.error("--epochs and --repeats must be at least 1")
    presets = FAMILIES if args.preset == "families" else [x.strip() for x in args.preset.split(",") if x.strip()]
    compiles = [x.strip() for x in args.compile.split(",") if x.strip()]
    if any(c not in ("auto", "on", "off") for c in compiles) or not compiles:
        p.error("--compile takes auto, on or off (comma-separated)")
    variants = [(pr, c) for pr in presets for c in compiles]
    if args.reference == "plain" and len(presets) != 1:
        p.error("--reference plain compares one --preset with a plain loop of its own architecture")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve(args.device)

    from explorer.config import DataConfig
    from explorer.data import load_dataset
    from explorer.models import get_preset

    for name in presets:
        try:
            get_preset(name)  # fail early on an unknown name
        except Exception as exc:  # explorer's ConfigError
            p.error(str(exc))
    data = load_dataset(DataConfig(limit=args.limit))

    ref_runs: list[dict] = []
    proj_runs: dict[tuple[str, str], list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="mnist-ref-") as tmp:
        root = Path(tmp)
        unpack_mnist(root)
        loader = make_reference_loader(root, device, args.batch_size, args.limit)
        if len(loader.dataset) != data.train_images.shape[0]:
            raise SystemExit(f"training set sizes differ: reference {len(loader.dataset)}, "
                             f"project {data.train_images.shape[0]}")
        reference_fn, reference_args = run_reference, (loader, device, args.epochs, args.lr, args.seed)
        reference_label = REFERENCE_LABEL
        if args.reference == "plain":
            from plain_reference import run_plain

            from explorer.models import config_for_data

            plain_config = config_for_data(get_preset(presets[0]).model, data.image_shape, data.num_classes)
            reference_fn = run_plain
            reference_args = (loader, plain_config, device, args.epochs, args.lr, args.seed)
            reference_label = f"reference (plain PyTorch loop of {presets[0]}: DataLoader, fp32, eager)"
        if not args.no_warmup:
            reference_fn(*reference_args[:-3], 1, args.lr, args.seed, max_batches=10)
            warm = data.limited(min(10 * args.batch_size, int(data.train_images.shape[0])))
            for preset, compile_mode in variants:
                run_project(warm, preset, device.type, 1, args.batch_size, args.lr, args.seed, args.precision,
                            compile_mode)
        verbose = not args.json
        guard = (args.busy_limit, args.wait_quiet, args.retries)
        for i in range(args.repeats):
            ref = timed(reference_fn, reference_args, *guard, "reference", verbose)
            ref_runs.append(ref)
            if not args.json:
                print(f"  run {i + 1}/{args.repeats} reference: {ref['samples_per_s']:9.0f} samples/s",
                      file=sys.stderr, flush=True)
            for variant in variants:
                proj = timed(run_project, (data, variant[0], device.type, args.epochs, args.batch_size, args.lr,
                                           args.seed, args.precision, variant[1]), *guard, "project", verbose)
                proj_runs[variant].append(proj)
                if not args.json:
                    print(f"  run {i + 1}/{args.repeats} {label(variant)}: {proj['samples_per_s']:9.0f} samples/s"
                          f" ({proj['steady_samples_per_s']:.0f} after epoch 1)", file=sys.stderr, flush=True)

    ref_sum = summarise(ref_runs, args.stat, args.busy_limit)
    projects = []
    for variant in variants:
        runs = proj_runs[variant]
        summary = summarise(runs, args.stat, args.busy_limit)
        steady = summarise([{**r, "samples_per_s": r["steady_samples_per_s"]} for r in runs], args.stat,
                           args.busy_limit)
        projects.append({"name": label(variant), "preset": variant[0], "compile": variant[1],
                         "compiled": all(r["compiled"] for r in runs), **summary,
                         "steady_samples_per_s": steady["samples_per_s"],
                         "ratio_project_over_reference": summary["samples_per_s"] / ref_sum["samples_per_s"],
                         "steady_ratio": steady["samples_per_s"] / ref_sum["samples_per_s"], "runs": runs})
    report = {
        "machine": machine_info(device),
        "settings": {"presets": presets, "compile": compiles, "epochs": args.epochs, "repeats": args.repeats,
                     "stat": args.stat, "batch_size": args.batch_size, "lr": args.lr, "precision": args.precision,
                     "train_samples": int(data.train_images.shape[0]), "warmup": not args.no_warmup,
                     "busy_limit_cpus": args.busy_limit, "wait_quiet_s": args.wait_quiet, "retries": args.retries},
        "reference": {"name": reference_label, **ref_sum, "runs": ref_runs},
        "projects": projects,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    m = report["machine"]
    print(f"machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), torch {m['torch']}, "
          f"torch threads {m['torch_num_threads']}, device {m['device']}, project precision {args.precision}"
          + (f" ({m['gpu']})" if "gpu" in m else ""))
    print(f"{report['settings']['train_samples']} training samples x {args.epochs} epoch(s), batch {args.batch_size}, "
          f"{args.repeats} run(s) each, alternating; {args.stat} run shown; training loop only (no test eval)")
    seen = [x for x in [ref_sum["max_others_cpus"], *(pr["max_others_cpus"] for pr in projects)] if x is not None]
    if seen:
        print(f"other processes used at most {max(seen):.2f} CPUs (mean over a run) during the summarised runs"
              + ("  WARNING: above --busy-limit, figures are disturbed" if max(seen) > args.busy_limit else ""))
    width = max(len(reference_label), *(len(pr["name"]) for pr in projects))
    print(f"{'name':<{width}}  {'samples/s':>10}  {'s/epoch':>8}  {'ratio':>6}  {'after epoch 1':>13}  {'ratio':>6}")
    print(f"{reference_label:<{width}}  {ref_sum['samples_per_s']:>10.0f}  {ref_sum['seconds_per_epoch']:>8.2f}  "
          f"{1:>5.2f}x")
    for pr in projects:
        print(f"{pr['name']:<{width}}  {pr['samples_per_s']:>10.0f}  {pr['seconds_per_epoch']:>8.2f}  "
              f"{pr['ratio_project_over_reference']:>5.2f}x  {pr['steady_samples_per_s']:>13.0f}  "
              f"{pr['steady_ratio']:>5.2f}x")
    spread = max(ref_sum["spread"], *(pr["spread"] for pr in projects))
    if spread > 1.2:
        print(f"WARNING: runs of one side differ by {spread:.2f}x; the machine was probably busy; "
              "rerun, or raise --repeats")
    return 0


def label(variant: tuple[str, str]) -> str:
    preset, compile_mode = variant
    return f"project engine ({preset}" + ("" if compile_mode == "auto" else f", compile {compile_mode}") + ")"


if __name__ == "__main__":
    sys.exit(main())
