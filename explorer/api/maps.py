"""``explorer.fit_map``: a map of a model's latent space onto a plane, with its inverse."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.analysis.maps import LatentMap
from explorer.analysis.maps import fit_map as fit_codes


def fit_map(model: Any, images: Any, method: str = "pca", *, labels: Any = None, seed: int = 0) -> LatentMap:
    """Encode ``images`` (an array, a tensor or a torchvision-style dataset) with ``model``
    (the mean code) and fit a map of the codes: ``"pca"`` or ``"umap"`` (a UMAP-style
    neighbour map, no umap-learn or numba needed). The map's ``transform(codes) -> (N, 2)`` places codes,
    ``inverse(points) -> (N, latent)`` goes back (NumPy or torch in, the same out), and
    ``inverse_with_confidence`` says how far a point is from the data (extrapolated above
    about 3); ``fit_seconds`` is what the fit took."""
    import torch

    from explorer.analysis.latents import encode_images
    from explorer.data.arrays import image_data_for_viewing

    data = image_data_for_viewing(images, labels)
    with torch.no_grad():
        means, _ = encode_images(model, data.test_images, data.test_labels if model.config.conditional else None)
    return fit_codes(means.numpy().astype(np.float32), method, seed=seed)
