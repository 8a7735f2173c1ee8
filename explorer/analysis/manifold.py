"""The decoded lattice over a region of the latent plane (the seeds' manifold figure).

:func:`manifold_image` is the one way to build that picture: the latent plane draws it
under its scatter for whatever region is in view, and scripts save it, so both tile the
same codes in the same order.
"""

from __future__ import annotations

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.grids import tile
from explorer.analysis.projection import PlaneAxes
from explorer.models.autoencoder import Autoencoder
from explorer.models.base import device_of


def lattice(x_range: tuple[float, float], y_range: tuple[float, float], n: int) -> np.ndarray:
    """(n*n, 2) plane points at the centres of an n x n lattice, in reading order: the top
    row (largest y) first, each row from left to right."""
    (x0, x1), (y0, y1) = x_range, y_range
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@torch.no_grad()
def decode_codes(model: Autoencoder, codes: np.ndarray, label: int | np.ndarray | None = None,
                 batch_size: int = 4096) -> np.ndarray:
    """(N, D) codes to (N, C, H, W) float32 images in [0, 1], in batches (one for any grid
    on screen). ``label`` is the class a conditional model draws, one for all or one per
    code (ignored by other models; None means class 0)."""
    device = device_of(model)
    z = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32)).to(device)
    y = None
    if model.is_conditional:
        labels = np.zeros(z.shape[0], dtype=np.int64) if label is None else np.asarray(label, dtype=np.int64)
        y = torch.from_numpy(np.broadcast_to(labels, (z.shape[0],)).copy()).to(device)
    out = []
    for i in range(0, z.shape[0], batch_size):
        cancellation.check()
        out.append(model.decode(z[i:i + batch_size], None if y is None else y[i:i + batch_size]).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, *model.config.image_shape), dtype=np.float32)


def manifold_codes(axes: PlaneAxes, reference: np.ndarray, x_range: tuple[float, float],
                   y_range: tuple[float, float], n: int) -> np.ndarray:
    """(n*n, D) full codes of the n x n lattice over the region, top row first: the plane
    points lifted off the plane with ``reference``'s values in the other dimensions."""
    return axes.lift(lattice(x_range, y_range, n), reference)


def manifold_image(model: Autoencoder, axes: PlaneAxes, reference: np.ndarray, x_range: tuple[float, float],
                   y_range: tuple[float, float], n: int, label: int | None = None) -> np.ndarray:
    """The n x n lattice decoded and tiled into one (n*H, n*W[, C]) picture, top row =
    largest y (flip it for a y-up view). ``label`` is a conditional model's class."""
    return tile(decode_codes(model, manifold_codes(axes, reference, x_range, y_range, n), label), n, n)


def traversal_codes(code: np.ndarray, dims: list[int], ranges: list[tuple[float, float]], steps: int) -> np.ndarray:
    """(len(dims) * steps, D) codes: for each dimension in ``dims`` a row that sweeps it
    across its range while every other dimension keeps ``code``'s value."""
    rows = []
    for d, (lo, hi) in zip(dims, ranges, strict=True):
        row = np.repeat(np.asarray(code, dtype=np.float32)[None], steps, axis=0)
        row[:, d] = np.linspace(lo, hi, steps, dtype=np.float32)
        rows.append(row)
    return np.concatenate(rows) if rows else np.zeros((0, len(code)), dtype=np.float32)
