"""A sweep: a grid of runs of one preset (betas x latent sizes x seeds, or the lecture's
comparison), trained together where they share an architecture, one checkpoint each and a
summary table (CSV and Markdown).

Runs that differ only in beta, reconstruction weight or seed share an architecture and go
through :func:`explorer.training.batched.train_together` as one group; a different latent
size is a different architecture, so a new group.

The folder is a new or empty one, or (``resume``) the folder of an earlier call of the same
sweep. ``sweep.json`` in it names the sweep (data, every run's configs) and what is done, so
a resumed sweep skips the runs whose finished checkpoint is there and trains the others.
An interrupt (KeyboardInterrupt) saves what the group in progress trained beside the names
it would have had (``NAME.interrupted.safetensors``: ``NAME.safetensors`` only ever holds a
finished run), writes the summary of what is in the folder and raises
:class:`SweepInterrupted`, which says what was written. Nothing already in the folder is
replaced, except the sweep's own ``sweep.json`` and summary, and an interrupted checkpoint
of its own is removed once that run is trained to completion.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from explorer.atomic import WriteError, check_writable, check_writable_folder, free_name, write_text
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data import load_dataset
from explorer.data.dataset import ImageData
from explorer.errors import ConfigError, UserError
from explorer.training.batched import LECTURE_COMPARISON, RunEvent, architecture_key, train_together
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.control import TrainingControl
from explorer.training.engine import drive
from explorer.training.events import EpochEnd, Event, RunResult, Snapshot, StepLoss
from explorer.training.history import History
from explorer.training.runs import model_config_for, prepare_run, train_config_for
from explorer.training.timeline import Timeline

MAX_RUNS = 64  # a grid beyond this is a typo (each run is a model and a checkpoint)
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
MANIFEST = "sweep.json"
CHECKPOINT_SUFFIX = ".safetensors"
INTERRUPTED = "interrupted"  # the tag of a run cut short: NAME.interrupted.safetensors
MANIFEST_FORMAT = "latent-explorer-sweep"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 4 * 1024**2  # 64 runs' configs and rows are about 100 kB


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
    status: str  # completed, diverged, stopped; or interrupted (its checkpoint is NAME.interrupted...)
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
    earlier: int = 0  # runs found finished in the folder (resume), not trained by this call
    removed: tuple[str, ...] = ()  # interrupted checkpoints of runs now finished


@dataclass(frozen=True)
class SweepReport:
    """What an interrupted sweep left: every file this call wrote, by kind, and how far the
    sweep is (``finished`` of ``runs``, counting runs finished by earlier calls)."""

    out_dir: Path
    written: tuple[str, ...]
    finished_now: tuple[str, ...]
    interrupted_now: tuple[str, ...]
    finished: int
    runs: int
    rows: tuple[SweepRow, ...]
    failed: tuple[str, ...] = ()  # one line per checkpoint of a run cut short that could not be saved


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by an interrupt after saving what it had trained. A KeyboardInterrupt,
    so a caller that knows nothing of sweeps still stops; ``report`` says what was kept."""

    def __init__(self, report: SweepReport) -> None:
        super().__init__("the sweep was interrupted")
        self.report = report


@dataclass(frozen=True)
class SweepFolder:
    """The output folder as :func:`check_out_dir` found it: empty or new, or (resuming) an
    earlier call's sweep with its finished rows and its interrupted checkpoints."""

    path: Path
    started: bool = False  # sweep.json is there
    finished: dict[str, SweepRow] = field(default_factory=dict)
    interrupted: dict[str, tuple[tuple[str, ...], SweepRow]] = field(default_factory=dict)


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
               lrs: Sequence[float] | None = None, **train_overrides: Any) -> list[SweepRun]:
    """The runs of a grid, grouped by architecture (runs that can train together are
    neighbours). Empty ``betas``, ``latent_dims``, ``recon_weights`` or ``lrs`` mean the
    preset's value. ``lecture`` replaces the beta x reconstruction-weight
    grid with the three rows of :data:`LECTURE_COMPARISON` (for each latent size and seed).
    ``lrs`` are learning rates, one more axis of the grid (runs that differ only in it still
    train together, each with its own rate). ``train_overrides`` are TrainConfig fields
    (epochs, batch_size, lr, device, ...); None keeps the preset's."""
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
            for lr in _values(lrs, None):
                for seed in _values(seeds, 0):
                    model_config = model_config_for(preset, latent_dim=latent, **overrides)
                    rate = {} if lr is None else {"lr": float(lr)}
                    train_config = train_config_for(preset, seed=seed, **{**train_overrides, **rate})
                    if label:
                        name = f"{preset}-{_slug(label)}-z{latent}"
                    else:
                        name = f"{preset}-beta{model_config.beta:g}-z{latent}"
                        if recon_weights:
                            name += f"-rw{model_config.recon_weight:g}"
                    if lrs and len(lrs) > 1:
                        name += f"-lr{train_config.lr:g}"
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
    return architecture_key(run.model_config), replace(run.train_config, seed=0, lr=1.0)


