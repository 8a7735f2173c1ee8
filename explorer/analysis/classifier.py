"""A small LeNet-style classifier whose penultimate features measure sample quality.

Sample quality needs a fixed judge: the same network, trained the same way, for every
model that is compared. For the bundled MNIST one ships with the app
(``resources/classifier/mnist-lenet.safetensors``, made by ``scripts/train_classifier.py``,
seeded); for any other labelled dataset it is trained on demand on the train split and
cached by a fingerprint of that split, so a second evaluation reuses it.

Files are safetensors with JSON-free string metadata; loading never unpickles anything,
checks every field and every tensor's shape against a freshly built network, and raises
one :class:`CheckpointError` line for a damaged file.

Training is seeded (weights, shuffling, dropout) and on the CPU gives identical weights
for the same seed, data and torch thread count (``torch.get_num_threads()``, recorded in
the file); a different thread count may change the last bits of the float sums.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from explorer import cancellation
from explorer.atomic import atomic_write
from explorer.data.dataset import ImageData, to_float
from explorer.errors import CheckpointError, UserError
from explorer.paths import RESOURCES, cache_dir

FORMAT = "latent-explorer-classifier"
FORMAT_VERSION = "1"
BUNDLED_PATH = RESOURCES / "classifier" / "mnist-lenet.safetensors"
BUNDLED_SHAPE = (1, 28, 28)
FEATURE_DIM = 128
DEFAULT_EPOCHS = 8
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
MAX_FILE_BYTES = 64 * 1024 * 1024  # the MNIST one is under 1 MB; anything far larger is not ours
_POOLED = 4  # the second stage is pooled to 4x4 whatever the image size, so one network fits any folder

Progress = Callable[[int, int], None]


class LeNet(nn.Module):
    """LeNet as in Caffe's MNIST example: two 5x5 conv + max-pool stages (20 and 50 maps),
    a 128-unit hidden layer (the features), the class layer.

    The adaptive pool after the second stage makes the hidden layer's input the same size
    for 28x28 grey digits and 32x32 colour images alike; images under 16 pixels a side get
    padded convolutions so that they still fit.
    """

    def __init__(self, image_shape: tuple[int, int, int] = BUNDLED_SHAPE, num_classes: int = 10) -> None:
        super().__init__()
        channels, height, width = (int(s) for s in image_shape)
        self.image_shape = (channels, height, width)
        self.num_classes = int(num_classes)
        pad = 0 if min(height, width) >= 16 else 2
        self.conv1 = nn.Conv2d(channels, 20, 5, padding=pad)
        self.conv2 = nn.Conv2d(20, 50, 5, padding=pad)
        self.pool = nn.AdaptiveMaxPool2d(_POOLED)
        self.fc1 = nn.Linear(50 * _POOLED * _POOLED, FEATURE_DIM)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations (N, 128) for float images in [0, 1]."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(self.pool(x).flatten(1)))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Class scores from :meth:`features` (so one pass gives both)."""
        return self.fc2(self.drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x))


@dataclass(frozen=True)
class ClassifierInfo:
    """Where a classifier came from and how good it is on its dataset's test split."""

    dataset: str
    image_shape: tuple[int, int, int]
    num_classes: int
    seed: int
    epochs: int
    accuracy: float  # on the test split, as measured when it was trained
    fingerprint: str  # of the train split it was trained on
    source: str  # "bundled", "cached" or "trained"
    torch_version: str = ""
    threads: int = 0
    path: Path | None = None


# -- data -----------------------------------------------------------------------------------


def _num_classes(data: ImageData) -> int:
    if not data.has_labels:
        raise UserError(f"{data.name} has no class labels; sample quality needs class labels "
                        "(for your own images, one sub-folder per class)")
    most = int(max(data.train_labels.max(), data.test_labels.max())) + 1  # type: ignore[union-attr]
    return max(data.num_classes, most)


