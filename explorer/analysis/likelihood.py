"""How likely a VAE finds each test image: log p(x), estimated or computed exactly.

The importance-weighted estimate (IWAE, Burda et al. 2015) draws K codes from the
encoder's posterior q(z|x) and averages p(x|z) p(z) / q(z|x) in probability space:

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K

Its expectation rises towards log p(x) as K grows (K = 1 is the ELBO), so the negative
log-likelihood it reports falls with K and stays above the true value on average. Codes
for several images and many samples go through the decoder in one batch, sized so that
one batch holds a bounded number of logits; the samples of one image may span batches,
so K up to 5000 costs no more memory than K = 100.

For models with one or two latent dimensions :func:`grid_log_likelihood` integrates
p(x|z) p(z) on a fine grid instead: an exact answer (up to the grid) that the estimate is
checked against in the tests.

The decoder's Bernoulli likelihood is a likelihood only of binary images: on grey levels
the "BCE" is a cross-entropy, not log p(x), and :func:`likelihood_notes` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from explorer import cancellation
from explorer.data.dataset import to_float
from explorer.display import with_article
from explorer.errors import UserError
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import device_of

MAX_K = 5000
# Logits held at once (samples x pixels): 8M floats, 32 MB, and about 4x that in temporaries.
LOGIT_BUDGET = 2**23
_LOG_2PI = math.log(2 * math.pi)

Progress = Callable[[int, int], None]


def check_likelihood_model(model: Autoencoder) -> None:
    """Refuse, in one line, a model whose likelihood has no meaning here."""
    cfg = model.config
    if not cfg.variational:
        raise UserError(f"{with_article(cfg.preset or 'plain')} autoencoder has no prior or posterior, so it gives no "
                        "likelihood; importance-weighted log p(x) needs a VAE-family model "
                        "(vae, beta-vae, conv-vae, cvae, conv-cvae)")
    if cfg.recon_loss != "bce":
        raise UserError("this model was trained with the squared-error reconstruction loss, which is not a "
                        "normalised likelihood of the pixels; log p(x) needs a model trained with BCE")


def likelihood_notes(images: torch.Tensor) -> list[str]:
    """Warnings about what the numbers mean for these uint8 (N, C, H, W) images (one
    channel: grey levels; more: colour levels)."""
    sample = images[: min(images.shape[0], 2000)]
    if bool(((sample != 0) & (sample != 255)).any()):
        levels = "colour levels" if images.dim() == 4 and images.shape[1] > 1 else "grey levels"
        return [f"the test images are {levels}, not binary: the Bernoulli decoder's BCE on {levels} is a "
                "cross-entropy, not a likelihood, so these nats are not comparable with published "
                "log-likelihoods (train with --binarize dynamic for those)"]
    return []


def _bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum over pixels (the last axis) of log Bernoulli(x | sigmoid(logits)) = x*l - softplus(l).

    softplus(l) = max(l, 0) + log(1 + exp(-|l|)), built from vectorised in-place kernels:
    the CPU's log1p and softplus are not vectorised, and this is half of the estimate's time.
    """
    soft = logits.abs().neg_().exp_().add_(1).log_()
    soft += logits.clamp(min=0)
    return (logits * x).sum(-1) - soft.sum(-1)


