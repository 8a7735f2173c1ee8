"""The training images nearest to a decoded image, in pixel space and in code space: does
the decoder invent, or recall what it was trained on? (issue #23)

Pixel space compares the decoded image with every training image (float32, in blocks, so
memory stays at one block whatever the split's size); code space compares the code with
the training images' codes, encoded once per model (at most ``MAX_TRAINING_IMAGES``, a
seeded subset beyond). Each comes with a "typical" distance: the median distance from a
sample of training images to their nearest other training image, the scale on which a
neighbour is near or far. Everything here runs in the task runner's threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.latents import encode_images, pick_subset
from explorer.data.dataset import to_float
from explorer.models import Autoencoder

MAX_TRAINING_IMAGES = 60_000
BLOCK = 4096  # training images per block of the pixel-space search (13 MB of float32 for MNIST)
TYPICAL_SAMPLE = 128  # training images whose nearest other training image sets the typical distance


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest training images, nearest first: ``indices`` into the training split,
    ``distances`` (Euclidean: pixel intensities in [0, 1], or code units)."""

    indices: np.ndarray  # (k,) int64
    distances: np.ndarray  # (k,) float32


@dataclass(frozen=True)
class TrainingCodes:
    """The training images' codes under one model: ``indices`` into the training split (a
    seeded subset of at most MAX_TRAINING_IMAGES), ``codes`` (N, D) float32, and the typical
    nearest-other distance in code space and in pixel space."""

    indices: np.ndarray
    codes: np.ndarray
    typical_code: float
    typical_pixel: float


def training_indices(n: int, limit: int = MAX_TRAINING_IMAGES) -> np.ndarray:
    """The training images searched: all of them up to ``limit``, else a seeded subset."""
    return pick_subset(n, limit, seed=0)


def encode_training(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None,
                    limit: int = MAX_TRAINING_IMAGES, typical_pixel: float | None = None) -> TrainingCodes:
    """The mean codes of (at most ``limit``) training images, and the typical distances
    (``typical_pixel``, when known from an earlier call on the same images, is kept)."""
    if model.is_conditional and labels is None:
        raise ValueError("a conditional model needs the images' labels to encode them")
    indices = training_indices(images.shape[0], limit)
    index = torch.from_numpy(indices)
    picked = images if len(indices) == images.shape[0] else images[index]
    picked_labels = None if labels is None else (labels if len(indices) == images.shape[0] else labels[index])
    with torch.no_grad():
        means, _ = encode_images(model, picked, picked_labels if model.is_conditional else None)
    codes = means.numpy().astype(np.float32)
    if typical_pixel is None:
        typical_pixel = typical_pixel_distance(images, indices)
    return TrainingCodes(indices, codes, typical_code_distance(codes), typical_pixel)


def nearest_codes(codes: np.ndarray, code: np.ndarray, k: int, indices: np.ndarray | None = None) -> Neighbours:
    """The ``k`` rows of ``codes`` (N, D) nearest ``code`` (D,); ``indices`` maps rows to
    training images (default: row numbers)."""
    code = np.asarray(code, dtype=np.float32).reshape(1, -1)
    diff = codes - code
    d2 = np.einsum("nd,nd->n", diff, diff)
    rows = _smallest(d2, k)
    ids = rows if indices is None else np.asarray(indices)[rows]
    return Neighbours(ids.astype(np.int64), np.sqrt(d2[rows]).astype(np.float32))


def nearest_images(images: torch.Tensor, image: np.ndarray, k: int, indices: np.ndarray | None = None,
                   block: int = BLOCK) -> Neighbours:
    """The ``k`` training images (uint8 (N, C, H, W), or the rows ``indices`` of them)
    nearest ``image`` (C, H, W) in [0, 1], by Euclidean distance over pixels. Blocks of
    ``block`` images are turned to float32 one at a time; the k found are measured again
    exactly (a difference, not the expanded square, which loses digits near zero)."""
    query = torch.as_tensor(np.asarray(image, dtype=np.float32)).reshape(-1)
    q2 = float(query @ query)
    rows = np.arange(images.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
    best_d2 = np.empty(0, dtype=np.float32)
    best_rows = np.empty(0, dtype=np.int64)
    for start in range(0, len(rows), block):
        cancellation.check()
        chunk = rows[start:start + block]
        x = _float_rows(images, chunk, start, block, indices is None)
        d2 = ((x * x).sum(1) - 2 * (x @ query) + q2).numpy()
        keep = _smallest(d2, k)
        best_d2 = np.concatenate([best_d2, d2[keep]])
        best_rows = np.concatenate([best_rows, chunk[keep]])
        top = _smallest(best_d2, k)
        best_d2, best_rows = best_d2[top], best_rows[top]
    exact = to_float(images[torch.from_numpy(best_rows)]).reshape(len(best_rows), -1) - query
    distances = exact.norm(dim=1).numpy()
    order = np.argsort(distances, kind="stable")
    return Neighbours(best_rows[order], distances[order].astype(np.float32))


def typical_code_distance(codes: np.ndarray, sample: int = TYPICAL_SAMPLE) -> float:
    """The median distance from a sample of codes to their nearest other code."""
    if len(codes) < 2:
        return 0.0
    pick = pick_subset(len(codes), sample, seed=1)
    nearest = []
    for row in pick:
        cancellation.check()
        diff = codes - codes[row]
        d2 = np.einsum("nd,nd->n", diff, diff)
        d2[row] = np.inf
        nearest.append(float(np.sqrt(d2.min())))
    return float(np.median(nearest))


def typical_pixel_distance(images: torch.Tensor, indices: np.ndarray, sample: int = TYPICAL_SAMPLE,
                           block: int = BLOCK) -> float:
    """The median pixel distance from a sample of the training images ``indices`` to their
    nearest other one among them."""
    if len(indices) < 2:
        return 0.0
    sampled = np.asarray(indices)[pick_subset(len(indices), sample, seed=1)]
    queries = to_float(images[torch.from_numpy(sampled)]).reshape(len(sampled), -1)
    q2 = (queries * queries).sum(1)
    best = torch.full((len(sampled),), float("inf"))
    rows = np.asarray(indices, dtype=np.int64)
    for start in range(0, len(rows), block):
        cancellation.check()
        chunk = rows[start:start + block]
        x = to_float(images[torch.from_numpy(chunk)]).reshape(len(chunk), -1)
        d2 = q2[:, None] + (x * x).sum(1)[None, :] - 2 * queries @ x.T
        d2[torch.from_numpy(sampled)[:, None] == torch.from_numpy(chunk)[None, :]] = float("inf")  # not itself
        best = torch.minimum(best, d2.min(1).values)
    return float(best.clamp(min=0).sqrt().median())


def _float_rows(images: torch.Tensor, chunk: np.ndarray, start: int, block: int, contiguous: bool) -> torch.Tensor:
    x = images[start:start + block] if contiguous else images[torch.from_numpy(chunk)]
    return to_float(x).reshape(len(chunk), -1)


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest ``values``, smallest first."""
    k = min(k, len(values))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(values, k - 1)[:k] if k < len(values) else np.arange(len(values))
    return part[np.argsort(values[part], kind="stable")]
