"""The linear baseline: PCA with k components against an autoencoder with a k-D code.

An autoencoder with linear layers and squared error learns PCA's subspace; a nonlinear one
should beat it at the same k. Errors are the summed squared error per image, the one
measure that means the same for BCE- and MSE-trained models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer import cancellation
from explorer.data.dataset import to_float
from explorer.models.autoencoder import Autoencoder


@dataclass(frozen=True)
class PCA:
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (K, D) rows orthonormal, by decreasing variance

    def reconstruct(self, x: np.ndarray, k: int) -> np.ndarray:
        c = self.components[:k]
        return (x - self.mean) @ c.T @ c + self.mean


def fit_pca(images: torch.Tensor, max_components: int) -> PCA:
    """PCA of uint8 images from the covariance (D x D), which is cheap for image sizes
    like MNIST's 784 whatever the number of images."""
    x = to_float(images).reshape(images.shape[0], -1)
    mean = x.double().mean(0)
    centred = x - mean.float()
    # The big product in float32 (fast), the eigendecomposition in float64 (accurate).
    cov = (centred.T @ centred).double() / max(1, x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)
    order = torch.argsort(values, descending=True)[:max_components]
    return PCA(mean.numpy(), vectors[:, order].T.contiguous().numpy())


def pca_errors(pca: PCA, images: torch.Tensor, ks: list[int]) -> dict[int, float]:
    """Mean summed squared error per image of PCA with each k."""
    x = to_float(images).reshape(images.shape[0], -1).double().numpy()
    return {k: float(((pca.reconstruct(x, k) - x) ** 2).sum(1).mean()) for k in ks}


@torch.no_grad()
def model_error(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None,
                batch_size: int = 1000) -> float:
    """Mean summed squared error per image of the model's deterministic reconstruction."""
    total, n = 0.0, images.shape[0]
    for start in range(0, n, batch_size):
        cancellation.check()
        x = to_float(images[start:start + batch_size])
        y = labels[start:start + batch_size] if model.is_conditional and labels is not None else None
        total += float(((model.reconstruct(x, y) - x) ** 2).sum())
    return total / n


def compression_ratio(image_shape: tuple[int, int, int], latent_dim: int) -> float:
    """How many numbers an image takes against its code (both as floats)."""
    c, h, w = image_shape
    return c * h * w / latent_dim
