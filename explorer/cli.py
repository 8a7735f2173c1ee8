"""The command line: a contract outside scripts rely on (docs/architecture.md, "The command line").

User mistakes end as one sentence on stderr and exit status 2; no tracebacks for them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer import __version__

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def _class_list(text: str) -> tuple[int, ...]:
    from explorer.config import parse_classes
    from explorer.errors import ConfigError

    try:
        return parse_classes(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes") from None


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our user-error status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from explorer.config import COMPILE_MODES, DEVICES, NOISE_TYPES, PRECISIONS, RECON_LOSSES
    from explorer.presets import PRESETS

    parser = _Parser(prog="latent-explorer",
                     description="Train autoencoders and explore their latent space. "
                                 "With no command, opens the app.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="open the window (offscreen), train one short epoch on the bundled MNIST and close; "
                             "exit 0 if it all worked (checks an install or a packaged app)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("gui", help="open the app (optionally with a trained model)")
    p.add_argument("checkpoint", nargs="?", help="a checkpoint to open")

    p = sub.add_parser("train", help="train a model and save a checkpoint",
                       description="Train a model. Presets: " + "; ".join(f"{k}: {v.description}"
                                                                          for k, v in PRESETS.items()))
    p.add_argument("--model", default="vae", metavar="PRESET", help=f"one of {', '.join(PRESETS)} (default vae)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist (bundled), fashion-mnist, kmnist, cifar10 (downloaded once), or a folder of images")
    p.add_argument("--epochs", type=_positive_int, help="default: the preset's")
    p.add_argument("--latent-dim", type=_positive_int, help="default: the preset's")
    p.add_argument("--hidden", type=_int_list, metavar="N,N", help="hidden layer sizes, e.g. 512,256")
    p.add_argument("--batch-size", type=_positive_int, help="default: the preset's")
    p.add_argument("--lr", type=_nonneg_float, help="learning rate (default: the preset's)")
    p.add_argument("--beta", type=_nonneg_float, help="weight of the KL term (VAE family)")
    p.add_argument("--recon-loss", choices=RECON_LOSSES, help="reconstruction loss")
    p.add_argument("--noise", choices=NOISE_TYPES, help="input corruption while training (denoising)")
    p.add_argument("--noise-level", type=_nonneg_float, help="noise strength, or fraction of pixels")
    p.add_argument("--sparsity", type=_nonneg_float, help="L1 activity penalty weight")
    p.add_argument("--classes", type=_class_list, metavar="K,K", help="train on these classes only")
    p.add_argument("--image-size", type=_positive_int, help="for image folders: resize to this (default 32)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="for image folders: 1 or 3 (default automatic)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="bf16: matrix products in bfloat16 (float32 weights and losses); auto uses it where "
                        "it is fast (CPUs with AVX512-BF16/AMX, recent GPUs)")
    p.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                   help="run the training step through torch.compile; auto compiles on CUDA only (on the "
                        "CPU the first compile takes seconds and pays back on long runs)")
    p.add_argument("--limit", type=_positive_int, help="use only the first N images of each split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object per epoch")
    p.add_argument("--out", required=True, metavar="CHECKPOINT", help="where to save (.safetensors)")

    p = sub.add_parser("evaluate", help="test-set loss of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("generate", help="sample new images (VAE family)")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=_positive_int, default=64)
    p.add_argument("--label", type=int, help="class to generate (conditional models)")
    p.add_argument("--seed", type=int, default=0)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE.png|FILE.npy")
    target.add_argument("--folder", metavar="DIR",
                        help="write an image folder (class/0001.png; --n per class for conditional models) "
                             "plus images.npy, loadable as a dataset")

    p = sub.add_parser("anomaly", help="anomaly scores of the test split: normal classes against the rest")
    p.add_argument("checkpoint")
    p.add_argument("--normal", type=_class_list, metavar="K,K",
                   help="the normal classes (default: the classes the model was trained on)")
    p.add_argument("--per-image", action="store_true", help="also print every test image's score")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("reconstruct", help="test images and their reconstructions")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=_positive_int, default=16)
    p.add_argument("--out", required=True, metavar="FILE.png|FILE.npy")

    p = sub.add_parser("encode", help="latent codes (means) of a split")
    p.add_argument("checkpoint")
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.csv")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from explorer.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        if args.command:
            parser.error(f"--self-test takes no command (got {args.command!r})")
        from explorer.gui.app.self_test import run_self_test

        return run_self_test()
    command = args.command or "gui"
    try:
        if command == "gui":
            from explorer.app import run_gui

            return run_gui(getattr(args, "checkpoint", None))
        handler = {"train": cmd_train, "evaluate": cmd_evaluate, "generate": cmd_generate,
                   "reconstruct": cmd_reconstruct, "encode": cmd_encode, "anomaly": cmd_anomaly}[command]
        return handler(args)
    except UserError as exc:
        print(f"latent-explorer: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("latent-explorer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from explorer.oom import is_out_of_memory, out_of_memory_message

        if not is_out_of_memory(exc):
            raise
        print(f"latent-explorer: error: {out_of_memory_message(exc, 'a smaller --batch-size', '--limit')}",
              file=sys.stderr)
        return EXIT_USER_ERROR


# -- helpers ------------------------------------------------------------------------------


def _output_path(text: str, allowed: tuple[str, ...]) -> Path:
    from explorer.errors import UserError

    path = Path(text)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise UserError(f"{path.name}: the output must end in {' or '.join(allowed)}")
    if not path.parent.exists():
        raise UserError(f"cannot write {path}: the folder {path.parent} does not exist")
    return path


def _save_npy(path: Path, array: Any) -> None:
    from explorer.analysis.export import save_npy

    save_npy(path, array)


def _load(path: str, device: str = "cpu"):  # -> (Checkpoint, Autoencoder, torch.device)
    from explorer.training.checkpoint import load_checkpoint
    from explorer.training.device import resolve_device

    ckpt = load_checkpoint(path)
    dev = resolve_device(device)
    model = ckpt.build_model().to(dev)
    return ckpt, model, dev


def _load_data(ckpt):  # -> ImageData
    from explorer.data import load_dataset
    from explorer.errors import DataError

    try:
        data = load_dataset(ckpt.data_config)
    except DataError as exc:
        raise DataError(f"cannot load the data this model was trained on ({ckpt.data_config.dataset}): {exc}") \
            from None
    if data.image_shape != ckpt.model_config.image_shape:
        raise DataError(f"the dataset {ckpt.data_config.dataset} now has images of shape {data.image_shape}, "
                        f"but the model was trained on {ckpt.model_config.image_shape}")
    return data


def _strict_json(record: dict[str, Any]) -> str:
    """JSON that other tools can parse: NaN and infinities become null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False)