@torch.no_grad()
def iw_log_likelihood(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None, k: int,
                      seed: int = 0, progress: Progress | None = None,
                      logit_budget: int = LOGIT_BUDGET) -> np.ndarray:
    """log p(x) in nats for each uint8 image, estimated with ``k`` posterior samples.

    Runs on the model's device in float32 (the weights are summed per image before the
    log-sum-exp, which runs in float64). Each image's posterior samples come from its own
    seeded generator, so the answer does not depend on batching. ``progress(done, total)``
    counts images.
    """
    check_likelihood_model(model)
    if not 1 <= k <= MAX_K:
        raise UserError(f"the number of importance samples must be from 1 to {MAX_K:,}, not {k:,}")
    if model.is_conditional and labels is None:
        raise UserError("a conditional model needs the test images' labels for its likelihood")
    was_training = model.training
    model.eval()
    device = device_of(model)
    n = images.shape[0]
    pixels = int(np.prod(images.shape[1:]))
    per_chunk = max(1, logit_budget // pixels)  # (image, sample) pairs per decoder batch
    images_per_batch = max(1, per_chunk // k)
    samples_per_chunk = min(k, per_chunk)
    out = np.empty(n, dtype=np.float64)
    try:
        for start in range(0, n, images_per_batch):
            x = to_float(images[start:start + images_per_batch].to(device)).flatten(1)
            b = x.shape[0]
            y = labels[start:start + b].to(device) if model.is_conditional and labels is not None else None
            dist = model.encode(x.view(b, *images.shape[1:]), y)
            mean, logvar = dist.mean.float(), dist.logvar.float()  # type: ignore[union-attr]
            std = torch.exp(0.5 * logvar)
            log_det = logvar.sum(1)  # (b,)
            weights = torch.empty(k, b, dtype=torch.float64)
            noise = _posterior_noise(seed, start, b, k, mean.shape[1]).to(device)  # (k, b, d)
            for s0 in range(0, k, samples_per_chunk):
                cancellation.check()
                s = min(samples_per_chunk, k - s0)
                eps = noise[s0:s0 + s]
                z = mean + eps * std  # (s, b, d)
                log_q = -0.5 * (eps.square().sum(2) + log_det + mean.shape[1] * _LOG_2PI)
                log_prior = -0.5 * (z.square().sum(2) + mean.shape[1] * _LOG_2PI)
                y_rep = y.repeat(s) if y is not None else None
                logits = model.decode_logits(z.reshape(s * b, -1), y_rep).float().reshape(s, b, -1)
                log_px = _bernoulli_log_prob(logits, x)
                weights[s0:s0 + s] = (log_px + log_prior - log_q).double().cpu()
            out[start:start + b] = (torch.logsumexp(weights, 0) - math.log(k)).numpy()
            if progress is not None:
                progress(start + b, n)
    finally:
        model.train(was_training)
    return out


def _posterior_noise(seed: int, first: int, count: int, k: int, dim: int) -> torch.Tensor:
    """Standard normal draws (k, count, dim) for images ``first`` to ``first + count``, each
    image's from its own generator: an image's estimate is the same however the images are
    batched, and the same whichever other images are evaluated with it."""
    draws = [torch.randn(k, dim, generator=torch.Generator().manual_seed(seed * 1_000_003 + first + i))
             for i in range(count)]
    return torch.stack(draws, dim=1)


@torch.no_grad()
def grid_log_likelihood(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None,
                        points: int = 301, extent: float = 6.0) -> np.ndarray:
    """log p(x) = log integral p(x|z) p(z) dz by the midpoint rule on a grid over
    [-extent, extent] per dimension: exact up to the grid for 1- and 2-D latents, where
    the prior's mass beyond 6 standard deviations is below 1e-8."""
    d = model.config.latent_dim
    if d > 2:
        raise UserError("the grid integral of log p(x) is only feasible for 1- or 2-D latent spaces")
    was_training = model.training
    model.eval()
    device = device_of(model)
    axis = (torch.arange(points, dtype=torch.float64) + 0.5) / points * 2 * extent - extent
    cell = math.log(2 * extent / points) * d
    grid = torch.cartesian_prod(*([axis] * d)).reshape(-1, d)
    log_prior = -0.5 * (grid.square().sum(1) + d * _LOG_2PI)
    x = to_float(images).flatten(1).double()
    out = np.empty(images.shape[0], dtype=np.float64)
    groups = [(None, torch.arange(images.shape[0]))]
    if model.is_conditional:
        if labels is None:
            raise UserError("a conditional model needs the images' labels for its likelihood")
        groups = [(int(c), torch.nonzero(labels == c).flatten()) for c in torch.unique(labels)]
    try:
        for label, rows in groups:
            # The decoder's logits over the grid do not depend on x: decode them once, then
            # sum_pixels [x*l - softplus(l)] for every image is one product and one sum.
            soft = torch.zeros(grid.shape[0], dtype=torch.float64)
            cross = torch.zeros(grid.shape[0], rows.numel(), dtype=torch.float64)
            for g0 in range(0, grid.shape[0], 4096):
                cancellation.check()
                z = grid[g0:g0 + 4096].float().to(device)
                y = torch.full((z.shape[0],), label, device=device) if label is not None else None
                logits = model.decode_logits(z, y).double().cpu().reshape(z.shape[0], -1)
                soft[g0:g0 + 4096] = torch.nn.functional.softplus(logits).sum(1)
                cross[g0:g0 + 4096] = logits @ x[rows].T
            log_joint = cross - soft[:, None] + log_prior[:, None]
            out[rows.numpy()] = (torch.logsumexp(log_joint, 0) + cell).numpy()
    finally:
        model.train(was_training)
    return out
