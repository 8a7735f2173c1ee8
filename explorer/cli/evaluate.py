"""``latent-explorer evaluate``: test-set metrics of a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from explorer.cli.common import _load, _one_line, _progress_bar, _strict_json, check_checkpoint, check_dataset
from explorer.cli.signals import _Signals


def check_evaluate_args(args: argparse.Namespace) -> None:
    """The checkpoint's path (writable too with --save) and --dataset, before torch is imported."""
    check_checkpoint(args.checkpoint)
    if args.save:
        from explorer.atomic import check_writable

        check_writable(Path(args.checkpoint))
    if args.dataset is not None:
        check_dataset(args.dataset)


def cmd_evaluate(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """Test-set metrics of a checkpoint (explorer.evaluation), printed, and kept in the
    checkpoint with ``--save``. A group asked for alone that cannot apply refuses in one
    line; ``--all`` skips it with a note."""
    from explorer.evaluation import ALL_GROUPS, BY_KEY, EvaluationRequest, Group, Subject, evaluate_model
    from explorer.evaluation.files import evaluation_data_config, load_evaluation_data, store_evaluation

    if args.save:
        from explorer.atomic import check_writable

        check_writable(Path(args.checkpoint))
    ckpt, model, _ = _load(args.checkpoint, args.device)
    if "\x00" in (args.dataset or ""):
        from explorer.errors import UserError

        raise UserError(f"--dataset {args.dataset!r} is not a name or a folder (it holds a NUL character)")
    data_config = evaluation_data_config(ckpt.data_config, ckpt.model_config, args.dataset, args.binarize)
    data = load_evaluation_data(data_config, ckpt.model_config)
    groups = {Group.LOSS}
    if args.all:
        groups = set(ALL_GROUPS)
    if args.iw is not None:
        groups.add(Group.LIKELIHOOD)
    groups |= {g for g, asked in ((Group.SAMPLES, args.samples), (Group.LATENT, args.latent),
                                  (Group.RECON, args.recon)) if asked}
    request = EvaluationRequest(groups=frozenset(groups), iw_k=args.iw or 1000, n_samples=args.n_samples,
                                seed=args.seed, strict=not args.all)
    subject = Subject(dataset=data_config.dataset, binarize=data_config.binarize, step=ckpt.history.last_step,
                      loss_seed=ckpt.train_config.seed)
    bar = _progress_bar(not args.json)
    try:
        evaluation = evaluate_model(model, data, request, subject, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    for note in evaluation.notes:
        print(f"latent-explorer: note: {_one_line(note)}", file=sys.stderr)
    report: dict[str, Any] = {
        "model": ckpt.model_config.preset or "custom", "dataset": data_config.dataset,
        "binarize": data_config.binarize, "split": evaluation.split, "n_images": evaluation.n_images,
        "test_set": evaluation.fingerprint, "measured_on": evaluation.measured_on(), **evaluation.metrics,
        "latent_dim": ckpt.model_config.latent_dim, "epochs": ckpt.history.last_epoch,
        "test_images": int(data.test_images.shape[0]),
        "unit": "nats per image (negative ELBO)" if ckpt.model_config.variational
        else f"summed {ckpt.model_config.recon_loss.upper()} per image"}
    if evaluation.iw_k:
        report["iw_k"] = evaluation.iw_k
    if evaluation.n_samples:
        report["n_samples"] = evaluation.n_samples
    if args.save:
        with (signals or _Signals()).held():
            where = store_evaluation(args.checkpoint, evaluation)
        print(f"latent-explorer: kept the numbers in {where}", file=sys.stderr)
    if args.json:
        # No timing here: the same checkpoint and seed print the same object.
        print(_strict_json({**report, **evaluation.details, "notes": list(evaluation.notes)}))
        return 0
    from explorer.evaluation.metrics import format_value

    for key, value in report.items():
        spec = BY_KEY.get(key)
        if key in ("iw_se", "n_images"):  # inside the IW NLL cell; the same as test_images
            continue
        if spec is not None:
            error = evaluation.metrics.get(spec.error_key) if spec.error_key else None
            print(f"{key:16} {format_value(spec, value, error)}")  # keys as in --json: scripts read them
        else:
            print(f"{key:16} {value:.4f}" if isinstance(value, float) else f"{key:16} {_one_line(value, 200)}")
    for key, values in evaluation.details.items():
        shown = ", ".join(f"{v:.3g}" for v in values[:64]) + (" ..." if len(values) > 64 else "")
        print(f"{key:16} {shown}")
    return 0
