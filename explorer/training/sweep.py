"""A sweep: a grid of runs of one preset (betas x latent sizes x seeds, or the lecture's
comparison), trained together where they share an architecture, one checkpoint each and a
summary table (CSV and Markdown).

Runs that differ only in beta, reconstruction weight or seed share an architecture and go
through :func:`explorer.training.batched.train_together` as one group; a different latent
size is a different architecture, so a new group. Nothing already in the output folder is
ever replaced: a folder that holds a file the sweep would write is refused before any
training starts, as is one that cannot be written.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.atomic import WriteError, check_writable, check_writable_folder, write_text
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data import load_dataset
from explorer.data.dataset import ImageData
from explorer.errors import ConfigError
from explorer.training.batched import LECTURE_COMPARISON, RunEvent, architecture_key, train_together
from explorer.training.checkpoint import save_checkpoint
from explorer.training.control import TrainingControl
from explorer.training.engine import drive
from explorer.training.events import EpochEnd, Event, RunResult
from explorer.training.history import History
from explorer.training.runs import model_config_for, prepare_run, train_config_for

MAX_RUNS = 64  # a grid beyond this is a typo (each run is a model and a checkpoint)
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CHECKPOINT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its file name stem, and the configs it trains with."""

    name: str
    model_config: ModelConfig
    train_config: TrainConfig
    label: str = ""  # the lecture comparison's row name, else ""


@dataclass(frozen=True)
class SweepRow:
    """One line of the summary: the run's settings, how it ended, its last test metrics."""

    name: str
    preset: str
    beta: float
    recon_weight: float
    latent_dim: int
    seed: int
    epochs: int
    status: str
    test: dict[str, float]
    seconds: float
    together: int  # how many runs trained in its group (seconds are the group's)
    checkpoint: str


@dataclass(frozen=True)
class SweepSummary:
    rows: tuple[SweepRow, ...]
    out_dir: Path
    csv_path: Path
    markdown_path: Path
    seconds: float


def _values(given: Iterable[Any] | None, default: Any) -> list[Any]:
    """The given values without repeats (in order), or the default alone."""
    out: list[Any] = []
    for v in given or ():
        if v not in out:
            out.append(v)
    return out or [default]


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower().replace("+", "and")).replace("--", "-").strip("-")


def plan_sweep(preset: str, betas: Sequence[float] | None = None, latent_dims: Sequence[int] | None = None,
               seeds: Sequence[int] = (0,), recon_weights: Sequence[float] | None = None, lecture: bool = False,
               **train_overrides: Any) -> list[SweepRun]:
    """The runs of a grid, grouped by architecture (runs that can train together are
    neighbours). Empty ``betas``, ``latent_dims`` or ``recon_weights`` mean the preset's
    value. ``lecture`` replaces the beta x reconstruction-weight grid with the three rows of
    :data:`LECTURE_COMPARISON` (for each latent size and seed). ``train_overrides`` are
    TrainConfig fields (epochs, batch_size, lr, device, ...); None keeps the preset's."""
    base = model_config_for(preset)
    if lecture and (betas or recon_weights):
        raise ConfigError("the lecture comparison sets beta and the reconstruction weight itself; "
                          "give either it or --beta/--recon-weight")
    if lecture and not base.variational:
        raise ConfigError(f"the lecture comparison needs a VAE-family preset (it has a KL term); {preset} has none")
    plan: list[SweepRun] = []
    for latent in _values(latent_dims, base.latent_dim):
        if lecture:
            rows = [(label, dict(overrides)) for label, overrides in LECTURE_COMPARISON]
        else:
            rows = [("", {"beta": float(b), "recon_weight": float(w)})
                    for w in _values(recon_weights, base.recon_weight) for b in _values(betas, base.beta)]
        for label, overrides in rows:
            for seed in _values(seeds, 0):
                model_config = model_config_for(preset, latent_dim=latent, **overrides)
                train_config = train_config_for(preset, seed=seed, **train_overrides)
                if label:
                    name = f"{preset}-{_slug(label)}-z{latent}"
                else:
                    name = f"{preset}-beta{model_config.beta:g}-z{latent}"
                    if recon_weights:
                        name += f"-rw{model_config.recon_weight:g}"
                if len(_values(seeds, 0)) > 1:
                    name += f"-seed{seed}"
                plan.append(SweepRun(name, model_config, train_config, label))
    if len(plan) > MAX_RUNS:
        raise ConfigError(f"a sweep of {len(plan)} runs is more than {MAX_RUNS}; split it")
    names = [run.name for run in plan]
    if len(set(names)) != len(names):
        raise ConfigError("two runs of the sweep would have the same name")
    return [run for group in group_runs(plan) for run in group]


def _group_key(run: SweepRun) -> tuple[ModelConfig, TrainConfig]:
    return architecture_key(run.model_config), replace(run.train_config, seed=0)


def group_runs(plan: Sequence[SweepRun]) -> list[list[SweepRun]]:
    """The runs that train together: same architecture and training settings, in the
    order each group first appears."""
    groups: dict[tuple[ModelConfig, TrainConfig], list[SweepRun]] = {}
    for run in plan:
        groups.setdefault(_group_key(run), []).append(run)
    return list(groups.values())


def sweep_files(plan: Sequence[SweepRun]) -> list[str]:
    """Every file name the sweep writes into its folder."""
    return [run.name + CHECKPOINT_SUFFIX for run in plan] + [SUMMARY_CSV, SUMMARY_MD]


