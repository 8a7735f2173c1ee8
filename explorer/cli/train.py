"""``latent-explorer train``: the engine through the public API's TrainingRun, plus what a command adds
(printing, periodic and interrupted saves, torchrun)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from pathlib import Path

from explorer.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_PROCESS_LOST,
    EXIT_USER_ERROR,
    _check_room,
    _error,
    _finite_weights,
    _one_line,
    _output_path,
    _strict_json,
    check_dataset,
    check_model,
)
from explorer.cli.signals import _Signals
from explorer.display import plural


def _epoch_line(ev, total: int) -> str:
    def terms(d: dict[str, float]) -> str:
        extra = ", ".join(f"{k} {v:.2f}" for k, v in d.items() if k != "loss")
        return f"{d['loss']:.2f}" + (f" ({extra})" if extra else "")

    return (f"epoch {ev.epoch}/{total}  train {terms(ev.train)}  test {terms(ev.test)}  "
            f"{ev.samples_per_s:,.0f} samples/s  {ev.seconds:.1f} s")


def check_train_args(args: argparse.Namespace) -> None:
    """--out, --model and --dataset (with --image-size and --channels), before torch is imported."""
    _output_path(args.out, (".safetensors",))
    check_model(args.model)
    check_dataset(args.dataset, args.image_size, args.channels)


# -- commands -----------------------------------------------------------------------------
# Fewer optimisation steps than this rarely train a model to anything recognisable
# (explorer.training.run_length.FEW_STEPS); `train` keeps epochs as asked unless --min-steps
# says otherwise, as the window does, and says so at the end.
SHORT_RUN_STEPS = 500

def cmd_train(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """Train and save. Only a completed run replaces a file at ``--out`` (atomically); an
    interrupted or diverged run saves there only if nothing is there, else beside it
    (NAME.interrupted.safetensors, NAME.diverged.safetensors), and says where. A run
    interrupted before it logged a training step saves nothing. ``--checkpoint-every``
    also saves to ``--out`` at epoch ends as the run goes.

    Under torchrun each process trains its share (explorer.training.distributed); only
    rank 0 prints and writes files, the others stay quiet whatever happens to them."""
    from explorer.training.distributed import env_rank

    rank = env_rank()
    if rank is None or rank == 0:
        return _cmd_train(args, signals)
    from explorer.errors import UserError

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        try:
            return _cmd_train(args, signals)
        except UserError:
            return EXIT_USER_ERROR  # rank 0 says it
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED

def _lost_rank(exc: BaseException, rank: int, world: int) -> str:
    """Which process a failed collective lost, as far as the error tells ("rank K")."""
    if world == 2:
        return f" (rank {1 - rank})"
    found = re.search(r"\brank\s*[:=]?\s*(\d+)", str(exc), flags=re.IGNORECASE)
    return f" (rank {found.group(1)})" if found and int(found.group(1)) != rank else ""

def _from_a_collective(exc: BaseException) -> bool:
    """Whether an error came from the process group (a peer gone, a timeout), not a bug."""
    import torch.distributed as tdist

    dist_error = getattr(tdist, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    return bool(re.search(r"gloo|nccl|connection|timed? ?out|timeout|peer|socket|broken pipe", str(exc),
                          flags=re.IGNORECASE))

def _collective_reason(exc: BaseException) -> str:
    """What a failed collective said, without gloo's source location and its advice."""
    text = re.sub(r"^\s*\[[^\]]*\]\s*", "", str(exc))
    text = text.split(" This is typically caused", 1)[0].strip().rstrip(".")
    return _one_line(text or type(exc).__name__, 200)

