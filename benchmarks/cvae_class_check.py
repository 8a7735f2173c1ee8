"""Does a conditional VAE draw the digit it is asked for?

Trains a small, independent CNN classifier on MNIST (plain PyTorch, nothing from the
project's models), trains a conditional VAE with the project's engine, then for every
class k samples ``--samples`` images conditioned on k and asks the classifier what they
are. Reports the fraction recognised as k per class, overall and the minimum over
classes, and exits non-zero if any class falls below ``--min-accuracy``.

    python benchmarks/cvae_class_check.py                      # MLP cvae, 3 epochs
    python benchmarks/cvae_class_check.py --model conv-cvae --epochs 3 --json

Exit status: 0 all classes pass, 1 some class is below the threshold, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.config import DataConfig, TrainConfig
from explorer.data import load_dataset, to_float
from explorer.models import build_model, config_for_data, get_preset
from explorer.training.device import resolve_device
from explorer.training.engine import run_to_end, train


class DigitClassifier(nn.Module):
    """Two conv layers and two linear layers: ~99% on MNIST after one or two epochs."""

    def __init__(self, num_classes: int = 10, channels: int = 1, size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * (size // 4) * (size // 4), 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.drop = nn.Dropout(0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


@torch.no_grad()
def predict(clf: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 1000) -> torch.Tensor:
    """Class predictions for float images in [0, 1] (or uint8), on the CPU."""
    clf.eval()
    out = []
    for i in range(0, images.shape[0], batch):
        xb = images[i:i + batch]
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb.float()
        out.append(clf(xb.to(device)).argmax(1).cpu())
    return torch.cat(out)


def train_classifier(data, epochs: int, seed: int, device: torch.device) -> tuple[nn.Module, float, list[float]]:
    seed_everything(seed)
    c, h, _ = data.image_shape
    clf = DigitClassifier(data.num_classes, c, h).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    x, y = data.train_images, data.train_labels
    n = x.shape[0]
    shuffle = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        clf.train()
        perm = torch.randperm(n, generator=shuffle)
        for i in range(0, n, 128):
            idx = perm[i:i + 128]
            logits = clf(to_float(x[idx]).to(device))
            loss = F.cross_entropy(logits, y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    pred = predict(clf, data.test_images, device)
    correct = pred == data.test_labels
    per_class = [float(correct[data.test_labels == k].float().mean()) for k in range(data.num_classes)]
    return clf, float(correct.float().mean()), per_class


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cvae", help="conditional preset: cvae (MLP, default) or conv-cvae")
    p.add_argument("--epochs", type=int, default=3, help="CVAE training epochs (default 3)")
    p.add_argument("--samples", "-n", type=int, default=200, help="images sampled per class (default 200)")
    p.add_argument("--min-accuracy", type=float, default=0.8,
                   help="fail if any class is recognised less often than this (default 0.8)")
    p.add_argument("--classifier-epochs", type=int, default=2, help="classifier training epochs (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (training only; sampling is on CPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)

    if args.epochs < 1 or args.samples < 1 or args.classifier_epochs < 1:
        p.error("--epochs, --samples and --classifier-epochs must be positive")
    preset = get_preset(args.model)
    if not preset.model.conditional:
        p.error(f"{args.model!r} is not a conditional model; use cvae or conv-cvae")

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    device = resolve_device(args.device)
    data = load_dataset(DataConfig())
    num_classes = data.num_classes
    names = list(data.class_names) or [str(k) for k in range(num_classes)]

    t0 = time.perf_counter()
    clf, clf_acc, clf_per_class = train_classifier(data, args.classifier_epochs, args.seed, device)
    clf_seconds = time.perf_counter() - t0
    clf.to("cpu")
    cpu = torch.device("cpu")
    log(f"classifier: {args.classifier_epochs} epoch(s), test accuracy {clf_acc:.4f} ({clf_seconds:.1f}s)")

    t0 = time.perf_counter()
    seed_everything(args.seed)
    model_config = config_for_data(preset.model, data.image_shape, num_classes)
    model = build_model(model_config)
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed, device=args.device)
    events, result = run_to_end(train(model, data, cfg))
    cvae_seconds = time.perf_counter() - t0
    if result.status != "completed":
        print(f"CVAE training did not complete: {result.status} {result.message}", file=sys.stderr)
        return 1
    last_test = [e for e in events if type(e).__name__ == "EpochEnd"][-1].test
    started = next(e for e in events if type(e).__name__ == "RunStarted")
    precision = getattr(started, "precision", "fp32")
    log(f"{args.model} ({model_config.latent_dim}-d latent, {precision}): {args.epochs} epoch(s) "
        f"({cvae_seconds:.1f}s), test {last_test}")
    model.eval()
    model.to("cpu")

    per_class: list[dict] = []
    total_correct = 0
    with torch.no_grad():
        for k in range(num_classes):
            gen = torch.Generator().manual_seed(args.seed * 1000 + k)
            imgs = model.sample(args.samples, y=torch.full((args.samples,), k, dtype=torch.long), generator=gen)
            pred = predict(clf, imgs, cpu)
            counts = torch.bincount(pred, minlength=num_classes)
            correct = int(counts[k])
            total_correct += correct
            wrong = counts.clone()
            wrong[k] = -1
            confused = int(wrong.argmax())
            per_class.append({
                "class": k, "name": names[k], "accuracy": correct / args.samples,
                "most_confused_with": confused if int(counts[confused]) > 0 else None,
                "confused_fraction": int(counts[confused]) / args.samples if int(counts[confused]) > 0 else 0.0,
                "classifier_test_accuracy": clf_per_class[k],
            })

    overall = total_correct / (args.samples * num_classes)
    worst = min(per_class, key=lambda r: r["accuracy"])
    failing = [r["class"] for r in per_class if r["accuracy"] < args.min_accuracy]
    passed = not failing

    if args.json:
        print(json.dumps({
            "model": args.model, "latent_dim": model_config.latent_dim, "precision": precision,
            "epochs": args.epochs, "seed": args.seed, "samples_per_class": args.samples,
            "device": str(device), "cvae_train_seconds": round(cvae_seconds, 2), "cvae_test": last_test,
            "classifier": {"epochs": args.classifier_epochs, "test_accuracy": clf_acc,
                           "train_seconds": round(clf_seconds, 2)},
            "per_class": per_class, "overall": overall,
            "min": {"class": worst["class"], "accuracy": worst["accuracy"]},
            "min_accuracy": args.min_accuracy, "failing_classes": failing, "passed": passed,
        }))
    else:
        print(f"\n{args.model} ({model_config.latent_dim}-d latent, {precision}), {args.epochs} epoch(s), "
              f"seed {args.seed}, {args.samples} samples per class; "
              f"independent classifier test accuracy {clf_acc:.4f}")
        print(f"{'class':>5}  {'recognised':>10}  {'top confusion':>13}  {'clf on real':>11}")
        for r in per_class:
            conf = (f"{r['most_confused_with']} ({r['confused_fraction']:.3f})"
                    if r["most_confused_with"] is not None else "-")
            flag = "  FAIL" if r["accuracy"] < args.min_accuracy else ""
            print(f"{r['name']:>5}  {r['accuracy']:>10.3f}  {conf:>13}  {r['classifier_test_accuracy']:>11.4f}{flag}")
        verdict = "PASS" if passed else f"FAIL (classes {', '.join(map(str, failing))})"
        print(f"overall {overall:.3f}; min {worst['accuracy']:.3f} (class {worst['name']}); "
              f"threshold {args.min_accuracy}: {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