def check_out_dir(out_dir: str | Path, plan: Sequence[SweepRun]) -> Path:
    """Refuse (WriteError, one line) a folder that cannot be written or that already holds
    a file this sweep would write: nothing is overwritten, and this is known before any
    training starts. A missing folder is fine (its parent must be writable)."""
    out = Path(out_dir)
    if not out.exists():
        check_writable_folder(out)
        return out
    if not out.is_dir():
        raise WriteError(f"cannot write into {out}: it is a file, not a folder")
    taken = [name for name in sweep_files(plan) if (out / name).exists() or (out / name).is_symlink()]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise WriteError(f"{out} already holds {taken[0]}{more}; choose a new or empty folder (nothing is overwritten)")
    check_writable(out / SUMMARY_CSV)
    return out


def run_sweep(plan: Sequence[SweepRun], data_config: DataConfig, out_dir: str | Path,
              on_event: Callable[[SweepRun, Event], None] | None = None, control: TrainingControl | None = None,
              data: ImageData | None = None) -> SweepSummary:
    """Train every run of ``plan`` (each architecture group together), save one checkpoint
    per run into ``out_dir`` as soon as its group ends, then write summary.csv and
    summary.md. ``on_event`` sees each run's engine events. A diverged run keeps its last
    good weights and is saved and listed with its status."""
    if not plan:
        raise ConfigError("the sweep has no runs")
    out = check_out_dir(out_dir, plan)
    data = data if data is not None else load_dataset(data_config)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[SweepRow] = []
    for group in group_runs(plan):
        prepared = [prepare_run(run.model_config, data_config, run.train_config, data=data) for run in group]
        models = [p.model for p in prepared]
        histories = [History(part_names=m.part_names) for m in models]
        last_test: list[dict[str, float]] = [{} for _ in group]

        def listen(item: RunEvent, group: list[SweepRun] = group, histories: list[History] = histories,
                   last_test: list[dict[str, float]] = last_test) -> None:
            histories[item.run].record(item.event)
            if isinstance(item.event, EpochEnd):
                last_test[item.run] = dict(item.event.test)
            if on_event is not None:
                on_event(group[item.run], item.event)

        group_start = time.perf_counter()
        results: list[RunResult] = drive(train_together(models, data, [p.train_config for p in prepared], control),
                                         listen)  # type: ignore[arg-type]
        seconds = time.perf_counter() - group_start
        for run, model, history, test, result in zip(group, models, histories, last_test, results):
            path = out / (run.name + CHECKPOINT_SUFFIX)
            save_checkpoint(path, model.cpu(), data_config, run.train_config, history, class_names=data.class_names)
            cfg = model.config
            rows.append(SweepRow(name=run.name, preset=cfg.preset, beta=float(model.beta),
                                 recon_weight=float(cfg.recon_weight), latent_dim=cfg.latent_dim,
                                 seed=run.train_config.seed, epochs=result.epochs_completed, status=result.status,
                                 test=test, seconds=seconds, together=len(group), checkpoint=path.name))
        if control is not None and control.stop_requested:
            break
    csv_path = write_text(out / SUMMARY_CSV, lambda fh: fh.write(summary_csv(rows)), newline="")
    md_path = write_text(out / SUMMARY_MD, lambda fh: fh.write(summary_markdown(rows)))
    return SweepSummary(tuple(rows), out, csv_path, md_path, time.perf_counter() - started)


def _terms(rows: Sequence[SweepRow]) -> list[str]:
    """The test metrics' names over all rows, the loss first."""
    names: list[str] = []
    for row in rows:
        for k in row.test:
            if k not in names:
                names.append(k)
    return sorted(names, key=lambda k: (k != "loss", names.index(k)))


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def summary_csv(rows: Sequence[SweepRow]) -> str:
    """One line per run: settings, status, each test metric (``test_loss``, ``test_recon``,
    ...; empty where the run never finished an epoch), seconds and group size."""
    terms = _terms(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "preset", "beta", "recon_weight", "latent_dim", "seed", "epochs", "status",
                     *(f"test_{k}" for k in terms), "seconds", "trained_together", "checkpoint"])
    for r in rows:
        writer.writerow([r.name, r.preset, f"{r.beta:g}", f"{r.recon_weight:g}", r.latent_dim, r.seed, r.epochs,
                         r.status, *(_fmt(r.test[k]) if k in r.test else "" for k in terms), f"{r.seconds:.2f}",
                         r.together, r.checkpoint])
    return buf.getvalue()


def summary_markdown(rows: Sequence[SweepRow]) -> str:
    """The same table in Markdown, the best (lowest) test loss in bold."""
    terms = _terms(rows)
    losses = [r.test.get("loss", math.nan) for r in rows]
    finite = [v for v in losses if math.isfinite(v)]
    best = min(finite) if finite else None
    header = ["run", "beta", "recon weight", "latent", "seed", "epochs", "status",
              *(f"test {k}" for k in terms), "seconds", "together"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = []
        for k in terms:
            text = _fmt(r.test[k]) if k in r.test else ""
            if k == "loss" and best is not None and r.test.get(k) == best:
                text = f"**{text}**"
            cells.append(text)
        name = r.name.replace("|", "\\|")
        lines.append("| " + " | ".join([name, f"{r.beta:g}", f"{r.recon_weight:g}", str(r.latent_dim), str(r.seed),
                                         str(r.epochs), r.status, *cells, f"{r.seconds:.1f}", str(r.together)]) + " |")
    return "\n".join(lines) + "\n"