def _epoch_line(ev, total: int) -> str:
    def terms(d: dict[str, float]) -> str:
        extra = ", ".join(f"{k} {v:.2f}" for k, v in d.items() if k != "loss")
        return f"{d['loss']:.2f}" + (f" ({extra})" if extra else "")

    return (f"epoch {ev.epoch}/{total}  train {terms(ev.train)}  test {terms(ev.test)}  "
            f"{ev.samples_per_s:,.0f} samples/s  {ev.seconds:.1f} s")


# -- commands -----------------------------------------------------------------------------


# Fewer optimisation steps than this rarely train a model to anything recognisable; `train`
# keeps epochs as asked (min_steps 0) but says so, where the window raises the epochs instead.
SHORT_RUN_STEPS = 500


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from explorer.config import DataConfig
    from explorer.training.checkpoint import save_checkpoint
    from explorer.training.device import resolve_device
    from explorer.training.engine import drive, train
    from explorer.training.events import EpochEnd, Event, Notice, RunStarted, StepLoss
    from explorer.training.history import History
    from explorer.training.runs import model_config_for, prepare_run, train_config_for

    out = _output_path(args.out, (".safetensors",))
    model_config = model_config_for(args.model, latent_dim=args.latent_dim, beta=args.beta,
                                    recon_loss=args.recon_loss, noise=args.noise, noise_level=args.noise_level,
                                    sparsity_weight=args.sparsity, hidden_dims=args.hidden)
    train_config = train_config_for(args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                    seed=args.seed, device=args.device, precision=args.precision,
                                    compile=args.compile)
    resolve_device(args.device)  # fail before loading data if the device is missing
    data_config = DataConfig(dataset=args.dataset, limit=args.limit, classes=args.classes,
                             image_size=args.image_size, channels=args.channels)
    run = prepare_run(model_config, data_config, train_config)
    for name, why in run.folder_report.skipped[:10]:
        print(f"latent-explorer: skipped {name}: {why}", file=sys.stderr)
    if len(run.folder_report.skipped) > 10:
        print(f"latent-explorer: skipped {len(run.folder_report.skipped) - 10} more files", file=sys.stderr)

    model = run.model
    history = History(part_names=model.part_names)
    show_bar = sys.stderr.isatty() and not args.json
    bar = None

    def on_event(ev: Event) -> None:
        nonlocal bar
        history.record(ev)
        if isinstance(ev, RunStarted):
            if not args.json:
                print(f"training {args.model} on {run.data.name} ({ev.train_size} train / {ev.test_size} test "
                      f"images) on {ev.device} ({ev.precision}{', compiled' if ev.compiled else ''})",
                      file=sys.stderr)
            bar = tqdm(total=ev.epochs * ev.steps_per_epoch, unit="step", disable=not show_bar,
                       file=sys.stderr, dynamic_ncols=True)
        elif isinstance(ev, Notice):
            print(f"latent-explorer: {ev.message}", file=sys.stderr)
        elif isinstance(ev, StepLoss) and bar is not None:
            bar.n = ev.global_step
            bar.set_postfix(epoch=ev.epoch, loss=f"{ev.loss:.2f}", refresh=False)
            bar.refresh()
        elif isinstance(ev, EpochEnd):
            if args.json:
                record = {"epoch": ev.epoch, "train_loss": ev.train["loss"], "test_loss": ev.test["loss"],
                          **{f"train_{k}": v for k, v in ev.train.items() if k != "loss"},
                          **{f"test_{k}": v for k, v in ev.test.items() if k != "loss"},
                          "samples_per_s": ev.samples_per_s, "seconds": ev.seconds}
                print(_strict_json(record), flush=True)
            else:
                line = _epoch_line(ev, train_config.epochs)
                (bar.write(line) if bar is not None and show_bar else print(line, flush=True))

    result = None
    interrupted = False
    try:
        result = drive(train(model, run.data, train_config), on_event)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()

    save_checkpoint(out, model, run.data_config, train_config, history, run.data.class_names)
    if interrupted:
        print(f"latent-explorer: interrupted after {history.last_epoch} epoch(s); saved the model so far to {out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    assert result is not None
    if result.status == "diverged":
        print(f"latent-explorer: error: {result.message} Saved them to {out}.", file=sys.stderr)
        return EXIT_DIVERGED
    if result.global_step < SHORT_RUN_STEPS:
        print(f"latent-explorer: this run took only {result.global_step:,} training steps, probably too few for "
              f"the model to learn much; train more --epochs or on more images", file=sys.stderr)
    if not args.json:
        print(f"saved {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from explorer.training.evaluate import evaluate_tensors

    ckpt, model, _ = _load(args.checkpoint, args.device)
    data = _load_data(ckpt)
    metrics = evaluate_tensors(model, data.test_images, data.test_labels, seed=ckpt.train_config.seed)
    report = {"model": ckpt.model_config.preset or "custom", "dataset": ckpt.data_config.dataset,
              "test_loss": metrics["loss"], **{k: v for k, v in metrics.items() if k != "loss"},
              "latent_dim": ckpt.model_config.latent_dim, "epochs": ckpt.history.last_epoch,
              "test_images": int(data.test_images.shape[0]),
              "unit": "nats per image (negative ELBO)" if ckpt.model_config.variational
              else f"summed {ckpt.model_config.recon_loss.upper()} per image"}
    if args.json:
        print(_strict_json(report))
    else:
        for key, value in report.items():
            print(f"{key:12} {value:.4f}" if isinstance(value, float) else f"{key:12} {value}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from explorer.analysis.grids import image_grid, save_png
    from explorer.errors import UserError

    out = _output_path(args.out, (".png", ".npy")) if args.out else None
    ckpt, model, dev = _load(args.checkpoint)
    cfg = ckpt.model_config
    if args.label is not None and not cfg.conditional:
        raise UserError(f"this {cfg.preset or 'model'} has no classes, so --label cannot be used; "
                        "train a conditional model (cvae, conv-cvae) for that")
    y = None
    nrow = None
    if cfg.conditional:
        if args.label is not None:
            if not 0 <= args.label < cfg.num_classes:
                names = ckpt.class_names
                raise UserError(f"this model knows classes 0 to {cfg.num_classes - 1}"
                                + (f" ({', '.join(names)})" if names else "") + f", not {args.label}")
            y = torch.full((args.n,), args.label, dtype=torch.long)
        elif args.folder:
            y = torch.arange(cfg.num_classes).repeat_interleave(args.n)
        else:
            y = torch.arange(args.n) % cfg.num_classes
            nrow = cfg.num_classes
    n = args.n if y is None else y.numel()
    with torch.no_grad():
        images = model.sample(n, y=None if y is None else y.to(dev),
                              generator=torch.Generator().manual_seed(args.seed)).cpu()
    if out is None:
        from explorer.analysis.dataset_export import write_image_folder

        written = write_image_folder(args.folder, images.numpy(), None if y is None else y.numpy(),
                                     ckpt.class_names)
        print(f"wrote {len(written)} images to {args.folder}")
        return 0
    if out.suffix.lower() == ".npy":
        _save_npy(out, images.numpy())
    else:
        save_png(image_grid(images, nrow=nrow), out)
    return 0


def cmd_anomaly(args: argparse.Namespace) -> int:
    from explorer.analysis.anomaly import anomaly_report
    from explorer.config import replace
    from explorer.data import load_dataset
    from explorer.errors import UserError

    ckpt, model, _ = _load(args.checkpoint)
    normal = args.normal or ckpt.data_config.classes
    if not normal:
        raise UserError("this model was trained on every class; say which are normal with --normal K,K")
    data = load_dataset(replace(ckpt.data_config, classes=None))
    if data.image_shape != ckpt.model_config.image_shape:
        raise UserError(f"{data.name} has images of shape {data.image_shape}; "
                        f"the model expects {ckpt.model_config.image_shape}")
    try:
        report = anomaly_report(model.cpu(), data, tuple(normal))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    names = ckpt.class_names or data.class_names
    result = {"model": ckpt.model_config.preset, "dataset": data.name, "normal_classes": list(report.normal_classes),
              "score": "negative ELBO (nats)" if model.is_generative else "reconstruction loss",
              "auc": report.auc, "auc_per_class": {str(k): v for k, v in report.auc_per_class.items()}}
    if args.per_image:
        result["scores"] = [{"index": i, "label": int(label), "score": float(score)}
                            for i, (label, score) in enumerate(zip(report.labels, report.scores, strict=True))]
    if args.json:
        print(json.dumps(result))
        return 0
    label = ", ".join(names[k] if k < len(names) else str(k) for k in report.normal_classes)
    print(f"normal: {label}; score: {result['score']}; ROC AUC {report.auc:.4f}")
    for k, auc in report.auc_per_class.items():
        print(f"  {names[k] if k < len(names) else k}: AUC {auc:.4f}")
    if args.per_image:
        print("index,label,score")
        for row in result["scores"]:
            print(f"{row['index']},{row['label']},{row['score']:.6g}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from explorer.analysis.grids import pairs_grid, save_png
    from explorer.data import to_float

    out = _output_path(args.out, (".png", ".npy"))
    ckpt, model, dev = _load(args.checkpoint)
    data = _load_data(ckpt)
    n = min(args.n, data.test_images.shape[0])
    x = to_float(data.test_images[:n]).to(dev)
    y = data.test_labels[:n].to(dev) if model.is_conditional and data.test_labels is not None else None
    with torch.no_grad():
        recon = model.reconstruct(x, y).cpu()
    if out.suffix.lower() == ".npy":
        _save_npy(out, recon.numpy())
    else:
        save_png(pairs_grid(x.cpu(), recon), out)
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from explorer.analysis.export import save_codes
    from explorer.analysis.latents import encode_images

    out = _output_path(args.out, (".npy", ".csv"))
    ckpt, model, dev = _load(args.checkpoint)
    data = _load_data(ckpt)
    images = data.train_images if args.split == "train" else data.test_images
    labels = data.train_labels if args.split == "train" else data.test_labels
    codes, _ = encode_images(model, images, labels.to(dev) if labels is not None else None)
    save_codes(out, codes.numpy(), labels)
    return 0
