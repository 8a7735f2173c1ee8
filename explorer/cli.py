"""The command line: a contract outside scripts rely on (docs/architecture.md, "The command line").

User mistakes end as one sentence on stderr and exit status 2; no tracebacks for them.
Every output path is proven writable before any work starts, and every file is written
atomically (explorer.atomic). SIGINT, SIGTERM and SIGHUP all interrupt like Ctrl+C; an
interrupted or diverged ``train`` never replaces an existing file at ``--out`` (it saves
beside it), and a second signal during a save waits until the save is complete.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from explorer import __version__

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_PROCESS_LOST = 4  # a distributed run lost one of its processes
EXIT_INTERRUPTED = 130


def _one_line(text: object, limit: int = 600) -> str:
    """Text fit for one line on a terminal: control characters and line breaks escaped as
    ``repr`` writes them (so escapes from a file or an argument cannot paint the screen),
    and at most ``limit`` characters."""
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _echo(text: str) -> str:
    """An argument as a message quotes it: escaped and short."""
    return _one_line(repr(text), 40)


_WHOLE = re.compile(r"\s*[+-]?\d+\s*")


def _whole_number(text: str, lo: int, hi: int, unit: str = "") -> int:
    if not _WHOLE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{_echo(text)} is not a whole number")
    digits = text.strip().lstrip("+-")
    if len(digits.lstrip("0")) > 30:  # int() of thousands of digits is refused by Python itself
        value = -(10**31) if text.strip().startswith("-") else 10**31
    else:
        value = int(text)
    if value < lo:
        raise argparse.ArgumentTypeError(f"{_one_line(text.strip(), 40)} must be at least {lo:,}")
    if value > hi:
        raise argparse.ArgumentTypeError(f"{_one_line(text.strip(), 40)} is too large: at most {hi:,}{unit}")
    return value


def _int_in(lo: int, hi: int, unit: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        return _whole_number(text, lo, hi, unit)

    parse.__name__ = "whole number"
    return parse


def _float_in(lo: float, hi: float, what: str, inclusive: bool = False) -> Callable[[str], float]:
    """A finite number from ``lo`` to below ``hi`` (or up to it, ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_echo(text)} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{_echo(text)} is not a finite number")
        if value < lo:
            raise argparse.ArgumentTypeError(f"{_one_line(text.strip(), 40)} must be a finite number >= {lo:g}")
        if value > hi or (value == hi and not inclusive):
            raise argparse.ArgumentTypeError(f"{_one_line(text.strip(), 40)} is too large: {what} must be "
                                             f"{'at most' if inclusive else 'below'} {hi:g}")
        return value

    parse.__name__ = "number"
    return parse


# What the configs accept (explorer/config.py), checked as the arguments are read so that a
# refusal names the option and the limit (a batch of 10**9 is too large, not "not positive").
SEEDS = _int_in(0, 2**31 - 1)
EPOCHS = _int_in(1, 100_000, " epochs")
BATCH = _int_in(1, 1_000_000, " images per batch")
LATENT = _int_in(1, 65_536, " dimensions")
IMAGE_SIZE = _int_in(4, 512, " pixels")
IMAGES = _int_in(1, 2**31 - 1, " images")
N_OUT = _int_in(1, 1_000_000, " images per call")
MAX_HIDDEN = 65_536
MAX_LAYERS = 1000


