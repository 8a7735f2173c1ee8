"""The argument parser: every command's options and their checked types (it builds without torch or Qt)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import Any

from explorer import __version__
from explorer.cli.common import EXIT_USER_ERROR, _echo, _one_line

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

def _min_steps(text: str) -> int:
    from explorer.config import MAX_MIN_STEPS

    return _whole_number(text, 0, MAX_MIN_STEPS, " steps")

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
    p.add_argument("checkpoint", nargs="?", help="a checkpoint (.safetensors) to open")

    p = sub.add_parser("train", help="train a model and save a checkpoint",
                       description="Train a model. Presets: " + "; ".join(f"{k}: {v.description}"
                                                                          for k, v in PRESETS.items()))
    p.late_description = _with_plugins(p.description or "")
    p.add_argument("--model", default="vae", metavar="PRESET",
                   help=f"one of {', '.join(PRESETS)}, or an installed model plugin's name (default vae)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", type=_setting, dest="settings",
                   help="a model plugin's setting (repeatable; `latent-explorer plugins` lists them)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist (bundled), fashion-mnist, kmnist, cifar10 (downloaded once), a folder of images, "
                        "or a NumPy file (.npz with images=, optional labels= and class_names=; or .npy images)")
    p.add_argument("--epochs", type=EPOCHS, help="default: the preset's")
    p.add_argument("--min-steps", type=_min_steps, default=0, metavar="N",
                   help="train more epochs than --epochs if that many are needed to take at least N optimisation "
                        "steps (small datasets); the first line says the plan (default 0: exactly --epochs, as "
                        "the window's At least (steps) Off)")
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
    p.add_argument("--image-size", type=IMAGE_SIZE,
                   help="for image folders and NumPy files: resize to this (default: folders 32, files as they are)")
    p.add_argument("--channels", type=int, choices=(1, 3),
                   help="for image folders and NumPy files: 1 or 3 (default automatic)")
    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="bf16: matrix products in bfloat16 (float32 weights and losses); auto uses it where "
                        "it is fast (CPUs with AVX512-BF16/AMX, recent GPUs)")
    p.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                   help="run the training step through torch.compile; auto compiles on CUDA only (on the "
                        "CPU the first compile takes seconds and pays back on long runs)")
    p.add_argument("--limit", type=IMAGES, help="use only the first N images of each split")
    p.add_argument("--binarize", choices=BINARIZE_MODES, default="none",
                   help=BINARIZE_HELP + " (default none)")
    p.add_argument("--seed", type=SEEDS, default=0,
                   help="random seed (default 0): the same seed and options train the same model")
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
    p.add_argument("checkpoint", help="the checkpoint (.safetensors) to evaluate")
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
    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object (metrics keyed as in the table)")

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
    p.add_argument("--lr", type=_float_list(0.0, 10.0, "learning rate"), metavar="LR,LR",
                   help="learning rates (default: the preset's); runs that differ only in it still train together, "
                        "each with its own")
    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
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
    p.add_argument("checkpoint", help="a checkpoint trained with its timeline (the default)")
    p.add_argument("--out", required=True, metavar="FILM.gif|FILM.mp4", help="the film to write (.gif, or .mp4 "
                                                                            "with imageio-ffmpeg)")
    p.add_argument("--fps", type=_int_in(1, 60, " frames per second"), default=4, help="frames per second (default 4)")
    p.add_argument("--manifold", action="store_true", help="draw the decoded manifold under the points")

    p = sub.add_parser("generate", help="sample new images (VAE family)")
    p.add_argument("checkpoint", help="a checkpoint of the VAE family (vae, beta-vae, conv-vae, cvae, conv-cvae)")
    p.add_argument("--n", type=N_OUT, default=64,
                   help="how many images (default 64; per class with --folder for conditional models)")
    p.add_argument("--label", type=_int_in(-(2**63), 2**63 - 1), help="class to generate (conditional models)")
    p.add_argument("--seed", type=SEEDS, default=0, help="seed of the codes drawn from the prior (default 0)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE.png|FILE.npy",
                        help="one image grid (.png) or the images as an (N, C, H, W) float32 array (.npy)")
    target.add_argument("--folder", metavar="DIR",
                        help="write an image folder (class/0001.png; --n per class for conditional models) "
                             "plus images.npy, loadable as a dataset")

    p = sub.add_parser("anomaly", help="anomaly scores of the test split: normal classes against the rest")
    p.add_argument("checkpoint", help="the checkpoint whose scores to compute")
    p.add_argument("--normal", type=_class_list, metavar="K,K",
                   help="the normal classes (default: the classes the model was trained on)")
    p.add_argument("--per-image", action="store_true", help="also print every test image's score")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("reconstruct", help="test images and their reconstructions")
    p.add_argument("checkpoint", help="the checkpoint whose model reconstructs")
    p.add_argument("--n", type=N_OUT, default=16, help="how many test images (default 16)")
    p.add_argument("--out", required=True, metavar="FILE.png|FILE.npy",
                   help="a grid of originals above reconstructions (.png) or the reconstructions as an "
                        "(N, C, H, W) float32 array (.npy)")

    p = sub.add_parser("encode", help="latent codes (means) of a split")
    p.add_argument("checkpoint", help="the checkpoint whose encoder to use")
    p.add_argument("--split", choices=("train", "test"), default="test", help="which split to encode (default test)")
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.csv",
                   help="the codes as an (N, latent) array (.npy) or a table with the labels (.csv)")

    from explorer.export import FORMATS, PARTS

    p = sub.add_parser("export", help="write the model for other tools: ONNX, a torch.export program (.pt2) or a "
                                      "web page",
                       description="Decoders take codes (and a one-hot class for conditional models) and return "
                                   "images in [0, 1] (N, C, H, W); encoders take such images and return the mean "
                                   "code (and the log-variance for the VAE family). The web page is one HTML file "
                                   "that runs an MLP decoder in the browser (README, 'Exporting a model').")
    p.add_argument("checkpoint", help="the checkpoint to export")
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix (.onnx, .pt2, .html)")
    p.add_argument("--part", choices=PARTS,
                   help="default: both for onnx and pt2 (written beside --out as NAME.encoder.SUFFIX and "
                        "NAME.decoder.SUFFIX), the decoder for web")
    p.add_argument("--out", required=True, metavar="PATH.onnx|PATH.pt2|PATH.html",
                   help="the file to write; its suffix picks the format unless --format says")
    return parser

DEVICE_HELP = "where to run: auto picks CUDA, then Apple's MPS, then the CPU (default auto)"

BINARIZE_HELP = ("binary pixels: dynamic draws each training pixel as Bernoulli(intensity) every batch, static "
                 "binarises the training images once (seeded); the test split is binarised once with a fixed seed "
                 "in both. The published 'statically binarised MNIST' (Larochelle and Murray) is a separate "
                 "download; static here is a seeded draw from the bundled images")