def group_runs(plan: Sequence[SweepRun]) -> list[list[SweepRun]]:
    """The runs that train together: same architecture and training settings (but the seed
    and the learning rate), in the order each group first appears."""
    groups: dict[tuple[ModelConfig, TrainConfig], list[SweepRun]] = {}
    for run in plan:
        groups.setdefault(_group_key(run), []).append(run)
    return list(groups.values())


def sweep_files(plan: Sequence[SweepRun]) -> list[str]:
    """Every file name a sweep that runs to its end writes into its folder."""
    return [run.name + CHECKPOINT_SUFFIX for run in plan] + [MANIFEST, SUMMARY_CSV, SUMMARY_MD]


# -- the folder: new, empty, or this sweep's own -------------------------------------------------


def sweep_spec(plan: Sequence[SweepRun], data_config: DataConfig) -> dict[str, Any]:
    """What makes two sweeps the same one: the data and every run's name and configs, as
    JSON. The device is left out: where a run trains does not change what it is."""
    spec = {"data": data_config.to_dict(),
            "runs": [{"name": r.name, "label": r.label, "model": r.model_config.to_dict(),
                      "train": {k: v for k, v in r.train_config.to_dict().items() if k != "device"}} for r in plan]}
    return json.loads(json.dumps(spec))  # tuples as lists, as read back from the file


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _difference(theirs: Any, ours: dict[str, Any]) -> str:
    """The first thing the folder's sweep (``theirs``) does differently from the one asked for."""
    if not isinstance(theirs, dict):
        return "its description is damaged"
    if theirs.get("data") != ours["data"]:
        data = theirs.get("data") if isinstance(theirs.get("data"), dict) else {}
        for key, value in ours["data"].items():
            if data.get(key) != value:
                return f"its data {key} is {_short(data.get(key))}, not {_short(value)}"
        return "its data settings differ"
    runs = theirs.get("runs") if isinstance(theirs.get("runs"), list) else []
    names = [r.get("name") for r in runs if isinstance(r, dict)]
    wanted = [r["name"] for r in ours["runs"]]
    if names != wanted:
        missing = [n for n in wanted if n not in names]
        if missing:
            return f"it has no run {_short(missing[0])}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        return f"it has {len(names)} runs, not {len(wanted)}"
    for run, mine in zip(runs, ours["runs"]):
        for part in ("model", "train", "label"):
            a, b = run.get(part), mine[part]
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                for key, value in b.items():
                    if a.get(key) != value:
                        return f"its run {mine['name']} has {key} {_short(a.get(key))}, not {_short(value)}"
            return f"its run {mine['name']} has other settings"
    return "its description differs"


def _read_manifest(out: Path) -> dict[str, Any]:
    """The folder's sweep.json, checked for shape (WriteError, one line, if it cannot be used)."""
    path = out / MANIFEST
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise WriteError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise WriteError(f"{path} is larger than a sweep's description can be; it is not this sweep's")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WriteError(f"{path} is damaged (not JSON); it is not a sweep this version can resume") from None
    if not (isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT
            and data.get("version") == MANIFEST_VERSION and isinstance(data.get("spec"), dict)):
        raise WriteError(f"{path} does not describe a sweep this version can resume")
    return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _row_from(data: Any, run: SweepRun, checkpoint: str) -> SweepRow | None:
    """A summary row of ``run`` read back from sweep.json, naming ``checkpoint``, or None
    where it is damaged (not trusted: the run counts as not done)."""
    if not isinstance(data, dict):
        return None
    test = data.get("test")
    if not (data.get("name") == run.name and isinstance(data.get("preset"), str) and isinstance(data.get("status"), str)
            and all(_number(data.get(k)) for k in ("beta", "recon_weight", "seconds"))
            and all(_whole(data.get(k)) for k in ("latent_dim", "seed", "epochs", "together"))
            and isinstance(test, dict) and len(test) <= 64
            and all(isinstance(k, str) and len(k) <= 64 and _number(v) for k, v in test.items())):
        return None
    return SweepRow(name=run.name, preset=data["preset"][:100], beta=float(data["beta"]),
                    recon_weight=float(data["recon_weight"]), latent_dim=data["latent_dim"], seed=data["seed"],
                    epochs=data["epochs"], status=data["status"][:40], test={k: float(v) for k, v in test.items()},
                    seconds=float(data["seconds"]), together=data["together"], checkpoint=checkpoint)