def _cmd_train(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    from explorer.config import DataConfig
    from explorer.errors import UserError
    from explorer.training.device import resolve_device
    from explorer.training.distributed import init_from_env, shutdown
    from explorer.training.runs import model_config_for, train_config_for

    out = _output_path(args.out, (".safetensors",))
    model_config = model_config_for(args.model, latent_dim=args.latent_dim, beta=args.beta,
                                    recon_loss=args.recon_loss, noise=args.noise, noise_level=args.noise_level,
                                    sparsity_weight=args.sparsity, hidden_dims=args.hidden,
                                    settings=dict(args.settings or ()))
    train_config = train_config_for(args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                    seed=args.seed, device=args.device, precision=args.precision,
                                    compile=args.compile, timeline=not args.no_timeline,
                                    min_steps=getattr(args, "min_steps", 0))
    resolve_device(args.device)  # fail before loading data if the device is missing
    if "\x00" in args.dataset:
        raise UserError(f"--dataset {args.dataset!r} is not a name or a folder (it holds a NUL character)")
    data_config = DataConfig(dataset=args.dataset, limit=args.limit, classes=args.classes,
                             image_size=args.image_size, channels=args.channels, binarize=args.binarize)
    dist = init_from_env(args.device)
    status = None
    try:
        if dist is not None and train_config.batch_size % dist.world_size:
            raise UserError(f"--batch-size {train_config.batch_size} does not split evenly over "
                            f"{dist.world_size} processes; give a multiple of {dist.world_size} (it is the "
                            f"global batch, shared by all processes)")
        status = _train_run(args, signals, dist, out, model_config, train_config, data_config)
        return status
    finally:
        # Leave together only after a run every process finished (not after a lost one or an error).
        shutdown(together=status is not None and status != EXIT_PROCESS_LOST)

def _train_run(args, signals, dist, out, model_config, train_config, data_config) -> int:
    import time

    from tqdm import tqdm

    from explorer.api.training import TrainingRun
    from explorer.errors import UserError
    from explorer.oom import is_out_of_memory
    from explorer.training.events import EpochEnd, Event, Notice, RunStarted, Snapshot, StepLoss
    from explorer.training.run_length import RunPlan, describe_plan

    main_process = dist is None or dist.rank == 0

    def say(text: str) -> None:
        if main_process:
            print(text, file=sys.stderr)

    if main_process and sys.stderr.isatty() and not args.json:
        from explorer.data.folder_cache import use_tqdm

        use_tqdm()  # a large folder's first load decodes it into its cache: show how far it got
    training = TrainingRun(model_config, data_config, train_config, record_timeline=main_process)
    run = training.prepared
    if main_process:
        _check_room(out, run.model)  # a full disk found now, not after the whole run
    for name, why in run.folder_report.skipped[:10]:
        say(f"latent-explorer: skipped {_one_line(name, 200)}: {_one_line(why, 200)}")
    if len(run.folder_report.skipped) > 10:
        say(f"latent-explorer: skipped {plural(len(run.folder_report.skipped) - 10, 'more file')}")
    for note in run.folder_report.notes:
        say(f"latent-explorer: warning: {_one_line(note, 400)}")

    model, history, timeline = training.model, training.history, training.timeline
    show_bar = main_process and sys.stderr.isatty() and not args.json
    bar = None
    steps = 0  # the last logged global step: 0 until training has taken (and logged) a step
    epoch_now = 0  # the epoch being trained
    planned_epochs = train_config.epochs  # the run's, once it started: more with --min-steps on small data
    snapshot: Snapshot | None = None  # the weights at the last epoch end
    every = args.checkpoint_every if main_process else None
    save_due = False
    saved: tuple[Path, int] | None = None  # the last periodic checkpoint and its epoch
    last_save = time.monotonic()
    signals = signals or _Signals()

    def periodic_save() -> None:
        nonlocal saved, last_save
        seen = len(signals.received)
        with signals.held():  # a signal waits until the file is complete
            try:
                where = _save(out, model, run, train_config, history, timeline=timeline)
                saved = (where, history.last_epoch)
            except UserError as exc:
                say(f"latent-explorer: warning: the checkpoint of epoch {history.last_epoch} could not be "
                    f"saved ({_one_line(exc, 300)}); training goes on")
        last_save = time.monotonic()
        if len(signals.received) > seen:
            raise KeyboardInterrupt(signals.received[-1])

    def on_event(ev: Event) -> None:
        nonlocal bar, steps, snapshot, save_due, epoch_now, planned_epochs
        if isinstance(ev, StepLoss):
            steps = ev.global_step
            epoch_now = ev.epoch
        elif isinstance(ev, Snapshot):
            snapshot = ev
            if save_due:  # the epoch end's snapshot: history and timeline have that epoch now
                save_due = False
                periodic_save()
        if not main_process:
            return
        if isinstance(ev, RunStarted):
            planned_epochs = ev.epochs
            if not args.json:
                plan = RunPlan(train_size=ev.train_size, batch_size=min(train_config.batch_size, ev.train_size),
                               steps_per_epoch=ev.steps_per_epoch, asked_epochs=train_config.epochs,
                               epochs=ev.epochs, min_steps=train_config.min_steps)
                procs = f", {plural(dist.world_size, 'process')} ({dist.backend})" if dist is not None else ""
                print(f"training {args.model} on {run.data.name} ({ev.train_size} train / {ev.test_size} test "
                      f"images) on {ev.device} ({ev.precision}{', compiled' if ev.compiled else ''}{procs}): "
                      f"{describe_plan(plan)}", file=sys.stderr)
            bar = tqdm(total=ev.epochs * ev.steps_per_epoch, unit="step", disable=not show_bar,
                       file=sys.stderr, dynamic_ncols=True)
        elif isinstance(ev, Notice):
            print(f"latent-explorer: {ev.message}", file=sys.stderr)
        elif isinstance(ev, StepLoss) and bar is not None:
            bar.n = ev.global_step
            bar.set_postfix(epoch=ev.epoch, loss=f"{ev.loss:.2f}", refresh=False)
            bar.refresh()
        elif isinstance(ev, EpochEnd):
            if every is not None:
                kind, n = every
                save_due = (ev.epoch % int(n) == 0) if kind == "epochs" else \
                    (time.monotonic() - last_save >= n * 60)
            if args.json:
                record = {"epoch": ev.epoch, "train_loss": ev.train["loss"], "test_loss": ev.test["loss"],
                          **{f"train_{k}": v for k, v in ev.train.items() if k != "loss"},
                          **{f"test_{k}": v for k, v in ev.test.items() if k != "loss"},
                          "samples_per_s": ev.samples_per_s, "seconds": ev.seconds}
                print(_strict_json(record), flush=True)
            else:
                line = _epoch_line(ev, planned_epochs)
                (bar.write(line) if bar is not None and show_bar else print(line, flush=True))

    result = None
    interrupted = False
    lost: BaseException | None = None
    try:
        result = training.drive(on_event, dist=dist)  # records the history and the timeline as it goes
        signals.hold()  # from here on a signal waits: the save below is never cut short
    except KeyboardInterrupt:
        interrupted = result is None  # a signal just after the run ended: it is saved as completed
    except RuntimeError as exc:  # a collective failed or timed out: a process of the group is gone
        if dist is None or is_out_of_memory(exc) or not _from_a_collective(exc):
            raise
        lost = exc
    signals.hold()
    with signals.held():
        if bar is not None:
            bar.close()
        if lost is not None:
            if main_process:
                if saved is not None:
                    kept = f"the last checkpoint written ({saved[0]}, epoch {saved[1]}) is kept"
                else:
                    kept = "no checkpoint was written by this run" + \
                           (f" ({out} is untouched)" if out.exists() else "") + \
                           "; --checkpoint-every N keeps one as the run goes"
                _error(f"a training process{_lost_rank(lost, dist.rank, dist.world_size)} was lost at epoch "
                       f"{max(epoch_now, history.last_epoch + 1)}: {_collective_reason(lost)}; {kept}")
            return EXIT_PROCESS_LOST
        if not main_process:
            return EXIT_INTERRUPTED if interrupted else (EXIT_DIVERGED if result.status == "diverged" else 0)
        if interrupted:
            return _save_interrupted(out, model, run, train_config, history, steps, snapshot, signals, timeline)
        assert result is not None
        if result.status == "diverged":
            where = _save(out, model, run, train_config, history, beside="diverged", timeline=timeline)
            print(f"latent-explorer: error: {_one_line(result.message)} Saved them to {where}"
                  f"{_untouched(out, where)}.", file=sys.stderr)
            return EXIT_DIVERGED
        _save(out, model, run, train_config, history, timeline=timeline)
        if signals.received:  # only after training: a signal during it would have interrupted it
            print(f"latent-explorer: interrupted{signals.named()} while saving; the save was finished first, "
                  f"so {out} is the complete new model ({plural(history.last_epoch, 'epoch')})", file=sys.stderr)
            return EXIT_INTERRUPTED
    if result.global_step < SHORT_RUN_STEPS:
        print(f"latent-explorer: this run took only {plural(result.global_step, 'training step')}, probably too "
              f"few for the model to learn much; train more --epochs or on more images", file=sys.stderr)
    if not args.json:
        print(f"saved {out}", file=sys.stderr)
    return 0

def _save(out: Path, model, run, train_config, history, beside: str | None = None, timeline=None) -> Path:
    from explorer.training.checkpoint import save_checkpoint

    return save_checkpoint(out, model, run.data_config, train_config, history, run.data.class_names, beside=beside,
                           timeline=timeline)

def _untouched(out: Path, where: Path) -> str:
    return "" if where == out else f" ({out} is untouched)"

def _save_interrupted(out: Path, model, run, train_config, history, steps: int, snapshot,
                      signals: _Signals, timeline=None) -> int:
    """Save an interrupted run beside ``--out`` (or at it when nothing is there) and say
    where: its weights as they are when finite, else those of the last finished epoch."""
    from explorer.errors import UserError

    what = f"interrupted{signals.named()}"
    kept = f"; {out} is untouched" if out.exists() else ""
    if steps == 0:
        print(f"latent-explorer: {what} before training had logged a step; nothing was saved{kept}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if not _finite_weights(model):
        if snapshot is None:
            print(f"latent-explorer: {what} with weights that are not finite and no finished epoch; "
                  f"nothing was saved{kept}", file=sys.stderr)
            return EXIT_INTERRUPTED
        model.load_state_dict(snapshot.state_dict)
    seen = len(signals.received)
    try:
        where = _save(out, model, run, train_config, history, beside="interrupted", timeline=timeline)
    except UserError as exc:
        _error(f"{what} after {plural(history.last_epoch, 'epoch')}, and the model could not be saved: {exc}")
        return EXIT_INTERRUPTED
    again = " (a second interrupt came during the save, which was finished first)" \
        if len(signals.received) > seen else ""
    epochs = "epoch" if train_config.epochs == 1 else "epochs"  # after 1 of 5 epochs; after 1 of 1 epoch
    print(f"latent-explorer: {what} after {history.last_epoch} of {train_config.epochs} {epochs} "
          f"({plural(steps, 'step')}); saved the model so far to {where}{_untouched(out, where)}{again}",
          file=sys.stderr)
    return EXIT_INTERRUPTED