def fingerprint(data: ImageData) -> str:
    """sha256 of the train split (shape, image bytes, labels): names the cached classifier."""
    h = hashlib.sha256()
    h.update(json.dumps(list(data.train_images.shape)).encode())
    h.update(data.train_images.contiguous().numpy().tobytes())
    if data.train_labels is not None:
        h.update(data.train_labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def predict(classifier: LeNet, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class predictions (int64) for uint8 images or floats in [0, 1], in batches."""
    classifier.eval()
    out = []
    for i in range(0, images.shape[0], batch_size):
        cancellation.check()
        xb = images[i:i + batch_size]
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb.float()
        out.append(classifier(xb).argmax(1))
    return torch.cat(out)


def accuracy(classifier: LeNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``images`` classified as ``labels``."""
    return float((predict(classifier, images) == labels).to(torch.float64).mean())


# -- training -------------------------------------------------------------------------------


def train_classifier(data: ImageData, seed: int = 0, epochs: int = DEFAULT_EPOCHS,
                     progress: Progress | None = None) -> tuple[LeNet, float]:
    """Train a LeNet on ``data``'s train split; returns it (in eval mode) and its test accuracy.

    Adam with a cosine-decayed learning rate, batches of 128 gathered by index from the
    uint8 tensors. The global torch RNG is forked, so callers' random streams are untouched.
    ``progress(done, total)`` counts batches; ``cancellation.check()`` runs before each.
    """
    if epochs < 1:
        raise UserError(f"the classifier needs at least one epoch, not {epochs}")
    num_classes = _num_classes(data)
    x, y = data.train_images, data.train_labels
    assert y is not None
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / BATCH_SIZE)
    total = steps_per_epoch * epochs
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LeNet(data.image_shape, num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        shuffle = torch.Generator().manual_seed(seed)
        model.train()
        step = 0
        for _ in range(epochs):
            perm = torch.randperm(n, generator=shuffle)
            for i in range(0, n, BATCH_SIZE):
                cancellation.check()
                idx = perm[i:i + BATCH_SIZE]
                loss = F.cross_entropy(model(to_float(x[idx])), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                if progress is not None:
                    progress(step, total)
    model.eval()
    return model, accuracy(model, data.test_images, data.test_labels)  # type: ignore[arg-type]


# -- files ----------------------------------------------------------------------------------


def save_classifier(path: str | Path, model: LeNet, info: ClassifierInfo) -> Path:
    """Write ``model`` and ``info`` as one safetensors file, atomically."""
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dataset": info.dataset,
        "image_shape": json.dumps(list(info.image_shape)), "num_classes": str(info.num_classes),
        "seed": str(info.seed), "epochs": str(info.epochs), "test_accuracy": repr(float(info.accuracy)),
        "fingerprint": info.fingerprint, "torch_version": info.torch_version, "threads": str(info.threads),
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    blob = st_save(tensors, metadata=metadata)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
    return atomic_write(path, lambda fh: fh.write(blob), error=CheckpointError)


def _read(path: Path) -> bytes:
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise CheckpointError(f"{path.name} is {size / 1e6:.0f} MB; a classifier file is at most "
                                  f"{MAX_FILE_BYTES // 1_000_000} MB")
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a classifier file") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def _header(raw: bytes, name: str) -> dict[str, str]:
    """The safetensors header's metadata, read from the same bytes the tensors come from."""
    damaged = CheckpointError(f"{name} is not a Latent Explorer classifier (damaged or not safetensors)")
    if len(raw) < 8:
        raise damaged
    n = int.from_bytes(raw[:8], "little")
    if n < 2 or n > len(raw) - 8:
        raise damaged
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise damaged from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise damaged
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name} is a classifier of format version {str(meta.get('format_version'))[:20]!r}; "
                              f"this version reads {FORMAT_VERSION}")
    return {str(k): str(v) for k, v in meta.items()}


def _info(meta: dict[str, str], name: str, source: str, path: Path) -> ClassifierInfo:
    try:
        shape = json.loads(meta["image_shape"])
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and 1 <= s <= 4096
                                                                   for s in shape) and shape[0] in (1, 3)):
            raise ValueError
        info = ClassifierInfo(dataset=meta["dataset"][:200], image_shape=(shape[0], shape[1], shape[2]),
                              num_classes=int(meta["num_classes"]), seed=int(meta["seed"]),
                              epochs=int(meta["epochs"]), accuracy=float(meta["test_accuracy"]),
                              fingerprint=meta["fingerprint"][:64], source=source,
                              torch_version=meta.get("torch_version", "")[:40],
                              threads=int(meta.get("threads", "0")), path=path)
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{name} has damaged or missing metadata") from None
    if not 2 <= info.num_classes <= 10_000 or not 0.0 <= info.accuracy <= 1.0:
        raise CheckpointError(f"{name} has damaged metadata (classes or accuracy out of range)")
    return info