def _row_from_checkpoint(out: Path, run: SweepRun, data_config: DataConfig) -> SweepRow:
    """The row of a finished checkpoint that sweep.json does not list (the process ended
    between writing the two): read from the file, which must be this run's."""
    path = out / (run.name + CHECKPOINT_SUFFIX)
    try:
        ckpt = load_checkpoint(path)
    except UserError as exc:
        raise WriteError(f"cannot resume in {out}: {path.name} cannot be read ({exc}); move it away and "
                         f"resume to train that run again") from None

    def plain(config: ModelConfig) -> dict[str, Any]:
        return {k: v for k, v in config.to_dict().items() if k not in ("image_shape", "num_classes")}

    same = (plain(ckpt.model_config) == plain(run.model_config)
            and replace(ckpt.train_config, device="auto") == replace(run.train_config, device="auto")
            and ckpt.data_config == data_config)
    if not same:
        raise WriteError(f"cannot resume in {out}: {path.name} holds a model of other settings than that run of "
                         f"this sweep; move it away and resume to train that run again")
    history = ckpt.history
    epochs = history.last_epoch
    cfg = ckpt.model_config
    return SweepRow(name=run.name, preset=cfg.preset, beta=float(cfg.beta), recon_weight=float(cfg.recon_weight),
                    latent_dim=cfg.latent_dim, seed=ckpt.train_config.seed, epochs=epochs,
                    status="completed" if epochs >= run.train_config.epochs else "stopped",
                    test=dict(history.epochs[-1]["test"]) if history.epochs else {}, seconds=math.nan,
                    together=1, checkpoint=path.name)


def _interrupted_name(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(name) + r"\." + INTERRUPTED + r"(-[0-9]{1,4})?" + re.escape(CHECKPOINT_SUFFIX))


def _found(out: Path, plan: Sequence[SweepRun], data_config: DataConfig, manifest: dict[str, Any]) -> SweepFolder:
    """What an earlier call of this sweep left in ``out``: a run is finished when its
    checkpoint is there (its row from sweep.json, or from the file itself)."""
    listed = manifest.get("finished") if isinstance(manifest.get("finished"), dict) else {}
    cut = manifest.get("interrupted") if isinstance(manifest.get("interrupted"), dict) else {}
    finished: dict[str, SweepRow] = {}
    interrupted: dict[str, tuple[tuple[str, ...], SweepRow]] = {}
    for run in plan:
        checkpoint = run.name + CHECKPOINT_SUFFIX
        if os.path.lexists(out / checkpoint):
            row = _row_from(listed.get(run.name), run, checkpoint)
            finished[run.name] = row if row is not None else _row_from_checkpoint(out, run, data_config)
            continue
        entry = cut.get(run.name)
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
            continue
        pattern = _interrupted_name(run.name)
        files = tuple(f for f in entry["files"][:100] if isinstance(f, str) and pattern.fullmatch(f)
                      and (out / f).is_file())
        row = _row_from(entry.get("row"), run, files[-1]) if files else None  # the newest file left
        if row is not None:
            interrupted[run.name] = (files, row)
    return SweepFolder(out, True, finished, interrupted)


