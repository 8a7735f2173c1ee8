"""What a model's code space looks like on a dataset: codes, spread and activity per dimension.

The latent views draw from these statistics (scatter, slider ranges, dimension order), and
the CLI's ``encode`` writes the same codes, so both agree on what a code is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer import cancellation
from explorer.config import ModelConfig
from explorer.data.dataset import to_float
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import device_of
from explorer.models.losses import kl_per_dimension

# Burda et al. (2016): a VAE unit is active when its mean code varies across the data by
# more than this (the prior has unit variance, so a unit that ignores its input has ~0).
ACTIVE_VARIANCE_VAE = 0.01
# A plain AE has no prior scale: a unit is inactive when it varies this much less than the
# busiest one.
ACTIVE_VARIANCE_RELATIVE = 1e-3


@dataclass(frozen=True)
class LatentStats:
    """Codes of a set of images and per-dimension summaries (numpy, safe to hand across threads).

    ``order`` lists dimensions from most to least informative: by KL for the VAE family,
    by variance of the mean code otherwise.
    """

    codes: np.ndarray  # float32 (N, D) mean codes
    labels: np.ndarray | None  # int64 (N,)
    indices: np.ndarray  # int64 (N,) positions in the split the codes came from
    mean: np.ndarray  # float32 (D,)
    std: np.ndarray  # float32 (D,)
    kl: np.ndarray | None  # float32 (D,) mean KL per dimension, VAE family only
    order: np.ndarray  # int64 (D,)
    active: np.ndarray  # bool (D,)
    # float32 (N, D): each image's posterior log-variance (VAE family), kept so the plane can
    # outline any test image's posterior without encoding it again; None for a plain autoencoder
    logvar: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def slider_range(self, d: int, spread: float = 3.0) -> tuple[float, float]:
        """About +-``spread`` standard deviations of the data's codes around their mean."""
        half = spread * max(float(self.std[d]), 1e-3)
        return float(self.mean[d]) - half, float(self.mean[d]) + half


@torch.no_grad()
def encode_images(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None,
                  batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean codes (and log-variances for the VAE family) of uint8 images, in batches."""
    device = device_of(model)
    means: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    for start in range(0, images.shape[0], batch_size):
        cancellation.check()
        x = to_float(images[start:start + batch_size].to(device))
        y = labels[start:start + batch_size] if model.is_conditional and labels is not None else None
        dist = model.encode(x, y)
        means.append(dist.mean.float().cpu())
        if dist.logvar is not None:
            logvars.append(dist.logvar.float().cpu())
    return torch.cat(means), (torch.cat(logvars) if logvars else None)


def pick_subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` items, the same for the same seed."""
    if limit is None or n <= limit:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False)).astype(np.int64)


def latent_stats(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None,
                 limit: int | None = 10_000, seed: int = 0) -> LatentStats:
    """Encode (a seeded subset of at most ``limit``) images and summarise the codes."""
    if model.is_conditional and labels is None:
        raise ValueError("a conditional model needs the images' labels to encode them")
    indices = pick_subset(images.shape[0], limit, seed)
    idx = torch.from_numpy(indices)
    sub_labels = labels[idx] if labels is not None else None
    mean_codes, logvars = encode_images(model, images[idx], sub_labels)
    codes = mean_codes.numpy().astype(np.float32)
    variance = codes.var(axis=0)
    kl = None
    if logvars is not None:
        kl = kl_per_dimension(mean_codes, logvars).numpy().astype(np.float32)
        active = variance > ACTIVE_VARIANCE_VAE
        order = np.argsort(-kl, kind="stable")
    else:
        active = variance > ACTIVE_VARIANCE_RELATIVE * max(float(variance.max()), 1e-12)
        order = np.argsort(-variance, kind="stable")
    return LatentStats(codes=codes, labels=None if sub_labels is None else sub_labels.numpy().astype(np.int64),
                       indices=indices, mean=codes.mean(axis=0).astype(np.float32),
                       std=np.sqrt(variance).astype(np.float32), kl=kl, order=order.astype(np.int64),
                       active=active, logvar=None if logvars is None else logvars.numpy().astype(np.float32))


def sample_codes(config: ModelConfig, stats: LatentStats | None, n: int, seed: int) -> np.ndarray:
    """``n`` seeded codes to decode: from the prior N(0, I) for the VAE family, from a
    Gaussian fitted to the data's codes for plain autoencoders (which need ``stats``)."""
    if config.variational:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(n, config.latent_dim, generator=generator).numpy()
    if stats is None:
        raise ValueError("a plain autoencoder is sampled around its data's codes: encode them first")
    return gaussian_fit_samples(stats, n, seed)


def gaussian_fit_samples(stats: LatentStats, n: int, seed: int) -> np.ndarray:
    """Codes drawn from a Gaussian fitted to the data's codes: how a plain autoencoder,
    which has no prior, can still be sampled."""
    rng = np.random.default_rng(seed)
    if stats.codes.shape[0] < 2:  # one code has no spread to fit
        return np.repeat(stats.mean[None].astype(np.float32), n, axis=0)
    cov = np.cov(stats.codes, rowvar=False).reshape(stats.dim, stats.dim)
    if not np.isfinite(cov).all():
        cov = np.diag(np.square(stats.std.astype(np.float64)))
    return rng.multivariate_normal(stats.mean.astype(np.float64), cov, size=n,
                                   check_valid="ignore").astype(np.float32)
