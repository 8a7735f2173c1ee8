"""Train the MNIST classifier that ships with the app, seeded and reproducibly.

Trains :class:`explorer.analysis.classifier.LeNet` on the bundled MNIST train split (60,000
images) on the CPU with a fixed torch thread count, measures it on the 10,000 test images
(grey, and binarised with a seeded ``torch.bernoulli``), refuses to write a classifier
under ``--min-accuracy``, and writes ``explorer/resources/classifier/mnist-lenet.safetensors``.

    python scripts/train_classifier.py                 # seed 0, the default epochs, 2 threads
    python scripts/train_classifier.py --out /tmp/clf.safetensors --limit 2000 --epochs 1 --min-accuracy 0

The same seed, epochs, thread count and torch version give the same weights, bit for bit.
Exit status: 0 written, 1 below --min-accuracy, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis.classifier import (  # noqa: E402 - after the path set-up above
    BUNDLED_PATH,
    DEFAULT_EPOCHS,
    ClassifierInfo,
    accuracy,
    fingerprint,
    save_classifier,
    train_classifier,
)
from explorer.data.dataset import ImageData  # noqa: E402
from explorer.data.mnist import load_mnist  # noqa: E402


def binarised(images: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 images with each pixel 0 or 255, on with probability pixel/255 (seeded)."""
    probs = images.to(torch.float32) / 255.0
    return (torch.bernoulli(probs, generator=torch.Generator().manual_seed(seed)) * 255).to(torch.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"default {DEFAULT_EPOCHS}")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2; part of reproducibility)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N train images only (tests)")
    p.add_argument("--min-accuracy", type=float, default=0.99, help="refuse to write below this (default 0.99)")
    p.add_argument("--out", type=Path, default=BUNDLED_PATH, help="where to write (default: the bundled file)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.threads < 1 or (args.limit is not None and args.limit < 1):
        p.error("--epochs, --threads and --limit must be positive")

    torch.set_num_threads(args.threads)
    full = load_mnist()
    n = full.train_images.shape[0] if args.limit is None else min(args.limit, full.train_images.shape[0])
    data = ImageData(full.name, full.train_images[:n].clone(), full.train_labels[:n].clone(),  # type: ignore[index]
                     full.test_images, full.test_labels, full.class_names)
    start = time.perf_counter()
    model, acc = train_classifier(data, seed=args.seed, epochs=args.epochs)
    seconds = time.perf_counter() - start
    acc_binary = accuracy(model, binarised(data.test_images, args.seed), data.test_labels)  # type: ignore[arg-type]
    report = {"train_images": n, "seed": args.seed, "epochs": args.epochs, "threads": args.threads,
              "torch": torch.__version__, "seconds": round(seconds, 1), "test_accuracy": acc,
              "test_accuracy_binarised": acc_binary, "out": str(args.out)}
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4f} is below {args.min_accuracy}; nothing written", file=sys.stderr)
        return 1
    info = ClassifierInfo(dataset="mnist", image_shape=data.image_shape, num_classes=model.num_classes,
                          seed=args.seed, epochs=args.epochs, accuracy=acc, fingerprint=fingerprint(data),
                          source="trained", torch_version=torch.__version__, threads=args.threads)
    save_classifier(args.out, model, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