def check_out_dir(out_dir: str | Path, plan: Sequence[SweepRun], data_config: DataConfig,
                  resume: bool = False) -> SweepFolder:
    """Refuse (WriteError, one line) a folder that cannot be written, or that holds anything
    when not resuming; known before any training starts, so nothing is overwritten. With
    ``resume``, a folder holding this very sweep (sweep.json names the same data and runs) is
    taken up where it was left; any other non-empty folder is refused. A missing folder is
    fine (its parent must be writable)."""
    out = Path(out_dir)
    if not os.path.lexists(out):
        check_writable_folder(out)
        return SweepFolder(out)
    if not out.is_dir():
        raise WriteError(f"cannot write into {out}: it is a file, not a folder")
    try:
        entries = sorted(os.listdir(out))
    except OSError as exc:
        raise WriteError(f"cannot write into {out}: {exc.strerror or exc}") from None
    spec = sweep_spec(plan, data_config)
    if entries:
        manifest: dict[str, Any] | None = None
        problem = ""
        if MANIFEST in entries:
            try:
                manifest = _read_manifest(out)
            except WriteError as exc:
                problem = str(exc)
        same = manifest is not None and manifest["spec"] == spec
        if not resume:
            done = -1
            if same:
                assert manifest is not None
                with contextlib.suppress(WriteError):  # a damaged folder gets the plain refusal
                    done = len(_found(out, plan, data_config, manifest).finished)
            if done == len(plan):
                raise WriteError(f"{out} already holds this sweep, finished ({done} runs); choose a new or empty "
                                 f"folder (nothing is overwritten)")
            if done >= 0:
                raise WriteError(f"{out} already holds this sweep, unfinished ({done} of {len(plan)} runs "
                                 f"finished); add --resume to continue it, or choose a new or empty folder")
            more = f" and {len(entries) - 1} more" if len(entries) > 1 else ""
            raise WriteError(f"{out} already holds {entries[0]}{more}; choose a new or empty folder "
                             f"(nothing is overwritten)")
        if manifest is None:
            raise WriteError(problem or f"cannot resume in {out}: it holds no {MANIFEST}, so it is not a sweep's "
                                        f"folder; resume in the sweep's own folder, or start in a new or empty one")
        if not same:
            raise WriteError(f"cannot resume in {out}: it holds another sweep ({_difference(manifest['spec'], spec)}); "
                             f"give the options it was started with, or a new or empty folder")
        found = _found(out, plan, data_config, manifest)
    else:
        found = SweepFolder(out)
    for name in (MANIFEST, SUMMARY_CSV, SUMMARY_MD):
        check_writable(out / name)
    return found


# -- running it ----------------------------------------------------------------------------------


