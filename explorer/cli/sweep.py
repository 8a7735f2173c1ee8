"""``latent-explorer sweep``: a grid of runs, trained together where they share an architecture."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from explorer.cli.common import EXIT_INTERRUPTED, _one_line, _strict_json, check_dataset, check_model
from explorer.cli.signals import _Signals
from explorer.display import plural


def check_sweep_args(args: argparse.Namespace) -> None:
    """--model, --dataset and --out-dir (a folder, or a new one that can be made), before torch is
    imported; whether the folder holds this sweep is for the command (check_out_dir)."""
    from explorer.atomic import WriteError, check_writable_folder

    check_model(args.model)
    check_dataset(args.dataset)
    out = Path(args.out_dir)
    if not os.path.lexists(out):
        check_writable_folder(out)
    elif not out.is_dir():
        raise WriteError(f"cannot write into {_one_line(out, 200)}: it is a file, not a folder")


def cmd_sweep(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """Train the grid (explorer.training.sweep): the out-dir is checked before any training,
    each group's checkpoints are written as it ends, then the summary tables. Writes hold
    signals, so no file is cut short; an interrupt saves what the group in progress trained,
    and says what was written and how ``--resume`` continues."""
    from tqdm import tqdm

    from explorer.config import DataConfig
    from explorer.training.device import resolve_device
    from explorer.training.events import EpochEnd, RunStarted
    from explorer.training.sweep import SweepInterrupted, check_out_dir, group_runs, plan_sweep, run_sweep

    plan = plan_sweep(args.model, betas=args.beta, latent_dims=args.latent_dim, seeds=args.seeds,
                      recon_weights=args.recon_weight, lecture=args.lecture, epochs=args.epochs,
                      batch_size=args.batch_size, lrs=args.lr, device=args.device)
    resolve_device(args.device)
    data_config = DataConfig(dataset=args.dataset, limit=args.limit, binarize=args.binarize)
    found = check_out_dir(args.out_dir, plan, data_config, resume=args.resume)
    todo = [run for run in plan if run.name not in found.finished]
    groups = group_runs(todo)
    if not args.json:
        if found.finished:
            print(f"resuming the sweep in {_one_line(found.path)}: {_finished(len(found.finished), len(plan))}",
                  file=sys.stderr)
        if todo:
            print(f"sweep of {plural(len(todo), 'run')} in {plural(len(groups), 'group')} trained together: "
                  + _one_line("; ".join(", ".join(r.name for r in g) for g in groups), 2000), file=sys.stderr)
    signals = signals or _Signals()
    bar = None

    @contextlib.contextmanager
    def saving() -> Iterator[None]:
        """A write is never cut short: a signal during it is held, and (the first one) raised after."""
        seen = len(signals.received)
        with signals.held():
            yield
        if seen == 0 and signals.received:
            signals.hold()  # as after any first signal: the saves that follow are not cut short
            raise KeyboardInterrupt(signals.received[-1])

    def on_event(run, event) -> None:
        nonlocal bar
        if isinstance(event, RunStarted) and bar is None and sys.stderr.isatty() and not args.json:
            bar = tqdm(total=len(todo) * event.epochs, unit="epoch", file=sys.stderr, dynamic_ncols=True)
        elif isinstance(event, EpochEnd):
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{run.name} test {event.test['loss']:.2f}", refresh=True)
            elif not args.json:
                print(f"{run.name}: epoch {event.epoch}  test {event.test['loss']:.2f}", file=sys.stderr, flush=True)

    def print_rows(rows) -> None:
        for row in rows:
            print(_strict_json({"name": row.name, "beta": row.beta, "recon_weight": row.recon_weight,
                                "latent_dim": row.latent_dim, "seed": row.seed, "epochs": row.epochs,
                                "status": row.status, **{f"test_{k}": v for k, v in row.test.items()},
                                "seconds": row.seconds, "together": row.together, "checkpoint": row.checkpoint}))

    try:
        summary = run_sweep(plan, data_config, args.out_dir, on_event=on_event, resume=args.resume, saving=saving)
    except SweepInterrupted as stop:
        if bar is not None:
            bar.close()
            bar = None
        if args.json:
            print_rows(stop.report.rows)
        more = len(signals.received) - 1
        print(f"latent-explorer: interrupted{signals.named()}; {_sweep_kept(stop.report)}"
              + (f" ({plural(more, 'more interrupt')} waited until the files were complete)" if more > 0 else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    signals.hold()  # the sweep is complete: a signal now changes nothing
    if args.json:
        print_rows(summary.rows)
    else:
        print(summary.markdown_path.read_text(encoding="utf-8"))
        earlier = (f" ({summary.earlier} finished earlier {'was' if summary.earlier == 1 else 'were'} kept)"
                   if summary.earlier else "")
        removed = (f"; removed {plural(len(summary.removed), 'interrupted checkpoint')} that the finished runs "
                   "replace" if summary.removed else "")
        print(f"wrote {plural(len(summary.rows) - summary.earlier, 'checkpoint')}{earlier}, "
              f"{summary.csv_path.name} and {summary.markdown_path.name} to {_one_line(summary.out_dir)} in "
              f"{summary.seconds:.1f} s{removed}",
              file=sys.stderr)
    return 0

def _finished(done: int, runs: int) -> str:
    """'2 of 4 runs are finished', '0 of 1 run is finished'."""
    return f"{done:,} of {plural(runs, 'run')} {'is' if runs == 1 else 'are'} finished"


def _sweep_kept(report) -> str:  # report: explorer.training.sweep.SweepReport
    """What an interrupted sweep wrote, by kind and name, and how far it is: one clause."""
    def names(items: Sequence[str]) -> str:
        shown = ", ".join(items[:3])
        return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    where = _one_line(report.out_dir, 200)
    if not report.written:
        kept = "nothing was written"
        if report.finished:
            kept += f"; {where} holds the {plural(report.finished, 'run')} finished earlier"
    else:
        pieces = []
        if report.finished_now:
            pieces.append(f"{plural(len(report.finished_now), 'finished checkpoint')} ({names(report.finished_now)})")
        if report.interrupted_now:
            pieces.append(f"{plural(len(report.interrupted_now), 'interrupted run')} saved beside their names "
                          f"({names(report.interrupted_now)})")
        tables = [n for n in report.written if n not in report.finished_now and n not in report.interrupted_now]
        pieces.append(", ".join(tables))
        kept = f"wrote {'; '.join(p for p in pieces if p)} to {where}"
    left = report.runs - report.finished
    progress = _finished(report.finished, report.runs)
    if left:
        progress += f"; the same command with --resume trains the other {left}"
    failed = "".join(f"; could not save {what}" for what in report.failed[:3])
    return _one_line(f"{kept}; {progress}{failed}", 2000)