def _checkpoint_every(text: str) -> tuple[str, float]:
    """``N`` (epochs) or ``Nm`` (minutes) -> ("epochs", N) or ("minutes", N)."""
    text = text.strip().lower()
    if text.endswith("m"):
        try:
            minutes = float(text[:-1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_echo(text)} is not a number of minutes (e.g. 10m)") from None
        if not (math.isfinite(minutes) and 0 < minutes <= 1e6):
            raise argparse.ArgumentTypeError(f"{_echo(text)}: the minutes must be more than 0 (at most 1e6)")
        return ("minutes", minutes)
    return ("epochs", float(_whole_number(text, 1, 1_000_000, " epochs")))


def _class_list(text: str) -> tuple[int, ...]:
    from explorer.config import parse_classes
    from explorer.errors import ConfigError

    try:
        return parse_classes(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _float_list(lo: float, hi: float, what: str, inclusive: bool = False) -> Callable[[str], tuple[float, ...]]:
    """Comma-separated numbers, each from ``lo`` to below ``hi`` (or up to it, ``inclusive``):
    the range the config takes, so a value it would refuse is refused here, as a usage error."""
    one = _float_in(lo, hi, what, inclusive=inclusive)

    def parse(text: str) -> tuple[float, ...]:
        parts = [v for v in text.split(",") if v.strip()]
        if not parts or len(parts) > 64:
            raise argparse.ArgumentTypeError(f"give 1 to 64 values of {what} separated by commas, like 0.1,1,4")
        return tuple(one(v) for v in parts)

    parse.__name__ = "list of numbers"
    return parse


def _int_list_of(lo: int, hi: int, what: str) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        parts = [v for v in text.split(",") if v.strip()]
        if not parts or len(parts) > 64:
            raise argparse.ArgumentTypeError(f"give 1 to 64 values of {what} separated by commas, like 2,20")
        return tuple(_whole_number(v, lo, hi) for v in parts)

    parse.__name__ = "list of whole numbers"
    return parse


def _int_list(text: str) -> tuple[int, ...]:
    parts = [v for v in text.split(",") if v.strip() != ""]
    if len(parts) > MAX_LAYERS:
        raise argparse.ArgumentTypeError(f"{len(parts):,} layers are too many: at most {MAX_LAYERS}")
    try:
        return tuple(_whole_number(v, 1, MAX_HIDDEN, " units per layer") for v in parts)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"layer size {exc} (give sizes like 512,256)") from None


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our user-error status."""

    # A description worked out only when the help is shown (train's lists the installed model
    # plugins, from package metadata: nothing is imported), so parsing stays fast.
    late_description: Callable[[], str] | None = None

    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, as every other refusal: the usage is a --help away.
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        if self.late_description is not None:
            self.description = self.late_description()
        return super().format_help()


def _with_plugins(description: str) -> Callable[[], str]:
    """``description`` plus the installed model plugins' names, read when help is shown."""
    def late() -> str:
        from explorer.plugins import installed

        found = installed()
        if not found:
            return description
        names = "; ".join(f"{name} (model plugin from {' '.join(p for p in (dist, version) if p) or 'unknown'})"
                          for name, dist, version in found)
        return f"{description}; {names}. `latent-explorer plugins` says whether each works and lists its settings."

    return late


def _setting(text: str) -> tuple[str, Any]:
    """NAME=VALUE: true/false, a whole number, a number, or else text (the plugin's schema
    checks it)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name.strip()):
        raise argparse.ArgumentTypeError(f"{_echo(text)} is not NAME=VALUE (e.g. codebook_size=64)")
    value = value.strip()
    parsed: Any = value
    if value.lower() in ("true", "false"):
        parsed = value.lower() == "true"
    elif re.fullmatch(r"[+-]?\d{1,18}", value):
        parsed = int(value)
    else:
        try:
            parsed = float(value)
        except ValueError:
            parsed = value
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise argparse.ArgumentTypeError(f"{_echo(text)}: the value is not a finite number")
    return name.strip(), parsed


def build_parser() -> argparse.ArgumentParser:
    from explorer.config import BINARIZE_MODES, COMPILE_MODES, DEVICES, NOISE_TYPES, PRECISIONS, RECON_LOSSES
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
    p.late_description = _with_plugins(p.description or "")
    p.add_argument("--model", default="vae", metavar="PRESET",
                   help=f"one of {', '.join(PRESETS)}, or an installed model plugin's name (default vae)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", type=_setting, dest="settings",
                   help="a model plugin's setting (repeatable; `latent-explorer plugins` lists them)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist (bundled), fashion-mnist, kmnist, cifar10 (downloaded once), or a folder of images")
    p.add_argument("--epochs", type=EPOCHS, help="default: the preset's")
    p.add_argument("--latent-dim", type=LATENT, help="default: the preset's")
    p.add_argument("--hidden", type=_int_list, metavar="N,N", help="hidden layer sizes, e.g. 512,256")
    p.add_argument("--batch-size", type=BATCH, help="default: the preset's")
    p.add_argument("--lr", type=_float_in(0.0, 10.0, "the learning rate"), help="learning rate (default: the preset's)")
    p.add_argument("--beta", type=_float_in(0.0, 1e6, "beta"), help="weight of the KL term (VAE family)")
    p.add_argument("--recon-loss", choices=RECON_LOSSES, help="reconstruction loss")
    p.add_argument("--noise", choices=NOISE_TYPES, help="input corruption while training (denoising)")
    p.add_argument("--noise-level", type=_float_in(0.0, 10.0, "the noise level", inclusive=True),
                   help="noise strength, or fraction of pixels")
    p.add_argument("--sparsity", type=_float_in(0.0, 1e6, "the sparsity weight"), help="L1 activity penalty weight")
    p.add_argument("--classes", type=_class_list, metavar="K,K", help="train on these classes only")
    p.add_argument("--image-size", type=IMAGE_SIZE, help="for image folders: resize to this (default 32)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="for image folders: 1 or 3 (default automatic)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="bf16: matrix products in bfloat16 (float32 weights and losses); auto uses it where "
                        "it is fast (CPUs with AVX512-BF16/AMX, recent GPUs)")
    p.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                   help="run the training step through torch.compile; auto compiles on CUDA only (on the "
                        "CPU the first compile takes seconds and pays back on long runs)")
    p.add_argument("--limit", type=IMAGES, help="use only the first N images of each split")
    p.add_argument("--binarize", choices=BINARIZE_MODES, default="none",
                   help=BINARIZE_HELP + " (default none)")
    p.add_argument("--seed", type=SEEDS, default=0)
    p.add_argument("--no-timeline", action="store_true",
                   help="do not record the training timeline (the plane, KL, losses and the decoder at each epoch "
                        "end, kept in the checkpoint for replay and `timeline` films; about 0.7 MB per epoch for "
                        "vae, at most 64 MiB)")
    p.add_argument("--json", action="store_true", help="print one JSON object per epoch")
    p.add_argument("--checkpoint-every", type=_checkpoint_every, metavar="N|Nm",
                   help="also save the checkpoint to --out (atomically) every N epochs, or at the first epoch end "
                        "N minutes after the last save (e.g. 10m), so the window can follow the run")
    p.add_argument("--out", required=True, metavar="CHECKPOINT", help="where to save (.safetensors)")

    p = sub.add_parser("evaluate", help="test-set metrics of a checkpoint: loss, likelihood, sample quality, "
                                        "latent space",
                       description="Evaluate a checkpoint on its test split. With no metric option: the test loss. "
                                   "Each option adds one group; --all adds every group that applies.")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", help="evaluate on this dataset instead (a name or a folder of images with the "
                                     "model's image shape; read at the model's size and channels)")
    p.add_argument("--binarize", choices=BINARIZE_MODES,
                   help="binarise the test images (a fixed seeded draw) or not; default: as the model was trained")
    p.add_argument("--iw", type=_int_in(1, 5000, " importance samples"), metavar="K",
                   help="importance-weighted log-likelihood with K posterior samples per image (IWAE; VAE family "
                        "trained with BCE; K up to 5000): iw_nll in nats and its standard error")
    p.add_argument("--samples", action="store_true",
                   help="sample quality: Frechet distance of LeNet features of --n-samples samples against the "
                        "test images (FID), its train-vs-test floor, and class accuracy for conditional models")
    p.add_argument("--latent", action="store_true",
                   help="active units, KL per dimension, k-NN and linear-probe accuracy of the codes with 100, "
                        "1,000 and all labels")
    p.add_argument("--recon", action="store_true", help="reconstruction error (MSE per pixel) and PSNR")
    p.add_argument("--all", action="store_true",
                   help="every group (--iw 1000 unless given), skipping with a note what does not apply")
    p.add_argument("--n-samples", type=_int_in(100, 100_000, " samples"), default=10_000,
                   help="samples for --samples (default 10000)")
    p.add_argument("--seed", type=SEEDS, default=0, help="seed of the posterior and prior samples (default 0)")
    p.add_argument("--save", action="store_true",
                   help="keep the numbers in the checkpoint (rewritten atomically; the window shows them)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sweep", help="train a grid of runs (together where they share an architecture)",
                       description="Train every combination of the values given (comma-separated), one checkpoint "
                                   "per run in --out-dir plus sweep.json, summary.csv and summary.md. Runs of one "
                                   "MLP architecture train together in one batched step. An interrupt keeps the "
                                   "finished runs and saves the runs cut short as NAME.interrupted.safetensors; "
                                   "--resume continues. The window opens the folder as runs side by side.")
    p.add_argument("--model", default="vae", metavar="PRESET", help="the preset every run starts from")
    p.add_argument("--beta", type=_float_list(0.0, 1e6, "beta"), metavar="B,B", help="KL weights, e.g. 0.1,1,4")
    p.add_argument("--latent-dim", type=_int_list_of(1, 65_536, "latent size"), metavar="D,D", help="latent sizes")
    p.add_argument("--recon-weight", type=_float_list(0.0, 1e6, "reconstruction weight"), metavar="W,W",
                   help="weights of the reconstruction term (0: KL only)")
    p.add_argument("--seeds", type=_int_list_of(0, 2**31 - 1, "seed"), metavar="S,S", default=(0,),
                   help="one run per seed for each setting (default 0)")
    p.add_argument("--lecture", action="store_true",
                   help="the lecture's comparison: reconstruction only (beta 0), KL only (reconstruction "
                        "weight 0) and both")
    p.add_argument("--dataset", default="mnist", help="as for train")
    p.add_argument("--limit", type=IMAGES, help="use only the first N images of each split")
    p.add_argument("--binarize", choices=BINARIZE_MODES, default="none", help=BINARIZE_HELP)
    p.add_argument("--epochs", type=EPOCHS, help="default: the preset's")
    p.add_argument("--batch-size", type=BATCH, help="default: the preset's")
    p.add_argument("--lr", type=_float_in(0.0, 10.0, "the learning rate"), help="default: the preset's")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--json", action="store_true", help="print one JSON object per run at the end")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="a new or empty folder (nothing is overwritten)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep of these same options in --out-dir (after an interrupt): runs whose "
                        "finished checkpoint is there are skipped, the others are trained again, and the summary "
                        "is completed")

    p = sub.add_parser("plugins", help="list the installed model plugins and whether each works",
                       description="Model plugins are packages that add model families (README, \"Model "
                                   "plugins\"). Each is loaded and its model checked; a broken one is listed with "
                                   "why, and the others still work.")
    p.add_argument("--json", action="store_true", help="one JSON object per plugin")

    p = sub.add_parser("timeline", help="export a checkpoint's training timeline as a film (GIF or MP4)",
                       description="The latent plane through the run, one frame per recorded epoch, classes "
                                   "coloured, with the epoch and the test loss written on each frame.")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, metavar="FILM.gif|FILM.mp4")
    p.add_argument("--fps", type=_int_in(1, 60, " frames per second"), default=4, help="frames per second (default 4)")
    p.add_argument("--manifold", action="store_true", help="draw the decoded manifold under the points")

    p = sub.add_parser("generate", help="sample new images (VAE family)")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=N_OUT, default=64)
    p.add_argument("--label", type=_int_in(-(2**63), 2**63 - 1), help="class to generate (conditional models)")
    p.add_argument("--seed", type=SEEDS, default=0)
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
    p.add_argument("--n", type=N_OUT, default=16)
    p.add_argument("--out", required=True, metavar="FILE.png|FILE.npy")

    p = sub.add_parser("encode", help="latent codes (means) of a split")
    p.add_argument("checkpoint")
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.csv")

    from explorer.export import FORMATS, PARTS

    p = sub.add_parser("export", help="write the model for other tools: ONNX, a torch.export program (.pt2) or a "
                                      "web page",
                       description="Decoders take codes (and a one-hot class for conditional models) and return "
                                   "images in [0, 1] (N, C, H, W); encoders take such images and return the mean "
                                   "code (and the log-variance for the VAE family). The web page is one HTML file "
                                   "that runs an MLP decoder in the browser (README, 'Exporting a model').")
    p.add_argument("checkpoint")
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix (.onnx, .pt2, .html)")
    p.add_argument("--part", choices=PARTS,
                   help="default: both for onnx and pt2 (written beside --out as NAME.encoder.SUFFIX and "
                        "NAME.decoder.SUFFIX), the decoder for web")
    p.add_argument("--out", required=True, metavar="PATH.onnx|PATH.pt2|PATH.html")
    return parser


BINARIZE_HELP = ("binary pixels: dynamic draws each training pixel as Bernoulli(intensity) every batch, static "
                 "binarises the training images once (seeded); the test split is binarised once with a fixed seed "
                 "in both. The published 'statically binarised MNIST' (Larochelle and Murray) is a separate "
                 "download; static here is a seeded draw from the bundled images")


# What to change when a command runs out of memory: (the batch-like knob, the data-like knob).
_OOM_ADVICE = {
    "train": ("a smaller --batch-size", "fewer images (--limit) or a smaller model (--hidden, --latent-dim)"),
    "generate": ("a smaller --n", "several smaller calls with different --seed values"),
    "reconstruct": ("a smaller --n", "a machine with more memory"),
    "evaluate": ("--device cpu", "a machine with more memory"),
    "encode": ("--split test (the smaller split)", "a machine with more memory"),
    "anomaly": ("a machine with more memory", "fewer normal classes"),
    "timeline": ("a machine with more memory", "a film without --manifold"),
    "plugins": ("a machine with more memory", "fewer model plugins installed"),
    "sweep": ("a smaller --batch-size", "fewer runs or fewer images (--limit)"),
    "export": ("one part at a time (--part encoder or --part decoder)", "a machine with more memory"),
}


def _error(message: object) -> None:
    print(f"latent-explorer: error: {_one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None, *, process: bool = False) -> int:
    """Run one command. ``process`` (the entry points): this process ends when the command
    does, so the signal handlers stay in place, holding any late signal, instead of being
    put back for a caller; a Ctrl+C as the program exits then ends it quietly."""
    try:
        return _main(argv, process)
    except KeyboardInterrupt:  # before the handlers are in place, or after they are put back
        print("latent-explorer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None, process: bool = False) -> int:
    from explorer.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        if args.command:
            parser.error(f"--self-test takes no command (got {args.command!r})")
        from explorer.gui.app.self_test import run_self_test

        return run_self_test()
    command = args.command or "gui"
    if command == "gui":
        from explorer.app import missing_display, run_gui

        no_display = missing_display()
        if no_display is not None:  # Qt would abort the process (status 134) instead of saying so
            _error(no_display)
            return EXIT_USER_ERROR
        return run_gui(getattr(args, "checkpoint", None))
    handler = {"train": cmd_train, "evaluate": cmd_evaluate, "generate": cmd_generate, "timeline": cmd_timeline,
               "sweep": cmd_sweep, "plugins": cmd_plugins,
               "reconstruct": cmd_reconstruct, "encode": cmd_encode, "anomaly": cmd_anomaly,
               "export": cmd_export}[command]
    if process:
        _import_while_starting()
    with _Signals(restore=not process) as signals:
        try:
            return handler(args, signals)
        except UserError as exc:
            _error(exc)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print(f"latent-explorer: interrupted{signals.named()}; nothing was written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            from explorer.oom import is_out_of_memory, out_of_memory_message

            if not is_out_of_memory(exc):
                raise
            _error(out_of_memory_message(exc, *_OOM_ADVICE[command]))
            return EXIT_USER_ERROR


# -- signals ------------------------------------------------------------------------------

# What every command needs and what must never be left half-imported: numpy and torch fail
# in odd ways after a KeyboardInterrupt in the middle of their import.
STARTUP_IMPORTS = ("numpy", "torch")


def _import_while_starting() -> None:
    """Import the heavy modules while the entry point's start-up handlers are in place
    (explorer.startup_signals): a signal now ends the process at once with 128 + signum,
    before ``_Signals`` (which raises KeyboardInterrupt) takes over."""
    from explorer import startup_signals

    if startup_signals.installed():
        for name in STARTUP_IMPORTS:
            __import__(name)


def _importing(frame: Any) -> bool:
    """Whether ``frame`` (the main thread's, where a signal landed) is inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


class _Signals:
    """SIGINT, SIGTERM and SIGHUP all interrupt a command the way Ctrl+C does: the first
    one raises KeyboardInterrupt where the work is. From then on, and inside :meth:`held`
    (a save), further signals are only counted, so a save is never cut short: it ends with
    the old file or the complete new one, and the message can say which. A signal the
    process ignored when it started (``nohup`` ignores SIGHUP) stays ignored. Handlers are
    installed in the main thread only and restored on exit (or, ``restore=False``, left
    holding signals: the process is about to end)."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self, restore: bool = True) -> None:
        self.received: list[str] = []
        self._holding = False
        self._restore = restore
        self._previous: dict[int, Any] = {}
        self._redelivery: threading.Thread | None = None

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                previous = signal.getsignal(sig)
                if previous == signal.SIG_IGN:
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._restore:
            self._holding = True
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if not self._holding and _importing(frame) and self._redeliver_after_import(signum):
            # Raising in the middle of an import leaves a half-initialised module behind;
            # the signal is delivered again, and raised, once the import is over.
            return
        self.received.append(signal.Signals(signum).name)
        if self._holding:
            return
        self._holding = True  # the unwinding and the save that follow are not to be cut short
        raise KeyboardInterrupt(self.received[-1])

    def _redeliver_after_import(self, signum: int) -> bool:
        """Send ``signum`` to the main thread again once it is out of every import (a
        watcher thread polls its frames); False where that cannot be done (no pthread_kill)."""
        if self._redelivery is not None and self._redelivery.is_alive():
            return True  # one pending signal interrupts once; the rest would be held anyway
        main = threading.main_thread().ident
        if main is None or not hasattr(signal, "pthread_kill"):
            return False
        tick = threading.Event()

        def watch() -> None:
            while True:
                frame = sys._current_frames().get(main)
                if frame is None:
                    return
                busy = _importing(frame)
                del frame
                if not busy:
                    break
                tick.wait(0.005)
            if signal.getsignal(signum) == self._handle:  # not after the command has put the old handlers back
                signal.pthread_kill(main, signum)

        self._redelivery = threading.Thread(target=watch, name="latent-explorer-signal", daemon=True)
        self._redelivery.start()
        return True

    def hold(self) -> None:
        """Count signals instead of raising them from now on."""
        self._holding = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Count signals instead of raising them for the duration of the block."""
        before = self._holding
        self._holding = True
        try:
            yield
        finally:
            self._holding = before

    def named(self) -> str:
        """' (SIGTERM)' when a signal other than Ctrl+C's interrupted, else ''."""
        first = self.received[0] if self.received else "SIGINT"
        return "" if first == "SIGINT" else f" ({first})"


# -- helpers ------------------------------------------------------------------------------


def _output_path(text: str, allowed: tuple[str, ...]) -> Path:
    """The output file, proven writable now, before any work (explorer.atomic.check_writable)."""
    from explorer.atomic import check_writable
    from explorer.errors import UserError

    path = Path(text)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file name ending in {' or '.join(allowed)}")
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise UserError(f"{path.name or path}: the output must end in {' or '.join(allowed)}")
    return check_writable(path)


def _save_npy(path: Path, array: Any) -> None:
    from explorer.analysis.export import save_npy

    save_npy(path, array)


def _load(path: str, device: str = "cpu"):  # -> (Checkpoint, Autoencoder, torch.device)
    from explorer.errors import CheckpointError
    from explorer.training.checkpoint import load_checkpoint
    from explorer.training.device import resolve_device

    if "\x00" in path:
        raise CheckpointError(f"{path!r} is not a file name (it holds a NUL character)")
    ckpt = load_checkpoint(path)
    for note in ckpt.notes:  # parts of the file left out on load; the model itself is fine
        print(f"latent-explorer: note: {_one_line(note)}", file=sys.stderr)
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


def _check_room(out: Path, model) -> None:  # model: Autoencoder
    """Refuse to start a run whose checkpoint the disk at ``out`` has no room for (the old
    file stays until the new one is complete, so both must fit)."""
    import shutil

    from explorer.errors import UserError

    need = sum(v.numel() * v.element_size() for v in model.state_dict().values()) + (1 << 20)  # + header
    try:
        free = shutil.disk_usage(out.parent if str(out.parent) else ".").free
    except OSError:
        return
    if free < need:
        raise UserError(f"cannot write {out}: the checkpoint needs about {need / 1024**2:,.1f} MB and only "
                        f"{free / 1024**2:,.1f} MB are free there; free some space or choose another --out")


def _finite_weights(model) -> bool:  # model: Autoencoder
    import torch

    return all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point())


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
                                    compile=args.compile, timeline=not args.no_timeline)
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

    from explorer.errors import UserError
    from explorer.oom import is_out_of_memory
    from explorer.training.engine import drive, train
    from explorer.training.events import EpochEnd, Event, Notice, RunStarted, Snapshot, StepLoss
    from explorer.training.history import History
    from explorer.training.runs import prepare_run
    from explorer.training.timeline import Timeline

    main_process = dist is None or dist.rank == 0

    def say(text: str) -> None:
        if main_process:
            print(text, file=sys.stderr)

    if main_process and sys.stderr.isatty() and not args.json:
        from explorer.data.folder_cache import use_tqdm

        use_tqdm()  # a large folder's first load decodes it into its cache: show how far it got
    run = prepare_run(model_config, data_config, train_config)
    if main_process:
        _check_room(out, run.model)  # a full disk found now, not after the whole run
    for name, why in run.folder_report.skipped[:10]:
        say(f"latent-explorer: skipped {_one_line(name, 200)}: {_one_line(why, 200)}")
    if len(run.folder_report.skipped) > 10:
        say(f"latent-explorer: skipped {len(run.folder_report.skipped) - 10} more files")
    for note in run.folder_report.notes:
        say(f"latent-explorer: warning: {_one_line(note, 400)}")

    model = run.model
    history = History(part_names=model.part_names)
    timeline = Timeline.for_data(run.data) if train_config.timeline and main_process else None
    show_bar = main_process and sys.stderr.isatty() and not args.json
    bar = None
    steps = 0  # the last logged global step: 0 until training has taken (and logged) a step
    epoch_now = 0  # the epoch being trained
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
        nonlocal bar, steps, snapshot, save_due, epoch_now
        history.record(ev)
        if timeline is not None:
            timeline.record(ev)
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
            if not args.json:
                procs = f", {dist.world_size} processes ({dist.backend})" if dist is not None else ""
                print(f"training {args.model} on {run.data.name} ({ev.train_size} train / {ev.test_size} test "
                      f"images) on {ev.device} ({ev.precision}{', compiled' if ev.compiled else ''}{procs})",
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
                line = _epoch_line(ev, train_config.epochs)
                (bar.write(line) if bar is not None and show_bar else print(line, flush=True))

    result = None
    interrupted = False
    lost: BaseException | None = None
    try:
        result = drive(train(model, run.data, train_config, dist=dist), on_event)
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
                  f"so {out} is the complete new model ({history.last_epoch} epochs)", file=sys.stderr)
            return EXIT_INTERRUPTED
    if result.global_step < SHORT_RUN_STEPS:
        print(f"latent-explorer: this run took only {result.global_step:,} training steps, probably too few for "
              f"the model to learn much; train more --epochs or on more images", file=sys.stderr)
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
        _error(f"{what} after {history.last_epoch} epoch(s), and the model could not be saved: {exc}")
        return EXIT_INTERRUPTED
    again = " (a second interrupt came during the save, which was finished first)" \
        if len(signals.received) > seen else ""
    print(f"latent-explorer: {what} after {history.last_epoch} of {train_config.epochs} epoch(s) "
          f"({steps:,} steps); saved the model so far to {where}{_untouched(out, where)}{again}",
          file=sys.stderr)
    return EXIT_INTERRUPTED


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
        "binarize": data_config.binarize, **evaluation.metrics,
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
        if key == "iw_se":
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