class _Progress:
    """The folder as this call writes it: sweep.json (the spec, the finished rows, the
    interrupted checkpoints), the summary, and the names of the files written so far."""

    def __init__(self, plan: Sequence[SweepRun], data_config: DataConfig, found: SweepFolder,
                 class_names: Callable[[], tuple[str, ...]]) -> None:
        self.plan = list(plan)
        self.data_config = data_config
        self.out = found.path
        self.spec = sweep_spec(plan, data_config)
        self.started = found.started
        self.finished: dict[str, SweepRow] = dict(found.finished)
        self.interrupted: dict[str, tuple[tuple[str, ...], SweepRow]] = dict(found.interrupted)
        self.earlier = len(found.finished)
        self.written: list[str] = []
        self.finished_now: list[str] = []
        self.interrupted_now: list[str] = []
        self.removed: list[str] = []
        self.failed: list[str] = []
        self._class_names = class_names

    def rows(self) -> list[SweepRow]:
        """In plan order: each finished run, and each run cut short whose checkpoint is kept."""
        out = []
        for run in self.plan:
            if run.name in self.finished:
                out.append(self.finished[run.name])
            elif run.name in self.interrupted:
                out.append(self.interrupted[run.name][1])
        return out

    def _wrote(self, name: str) -> None:
        if name not in self.written:
            self.written.append(name)

    def _begin(self) -> None:
        """Before the first checkpoint: the folder and its sweep.json, so that a folder with
        a checkpoint of this sweep in it always says which sweep it is."""
        if not self.started:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_manifest()
            self.started = True

    def _write_manifest(self) -> None:
        record = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "spec": self.spec,
                  "finished": {name: asdict(row) for name, row in self.finished.items()},
                  "interrupted": {name: {"files": list(files), "row": asdict(row)}
                                  for name, (files, row) in self.interrupted.items()}}
        write_text(self.out / MANIFEST, lambda fh: fh.write(json.dumps(record, indent=1) + "\n"))
        self._wrote(MANIFEST)

    def save_finished(self, run: SweepRun, model: Any, history: History, timeline: Timeline, row: SweepRow) -> None:
        self._begin()
        path = self.out / (run.name + CHECKPOINT_SUFFIX)
        save_checkpoint(path, model.cpu(), self.data_config, run.train_config, history,
                        class_names=self._class_names(), timeline=_recorded(timeline))
        self._wrote(path.name)
        self.finished_now.append(path.name)
        self.finished[run.name] = row

    def save_interrupted(self, run: SweepRun, model: Any, history: History, timeline: Timeline,
                         row: SweepRow) -> None:
        """Beside the run's name, never at it: NAME.safetensors is kept for the finished run."""
        self._begin()
        target = free_name(self.out / (run.name + CHECKPOINT_SUFFIX), INTERRUPTED)
        where = save_checkpoint(target, model.cpu(), self.data_config, run.train_config, history,
                                class_names=self._class_names(), beside=INTERRUPTED, timeline=_recorded(timeline))
        self._wrote(where.name)
        self.interrupted_now.append(where.name)
        files = self.interrupted.get(run.name, ((), row))[0]
        self.interrupted[run.name] = ((*files, where.name), replace(row, checkpoint=where.name))

    def commit(self) -> None:
        """sweep.json, then the summary tables; then the interrupted checkpoints of runs now
        completed, which those runs replace (sweep.json no longer lists them)."""
        done = [name for name in self.interrupted if self.finished.get(name, None) is not None
                and self.finished[name].status == "completed"]
        superseded = [f for name in done for f in self.interrupted.pop(name)[0]]
        for name in list(self.interrupted):
            if name in self.finished:  # a diverged or stopped run: its interrupted files stay, listed nowhere
                del self.interrupted[name]
        self._begin()
        self._write_manifest()
        rows = self.rows()
        write_text(self.out / SUMMARY_CSV, lambda fh: fh.write(summary_csv(rows)), newline="")
        write_text(self.out / SUMMARY_MD, lambda fh: fh.write(summary_markdown(rows)))
        self._wrote(SUMMARY_CSV)
        self._wrote(SUMMARY_MD)
        for name in superseded:
            with contextlib.suppress(OSError):
                (self.out / name).unlink()
                self.removed.append(name)

    def report(self) -> SweepReport:
        return SweepReport(self.out, tuple(self.written), tuple(self.finished_now), tuple(self.interrupted_now),
                           len(self.finished), len(self.plan), tuple(self.rows()), tuple(self.failed))


def _row(run: SweepRun, model: Any, status: str, epochs: int, test: dict[str, float], seconds: float,
         together: int, checkpoint: str) -> SweepRow:
    cfg = model.config
    return SweepRow(name=run.name, preset=cfg.preset, beta=float(model.beta), recon_weight=float(cfg.recon_weight),
                    latent_dim=cfg.latent_dim, seed=run.train_config.seed, epochs=epochs, status=status, test=test,
                    seconds=seconds, together=together, checkpoint=checkpoint)


def _finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point())


def run_sweep(plan: Sequence[SweepRun], data_config: DataConfig, out_dir: str | Path,
              on_event: Callable[[SweepRun, Event], None] | None = None, control: TrainingControl | None = None,
              data: ImageData | None = None, resume: bool = False,
              saving: Callable[[], AbstractContextManager[Any]] | None = None) -> SweepSummary:
    """Train every run of ``plan`` (each architecture group together), save one checkpoint
    per run into ``out_dir`` as soon as its group ends, with sweep.json, summary.csv and
    summary.md. ``on_event`` sees each run's engine events. A diverged run keeps its last
    good weights and is saved and listed with its status; a stop through ``control`` saves
    the group as it is (status "stopped") and ends the sweep.

    ``resume``: continue this sweep's own earlier folder (runs with a finished checkpoint
    are skipped, the others trained from the start). ``saving`` wraps every write (the CLI
    holds signals there, so a file is never cut short). A KeyboardInterrupt saves the group
    in progress beside its names and the summary, then raises :class:`SweepInterrupted`."""
    if not plan:
        raise ConfigError("the sweep has no runs")
    guard = saving or contextlib.nullcontext
    found = check_out_dir(out_dir, plan, data_config, resume=resume)
    holder: dict[str, ImageData] = {}
    progress = _Progress(plan, data_config, found, lambda: holder["data"].class_names)
    started = time.perf_counter()
    todo = [run for run in plan if run.name not in found.finished]
    try:
        if todo:
            holder["data"] = data if data is not None else load_dataset(data_config)
        for group in group_runs(todo):
            if not _train_group(group, holder["data"], data_config, progress, on_event, control, guard):
                break
        with guard():
            progress.commit()
    except KeyboardInterrupt:
        with guard():
            if progress.written:
                try:
                    progress.commit()
                except UserError as exc:  # the checkpoints are there all the same: say so
                    progress.failed.append(f"the summary: {exc}")
        raise SweepInterrupted(progress.report()) from None
    return SweepSummary(tuple(progress.rows()), progress.out, progress.out / SUMMARY_CSV, progress.out / SUMMARY_MD,
                        time.perf_counter() - started, earlier=progress.earlier, removed=tuple(progress.removed))


