"""Anomaly scores: how badly a model reconstructs an image it was not trained to expect.

A model trained on "normal" classes only reconstructs those well; the per-image
reconstruction error (plus the KL term for the VAE family, giving the negative ELBO)
then ranks the other classes as anomalies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.metrics import roc_auc
from explorer.data.dataset import ImageData, to_float
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import device_of
from explorer.models.losses import gaussian_kl, reconstruction_loss


@torch.no_grad()
def anomaly_scores(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None,
                   batch_size: int = 1000) -> np.ndarray:
    """Per-image score: the reconstruction loss of the mean code, plus the KL for the VAE
    family (the negative ELBO, in nats). Higher means more anomalous."""
    device = device_of(model)
    scores = []
    for start in range(0, images.shape[0], batch_size):
        cancellation.check()
        x = to_float(images[start:start + batch_size].to(device))
        y = labels[start:start + batch_size].to(device) if model.is_conditional and labels is not None else None
        dist = model.encode(x, y)
        score = reconstruction_loss(model.decode_logits(dist.mean, y), x, model.config.recon_loss).float()
        if dist.logvar is not None:
            score = score + gaussian_kl(dist.mean.float(), dist.logvar.float())
        scores.append(score.cpu())
    return torch.cat(scores).numpy().astype(np.float64)


@torch.no_grad()
def error_maps(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions and per-pixel squared errors (summed over channels): (N, C, H, W), (N, H, W)."""
    x = to_float(images)
    y = labels if model.is_conditional else None
    recon = model.reconstruct(x, y)
    return recon.numpy(), ((recon - x) ** 2).sum(1).numpy()


@dataclass(frozen=True)
class AnomalyReport:
    scores: np.ndarray  # per test image
    labels: np.ndarray
    normal_classes: tuple[int, ...]
    auc: float
    auc_per_class: dict[int, float]  # each held-out class against the normal ones

    @property
    def is_anomaly(self) -> np.ndarray:
        return ~np.isin(self.labels, self.normal_classes)


def anomaly_report(model: Autoencoder, data: ImageData, normal_classes: tuple[int, ...]) -> AnomalyReport:
    """Score the whole test split; normal classes against the rest."""
    if data.test_labels is None:
        raise ValueError(f"{data.name} has no classes, so there is nothing to call normal")
    labels = data.test_labels.numpy()
    normal = tuple(sorted(set(normal_classes)))
    others = sorted(set(labels.tolist()) - set(normal))
    if not normal or not others:
        raise ValueError("anomaly detection needs test images of the normal classes and of at least one other")
    scores = anomaly_scores(model, data.test_images, data.test_labels)
    is_anomaly = ~np.isin(labels, normal)
    per_class = {}
    for k in others:
        keep = np.isin(labels, normal) | (labels == k)
        per_class[int(k)] = roc_auc(scores[keep], is_anomaly[keep])
    return AnomalyReport(scores, labels, normal, roc_auc(scores, is_anomaly), per_class)
