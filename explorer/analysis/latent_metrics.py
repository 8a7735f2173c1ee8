"""How useful a model's codes are: the latent-space numbers papers report.

* Active units (Burda et al. 2016): dimensions whose posterior mean varies across the
  test images by more than 0.01 (``latents.ACTIVE_VARIANCE_VAE``); the rest ignore the input.
* k-NN and linear-probe accuracy: how well the test images' mean codes predict their
  class from 100, 1,000 or all labelled training codes. The labelled subsets are seeded and
  balanced across classes, as in the semi-supervised literature, so every model is scored on
  the same labels.
* Reconstruction error and PSNR of the mean-code reconstructions.

Everything here takes numpy codes or runs the model in batches, calling
``cancellation.check()`` so a window can drop a stale evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.latents import ACTIVE_VARIANCE_VAE
from explorer.analysis.metrics import psnr
from explorer.data.dataset import to_float
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import device_of

KNN_K = 5
LABEL_BUDGETS = (100, 1000, None)  # None: every training label


def active_units(mean_codes: np.ndarray, threshold: float = ACTIVE_VARIANCE_VAE) -> int:
    """Dimensions whose mean code varies (over the images) by more than ``threshold``."""
    return int((np.asarray(mean_codes, dtype=np.float64).var(axis=0) > threshold).sum())


def labelled_subset(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` labelled examples, an equal share from each class (seeded), or all
    of them for ``None``. A class too small for its share gives what it has; the rest of
    the budget is filled at random from the other images."""
    labels = np.asarray(labels)
    if n is None or n >= labels.size:
        return np.arange(labels.size)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    share = n // classes.size
    picked = [rng.permutation(np.flatnonzero(labels == c))[:share] for c in classes]
    chosen = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    if chosen.size < n:
        rest = np.setdiff1d(np.arange(labels.size), chosen)
        chosen = np.concatenate([chosen, rng.permutation(rest)[: n - chosen.size]])
    return np.sort(chosen)


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                 test_labels: np.ndarray, k: int = KNN_K) -> float:
    """Accuracy of a majority vote among the ``k`` nearest training codes (Euclidean), ties
    going to the class of the nearer neighbours."""
    ref = torch.from_numpy(np.ascontiguousarray(train_codes, dtype=np.float32))
    ref_labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    n_classes = int(max(ref_labels.max(), int(np.max(test_labels)))) + 1
    k = min(k, ref.shape[0])
    # Votes weigh 1 plus a tiny bonus for nearness: the count decides, the nearest breaks ties.
    weights = 1.0 + 1e-3 * (1.0 - torch.arange(k, dtype=torch.float32) / k)
    correct = 0
    ref_sq = ref.square().sum(1)
    for start in range(0, test_codes.shape[0], 1000):
        cancellation.check()
        q = torch.from_numpy(np.ascontiguousarray(test_codes[start:start + 1000], dtype=np.float32))
        dist = ref_sq[None, :] - 2 * q @ ref.T  # |q|^2 is the same for every reference
        nearest = dist.topk(k, dim=1, largest=False).indices  # sorted nearest first
        votes = torch.zeros(q.shape[0], n_classes).scatter_add_(1, ref_labels[nearest], weights.expand(q.shape[0], k))
        predicted = votes.argmax(1).numpy()
        correct += int((predicted == np.asarray(test_labels[start:start + 1000])).sum())
    return correct / test_codes.shape[0]


@dataclass(frozen=True)
class LinearProbe:
    """A fitted multinomial logistic regression on standardised codes: ``scores(codes)`` are
    its logits. ``weight`` acts on standardised codes; ``code_weight`` on raw ones."""

    weight: np.ndarray  # float64 (D, K)
    bias: np.ndarray  # float64 (K,)
    mean: np.ndarray  # float64 (D,) the standardisation
    std: np.ndarray  # float64 (D,)

    @property
    def code_weight(self) -> np.ndarray:
        """(D, K): the weights on raw codes (the standardisation folded in)."""
        return self.weight / self.std[:, None]

    def scores(self, codes: np.ndarray) -> np.ndarray:
        return ((np.asarray(codes, dtype=np.float64) - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, codes: np.ndarray) -> np.ndarray:
        return self.scores(codes).argmax(1)


def fit_linear_probe(train_codes: np.ndarray, train_labels: np.ndarray, n_classes: int | None = None,
                     l2: float = 1e-4, iterations: int = 200, balanced: bool = False) -> LinearProbe:
    """A multinomial logistic regression on standardised codes, fitted with L-BFGS to
    convergence (deterministic: full batch, no random start). ``balanced`` weighs each
    class's examples by the inverse of its count, so a rare class is not ignored."""
    x = torch.from_numpy(np.asarray(train_codes, dtype=np.float64))
    y = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-8)
    x = (x - mean) / std
    n_classes = n_classes if n_classes is not None else int(y.max()) + 1
    class_weight = None
    if balanced:
        counts = torch.bincount(y, minlength=n_classes).to(torch.float64)
        class_weight = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)), 0.0)
    weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1, max_iter=iterations, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        cancellation.check()
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y, weight=class_weight) \
            + l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return LinearProbe(weight.detach().numpy().copy(), bias.detach().numpy().copy(), mean.numpy().copy(),
                       std.numpy().copy())


def linear_probe_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                          test_labels: np.ndarray, l2: float = 1e-4, iterations: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression on standardised codes
    (:func:`fit_linear_probe`)."""
    n_classes = int(max(int(np.max(train_labels)), int(np.max(test_labels)))) + 1
    probe = fit_linear_probe(train_codes, train_labels, n_classes, l2, iterations)
    return float((probe.predict(test_codes) == np.asarray(test_labels)).mean())


def label_efficiency(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                     test_labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """k-NN and linear-probe accuracy with 100, 1,000 and all training labels, keyed
    ``knn_acc_100`` ... ``probe_acc_all``."""
    out: dict[str, float] = {}
    for budget in LABEL_BUDGETS:
        if budget is not None and budget >= len(train_labels):
            continue
        rows = labelled_subset(train_labels, budget, seed)
        tag = "all" if budget is None else str(budget)
        out[f"knn_acc_{tag}"] = knn_accuracy(train_codes[rows], train_labels[rows], test_codes, test_labels)
        out[f"probe_acc_{tag}"] = linear_probe_accuracy(train_codes[rows], train_labels[rows], test_codes,
                                                        test_labels)
    return out


@torch.no_grad()
def reconstruction_quality(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None,
                           batch_size: int = 1000) -> dict[str, float]:
    """Mean squared error per pixel and mean PSNR (dB) of the mean-code reconstructions."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    squared, values = 0.0, []
    try:
        for start in range(0, images.shape[0], batch_size):
            cancellation.check()
            x = to_float(images[start:start + batch_size].to(device))
            y = labels[start:start + batch_size].to(device) if model.is_conditional and labels is not None else None
            recon = model.reconstruct(x, y)
            squared += float((recon - x).double().square().sum())
            values.append(psnr(x.cpu().numpy(), recon.cpu().numpy()))
    finally:
        model.train(was_training)
    per_image = np.concatenate(values)
    finite = per_image[np.isfinite(per_image)]
    return {"recon_mse": squared / images.numel(),
            "psnr": float(finite.mean()) if finite.size else float("inf")}