def _train_group(group: list[SweepRun], data: ImageData, data_config: DataConfig, progress: _Progress,
                 on_event: Callable[[SweepRun, Event], None] | None, control: TrainingControl | None,
                 guard: Callable[[], AbstractContextManager[Any]]) -> bool:
    """Train one group and save it; False when a stop through ``control`` ends the sweep.
    An interrupt saves what the group trained (runs that ended, at their names; runs cut
    short after a logged step, beside them) and propagates."""
    prepared = [prepare_run(run.model_config, data_config, run.train_config, data=data) for run in group]
    models = [p.model for p in prepared]
    histories = [History(part_names=m.part_names) for m in models]
    timelines = [Timeline.for_data(data) for _ in models]  # empty unless the runs record frames
    last_test: list[dict[str, float]] = [{} for _ in group]
    steps = [0] * len(group)
    snapshots: list[dict[str, Any] | None] = [None] * len(group)
    ended: dict[int, RunResult] = {}

    def listen(item: RunEvent) -> None:
        histories[item.run].record(item.event)
        timelines[item.run].record(item.event)
        if isinstance(item.event, EpochEnd):
            last_test[item.run] = dict(item.event.test)
        elif isinstance(item.event, StepLoss):
            steps[item.run] = item.event.global_step
        elif isinstance(item.event, Snapshot):
            snapshots[item.run] = item.event.state_dict
        if on_event is not None:
            on_event(group[item.run], item.event)

    def keep(run: SweepRun, i: int, model: Any, seconds: float) -> None:
        """After an interrupt: a run that ended at its name, one cut short after a logged step beside it."""
        if i in ended:
            result = ended[i]
            progress.save_finished(run, model, histories[i], timelines[i], _row(
                run, model, result.status, result.epochs_completed, last_test[i], seconds, len(group),
                run.name + CHECKPOINT_SUFFIX))
            return
        if steps[i] == 0:
            return  # it never logged a step: nothing trained to keep
        if not _finite(model):
            if snapshots[i] is None:
                return
            model.load_state_dict(snapshots[i])
        progress.save_interrupted(run, model, histories[i], timelines[i], _row(
            run, model, INTERRUPTED, histories[i].last_epoch, last_test[i], seconds, len(group), ""))

    group_start = time.perf_counter()
    events = train_together(models, data, [p.train_config for p in prepared], control, on_result=ended.__setitem__)
    try:
        results: list[RunResult] = drive(events, listen)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        events.close()  # the runs still training take the weights of their last logged step
        seconds = time.perf_counter() - group_start
        with guard():
            for i, (run, model) in enumerate(zip(group, models)):
                try:
                    keep(run, i, model, seconds)
                except UserError as exc:  # one failed save does not cost the others theirs
                    progress.failed.append(f"{run.name}: {exc}")
        raise
    seconds = time.perf_counter() - group_start
    with guard():
        for i, (run, model, result) in enumerate(zip(group, models, results)):
            progress.save_finished(run, model, histories[i], timelines[i], _row(
                run, model, result.status, result.epochs_completed, last_test[i], seconds, len(group),
                run.name + CHECKPOINT_SUFFIX))
        progress.commit()
    return not (control is not None and control.stop_requested)


def _recorded(timeline: Timeline) -> Timeline | None:
    """The timeline to save with a run: none when it recorded no frame (timelines off)."""
    return timeline if timeline.last is not None else None


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
