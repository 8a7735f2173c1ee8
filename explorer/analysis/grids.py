"""Image grids for files and views, built with torchvision's ``make_grid``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from explorer.atomic import atomic_write


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] to one (C, H', W') image, ``nrow`` images per row."""
    from torchvision.utils import make_grid

    n = images.shape[0]
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    return make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)


def pairs_grid(originals: torch.Tensor, reconstructions: torch.Tensor, per_row: int = 16) -> torch.Tensor:
    """Originals over their reconstructions (the seeds' two-row figure), wrapping every
    ``per_row`` images into another pair of rows."""
    n = originals.shape[0]
    per_row = max(1, min(per_row, n))
    chunks: list[torch.Tensor] = []
    for start in range(0, n, per_row):
        for source in (originals, reconstructions):
            chunk = source[start:start + per_row]
            if chunk.shape[0] < per_row:
                blank = torch.ones(per_row - chunk.shape[0], *chunk.shape[1:], dtype=chunk.dtype)
                chunk = torch.cat([chunk.cpu(), blank])
            chunks.append(chunk.cpu())
    return image_grid(torch.cat(chunks), nrow=per_row)


def to_uint8_hwc(grid: torch.Tensor) -> np.ndarray:
    arr = (grid.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def save_png(grid: torch.Tensor, path: str | Path) -> None:
    """The grid as a PNG, written atomically (a failed write leaves an earlier file as it was)."""
    image = Image.fromarray(to_uint8_hwc(grid))
    atomic_write(path, lambda fh: image.save(fh, format="PNG"))


def tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, C, H, W) to one (rows*H, cols*W[, C]) array, no padding: a manifold
    lattice should read as one continuous picture. Row 0 is the first row of images."""
    n, c, h, w = images.shape
    if n != rows * cols:
        raise ValueError(f"{n} images do not fill {rows}x{cols}")
    out = images.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return np.ascontiguousarray(out[:, :, 0] if c == 1 else out)
