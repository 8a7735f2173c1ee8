"""Sample quality: the Fréchet distance on a LeNet's features, and class accuracy of samples.

The Fréchet distance between two Gaussians fitted to classifier features is the FID of the
literature with a small MNIST network in place of Inception ("FID with a LeNet"). A number
alone means little, so it comes with its floor: the distance between the first ``n`` train
images and the test images, which no model is expected to beat. For conditional models the
classifier also says whether a sample drawn for class k looks like a k.

Everything here runs on the CPU in float64 where it matters (the statistics and the matrix
square root) and without scipy: the trace term comes from the eigenvalues of the symmetric
matrix sqrt(S1) S2 sqrt(S1), which has the same eigenvalues as S1 S2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.classifier import LeNet
from explorer.data.dataset import ImageData, to_float
from explorer.display import with_article
from explorer.errors import UserError

Progress = Callable[[int, int], None]
SAMPLE_BATCH = 500


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the (unbiased) covariance of ``features`` (N, D), in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"feature statistics need at least two rows of (N, D) features, not {feats.shape}")
    mu = feats.mean(axis=0)
    centred = feats - mu
    sigma = centred.T @ centred / (feats.shape[0] - 1)
    return mu, sigma


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (tiny negative
    eigenvalues from rounding are clipped to 0)."""
    sym = (matrix + matrix.T) / 2
    vals, vecs = np.linalg.eigh(sym)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), never negative.

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of the symmetric
    PSD matrix sqrt(S1) S2 sqrt(S1): no complex parts to discard, unlike ``sqrtm(S1 @ S2)``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"statistics of different shapes: {mu1.shape}, {s1.shape} and {mu2.shape}, {s2.shape}")
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * trace_sqrt
    return max(value, 0.0)


@torch.no_grad()
def classifier_features(classifier: LeNet, images: torch.Tensor, batch_size: int = 500,
                        with_predictions: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The penultimate features (N, 128) of uint8 images or floats in [0, 1], in batches;
    with ``with_predictions`` also the classifier's argmax for each image."""
    classifier.eval()
    feats, preds = [], []
    for i in range(0, images.shape[0], batch_size):
        cancellation.check()
        xb = images[i:i + batch_size]
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb.detach().to("cpu", torch.float32)
        f = classifier.features(xb)
        feats.append(f.numpy().astype(np.float64))
        if with_predictions:
            preds.append(classifier.logits(f).argmax(1).numpy())
    out = np.concatenate(feats)
    return (out, np.concatenate(preds)) if with_predictions else out


def _check(model, data: ImageData, classifier: LeNet, n: int) -> int:
    if not getattr(model, "is_generative", False):
        preset = getattr(getattr(model, "config", None), "preset", "") or "plain"
        raise UserError(f"{with_article(preset)} autoencoder cannot sample, so its sample quality cannot be measured; "
                        "use a VAE-family model")
    shape = tuple(model.config.image_shape)
    if shape != data.image_shape or tuple(classifier.image_shape) != data.image_shape:
        raise UserError(f"image shapes differ: the model makes {shape}, the dataset has {data.image_shape} and "
                        f"the classifier reads {tuple(classifier.image_shape)}")
    if not data.has_labels and model.is_conditional:
        raise UserError(f"{data.name} has no class labels; a conditional model's sample quality needs them")
    if model.is_conditional:
        k = int(model.config.num_classes)
        if k != classifier.num_classes:
            raise UserError(f"the model knows {k} classes and the classifier {classifier.num_classes}")
        if n < k:
            raise UserError(f"sample quality needs at least one sample per class ({k}), not {n}")
    elif n < 2:
        raise UserError(f"sample quality needs at least 2 samples, not {n}")
    return n


@torch.no_grad()
def _samples(model, n: int, labels: torch.Tensor | None, seed: int, tick: Callable[[int], None],
             binary: bool = False) -> torch.Tensor:
    """``n`` samples in [0, 1] on the CPU, drawn in batches from one seeded generator; with
    ``binary``, pixels drawn from the decoder's Bernoulli means (what the model of binary
    images generates, and what binary test images are compared with)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, SAMPLE_BATCH):
        cancellation.check()
        m = min(SAMPLE_BATCH, n - i)
        y = None if labels is None else labels[i:i + m]
        means = model.sample(m, y=y, generator=generator).detach().to("cpu", torch.float32)
        out.append(torch.bernoulli(means, generator=generator) if binary else means)
        tick(m)
    return torch.cat(out)


def sample_quality(model, data: ImageData, classifier: LeNet, n: int = 10_000, seed: int = 0,
                   progress: Progress | None = None, binary: bool = False) -> dict:
    """FID of ``n`` samples against the test images, its train-vs-test floor, and, for a
    conditional model, how often the classifier recognises the class a sample was drawn for.

    Returns {"fid", "fid_floor", "n_samples"} plus {"class_accuracy",
    "class_accuracy_per_class"} for conditional models (n // classes samples per class).
    ``binary``: the data are binarised, so samples are binary draws (see ``_samples``).
    """
    _check(model, data, classifier, n)
    labels = None
    if model.is_conditional:
        k = int(model.config.num_classes)
        labels = torch.arange(k).repeat_interleave(n // k)
        n = labels.shape[0]
    n_floor = min(n, data.train_images.shape[0])
    total = 2 * n + n_floor + data.test_images.shape[0]  # sampling, then features of each set
    done = 0

    def tick(m: int) -> None:
        nonlocal done
        done += m
        if progress is not None:
            progress(min(done, total), total)

    was_training = model.training
    model.eval()
    try:
        samples = _samples(model, n, labels, seed, tick, binary=binary)
    finally:
        model.train(was_training)
    sample_feats, preds = classifier_features(classifier, samples, with_predictions=True)
    tick(n)
    test_stats = feature_stats(classifier_features(classifier, data.test_images))
    tick(data.test_images.shape[0])
    floor_stats = feature_stats(classifier_features(classifier, data.train_images[:n_floor]))
    tick(n_floor)
    result: dict = {
        "fid": frechet_distance(*feature_stats(sample_feats), *test_stats),
        "fid_floor": frechet_distance(*floor_stats, *test_stats),
        "n_samples": int(n),
    }
    if labels is not None:
        y = labels.numpy()
        per_class = [float((preds[y == c] == c).mean()) for c in range(int(model.config.num_classes))]
        result["class_accuracy"] = float(np.mean(per_class))
        result["class_accuracy_per_class"] = per_class
    return result