class _Bar:
    """A tqdm bar on stderr driven by fractions, for long evaluations."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1000, file=sys.stderr, dynamic_ncols=True, bar_format="{desc} {percentage:3.0f}%|"
                         "{bar}| {elapsed}<{remaining}")
        self._label = ""

    def update(self, fraction: float, label: str) -> None:
        if label != self._label:
            self._label = label
            self._bar.set_description_str(label, refresh=False)
        self._bar.n = int(1000 * fraction)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _progress_bar(wanted: bool) -> _Bar | None:
    return _Bar() if wanted and sys.stderr.isatty() else None


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
                      batch_size=args.batch_size, lr=args.lr, device=args.device)
    resolve_device(args.device)
    data_config = DataConfig(dataset=args.dataset, limit=args.limit, binarize=args.binarize)
    found = check_out_dir(args.out_dir, plan, data_config, resume=args.resume)
    todo = [run for run in plan if run.name not in found.finished]
    groups = group_runs(todo)
    if not args.json:
        if found.finished:
            print(f"resuming the sweep in {_one_line(found.path)}: {len(found.finished)} of {len(plan)} runs are "
                  f"finished", file=sys.stderr)
        if todo:
            print(f"sweep of {len(todo)} runs in {len(groups)} group(s) trained together: "
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
              + (f" ({more} more interrupt(s) waited until the files were complete)" if more > 0 else ""),
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
        earlier = f" ({summary.earlier} finished earlier were kept)" if summary.earlier else ""
        removed = (f"; removed {len(summary.removed)} interrupted checkpoint(s) that the finished runs replace"
                   if summary.removed else "")
        print(f"wrote {len(summary.rows) - summary.earlier} checkpoints{earlier}, {summary.csv_path.name} and "
              f"{summary.markdown_path.name} to {_one_line(summary.out_dir)} in {summary.seconds:.1f} s{removed}",
              file=sys.stderr)
    return 0


def _sweep_kept(report) -> str:  # report: explorer.training.sweep.SweepReport
    """What an interrupted sweep wrote, by kind and name, and how far it is: one clause."""
    def names(items: Sequence[str]) -> str:
        shown = ", ".join(items[:3])
        return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    where = _one_line(report.out_dir, 200)
    if not report.written:
        kept = "nothing was written"
        if report.finished:
            kept += f"; {where} holds the {report.finished} runs finished earlier"
    else:
        pieces = []
        if report.finished_now:
            pieces.append(f"{len(report.finished_now)} finished checkpoint(s) ({names(report.finished_now)})")
        if report.interrupted_now:
            pieces.append(f"{len(report.interrupted_now)} interrupted run(s) saved beside their names "
                          f"({names(report.interrupted_now)})")
        tables = [n for n in report.written if n not in report.finished_now and n not in report.interrupted_now]
        pieces.append(", ".join(tables))
        kept = f"wrote {'; '.join(p for p in pieces if p)} to {where}"
    left = report.runs - report.finished
    progress = f"{report.finished} of {report.runs} runs are finished"
    if left:
        progress += f"; the same command with --resume trains the other {left}"
    failed = "".join(f"; could not save {what}" for what in report.failed[:3])
    return _one_line(f"{kept}; {progress}{failed}", 2000)


def cmd_plugins(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """List the installed model plugins: each is loaded and checked (explorer.plugins); a
    broken one is one line saying why. Exit 0 whatever they are: the listing worked."""
    from explorer.plugins import GROUP, discover

    infos = discover()
    if args.json:
        for info in infos:
            plugin = info.plugin if info.ok else None
            print(json.dumps({
                "name": info.name, "status": "ok" if info.ok else "broken", "distribution": info.distribution,
                "version": info.version, "description": plugin.description if plugin is not None else "",
                "error": info.error,
                "settings": [{"name": f.name, "type": f.type, "default": f.default, "min": f.min, "max": f.max,
                              "choices": list(f.choices), "help": f.help} for f in (plugin.schema if plugin else ())],
            }), flush=True)
        return 0
    if not infos:
        print(f"no model plugins are installed (a package adds one through the entry-point group {GROUP}; "
              "see the README, \"Model plugins\")")
        return 0
    for info in infos:
        print(_one_line(info.line()))
        for f in info.plugin.schema if info.ok and info.plugin is not None else ():
            bounds = f" from {f.min:g}" if f.min is not None else ""
            bounds += f" to {f.max:g}" if f.max is not None else ""
            kind = f"one of {', '.join(f.choices)}" if f.type == "choice" else f.type + bounds
            print(_one_line(f"    --set {f.name}=  {kind}, default {json.dumps(f.default)}"
                            + (f": {f.help}" if f.help else "")))
    return 0


def cmd_timeline(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """A film of the checkpoint's training timeline (explorer.training.film), written atomically."""
    from explorer.atomic import check_writable
    from explorer.training.checkpoint import load_checkpoint
    from explorer.training.film import check_film_path, export_film

    check_film_path(args.out)
    check_writable(Path(args.out))
    if "\x00" in args.checkpoint:
        from explorer.errors import CheckpointError

        raise CheckpointError(f"{args.checkpoint!r} is not a file name (it holds a NUL character)")
    try:
        frames = export_film(load_checkpoint(args.checkpoint), args.out, fps=args.fps, manifold=args.manifold)
    except Exception as exc:
        from explorer.errors import UserError
        from explorer.oom import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        # Frames stream to the file one at a time, so the film's length is not what ran out;
        # advise only what this call used (telling someone to drop a --manifold they never
        # gave sends them looking for the wrong cause).
        advice = "a film without --manifold or " if args.manifold else ""
        raise UserError(f"out of memory while making the film; try {advice}a machine with more memory") from None
    print(f"wrote {frames} frames to {args.out}", file=sys.stderr)
    return 0