def load_classifier(path: str | Path, source: str = "cached") -> tuple[LeNet, ClassifierInfo]:
    """Read a classifier file; any problem is one CheckpointError line."""
    path = Path(path)
    raw = _read(path)
    meta = _header(raw, path.name)
    info = _info(meta, path.name, source, path)
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError, OverflowError):
        raise CheckpointError(f"{path.name} is not a Latent Explorer classifier (damaged tensors)") from None
    model = LeNet(info.image_shape, info.num_classes)
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise CheckpointError(f"{path.name} does not hold the classifier's layers")
    for key, want in expected.items():
        got = tensors[key]
        if got.shape != want.shape or got.dtype != torch.float32:
            raise CheckpointError(f"{path.name}: layer {key} is {got.dtype} {tuple(got.shape)}, "
                                  f"not float32 {tuple(want.shape)}")
        if not torch.isfinite(got).all():
            raise CheckpointError(f"{path.name}: layer {key} holds NaN or infinite weights")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, info


def bundled_classifier() -> tuple[LeNet, ClassifierInfo]:
    """The classifier shipped for the bundled MNIST."""
    if not BUNDLED_PATH.exists():
        raise CheckpointError(f"the bundled MNIST classifier is missing from the install ({BUNDLED_PATH.name})")
    return load_classifier(BUNDLED_PATH, source="bundled")


def is_bundled_mnist(data: ImageData, dataset_name: str) -> bool:
    return dataset_name == "mnist" and data.image_shape == BUNDLED_SHAPE and data.num_classes == 10


def cached_path(print_: str) -> Path:
    return cache_dir() / "classifiers" / f"{print_}.safetensors"


def classifier_for(data: ImageData, dataset_name: str, progress: Progress | None = None,
                   epochs: int = DEFAULT_EPOCHS, seed: int = 0) -> tuple[LeNet, ClassifierInfo]:
    """The bundled classifier for the bundled MNIST; otherwise the one cached for this
    train split, trained (and cached, atomically) the first time it is asked for.

    A damaged or mismatched cache file is replaced by a fresh training run.
    """
    _num_classes(data)  # refuses unlabelled data before any work
    if is_bundled_mnist(data, dataset_name):
        return bundled_classifier()
    print_ = fingerprint(data)
    path = cached_path(print_)
    if path.exists():
        try:
            model, info = load_classifier(path, source="cached")
            if info.fingerprint == print_ and info.image_shape == data.image_shape and info.epochs == epochs \
                    and info.seed == seed:
                return model, info
        except CheckpointError:
            pass  # retrained and overwritten below
    model, acc = train_classifier(data, seed=seed, epochs=epochs, progress=progress)
    info = ClassifierInfo(dataset=dataset_name, image_shape=data.image_shape, num_classes=model.num_classes,
                          seed=seed, epochs=epochs, accuracy=acc, fingerprint=print_, source="trained",
                          torch_version=torch.__version__, threads=torch.get_num_threads(), path=path)
    save_classifier(path, model, info)
    return model, info