def cmd_generate(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    import torch

    from explorer.analysis.grids import image_grid, save_png
    from explorer.errors import UserError

    out = _output_path(args.out, (".png", ".npy")) if args.out is not None else None
    if out is None:
        from explorer.atomic import check_writable_folder

        check_writable_folder(args.folder)
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
    from explorer.memory_budget import check_generate

    check_generate(cfg, n, device=dev)  # before anything is drawn: one line saying how many fit
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


def cmd_anomaly(args: argparse.Namespace, signals: _Signals | None = None) -> int:
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
    label = ", ".join(_one_line(names[k], 80) if k < len(names) else str(k) for k in report.normal_classes)
    print(f"normal: {label}; score: {result['score']}; ROC AUC {report.auc:.4f}")
    for k, auc in report.auc_per_class.items():
        print(f"  {_one_line(names[k], 80) if k < len(names) else k}: AUC {auc:.4f}")
    if args.per_image:
        print("index,label,score")
        for row in result["scores"]:
            print(f"{row['index']},{row['label']},{row['score']:.6g}")
    return 0


def cmd_reconstruct(args: argparse.Namespace, signals: _Signals | None = None) -> int:
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


def cmd_encode(args: argparse.Namespace, signals: _Signals | None = None) -> int:
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


def cmd_export(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """The model for tools other than this app (explorer.export): ONNX files, torch.export
    programs or one web page. Every file is proven writable, and a missing package or a
    model the format cannot hold is said, before the checkpoint is even loaded where it can."""
    from explorer.errors import UserError
    from explorer.export import DEFAULT_PART, SUFFIXES, export_model, format_for_suffix
    from explorer.export.common import check_targets, targets

    named = Path(args.out).name or args.out
    by_suffix = format_for_suffix(args.out)
    fmt = args.format or by_suffix
    if fmt is None:
        raise UserError(f"{named}: end --out in .onnx, .pt2 or .html, or say --format onnx, pt2 or web")
    if by_suffix != fmt:
        raise UserError(f"{named}: a {fmt} export must end in {SUFFIXES[fmt]}")
    part = args.part or DEFAULT_PART[fmt]
    if fmt == "web" and part != "decoder":
        raise UserError("the web page runs the decoder only; use --part decoder (the default for web)")
    if fmt == "onnx":
        from explorer.export.onnx import require_packages

        require_packages()
    check_targets(targets(args.out, part, ".htm" if args.out.lower().endswith(".htm") else SUFFIXES[fmt]))
    ckpt, model, _ = _load(args.checkpoint)
    codes = labels = None
    class_names = ckpt.class_names
    if fmt == "web":
        from explorer.export.web import check_web, first_codes

        check_web(model)  # a conv model is refused before its data is loaded
        data = _load_data(ckpt)
        codes, labels = first_codes(model, data.test_images, data.test_labels)
        class_names = class_names or data.class_names
    written = export_model(model, fmt, part, args.out, codes=codes, labels=labels, class_names=class_names)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1024**2:,.1f} MB)", file=sys.stderr)
    return 0
