"""Binarised images, so that a Bernoulli (BCE) reconstruction loss is a true likelihood.

On grey levels BCE is only a loss: its value is not the log-likelihood of any distribution
over the images, so it cannot be compared with published numbers. Binarising makes every
pixel 0 or 255, drawn Bernoulli(intensity / 255).

Two modes (``DataConfig.binarize``):

- ``dynamic``: the train images stay grey and the engine redraws each batch (fresh pixels
  every time, the common choice for MNIST likelihood results).
- ``static``: the train split is binarised once, with :data:`TRAIN_SEED`.

In both modes the test split is binarised once with :data:`TEST_SEED`, so every model is
evaluated on the very same binary test set, whichever mode it trained with.

Note that the published "statically binarised MNIST" (Larochelle & Murray 2011) is a
separate download with its own fixed draw; ``static`` here is a seeded, fixed binarisation
of the bundled images, reproducible but not that file.
"""

from __future__ import annotations

import torch

# Fixed, named seeds: the draws must be the same on every machine and for every run, so
# that numbers from two models (or two people) are measured on the same images.
TEST_SEED = 20110414
TRAIN_SEED = 20110415

# How many pixels are drawn at once: bounds the float scratch (two float32 tensors of this
# size, about 128 MB) whatever the dataset's size. It is fixed, not tuned to the machine,
# because the draw sequence depends on it.
_CHUNK_PIXELS = 1 << 24


def binarize(images: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images to uint8 in {0, 255}, each pixel 255 with probability
    intensity / 255.

    The draw uses a CPU generator seeded with ``seed``, so the result is the same on every
    machine and device; images are processed a chunk at a time so memory stays bounded.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"binarize takes uint8 images, not {images.dtype}")
    source = images.cpu()
    out = torch.empty_like(source)
    n = source.shape[0]
    per_image = max(1, source[0].numel()) if n else 1
    step = max(1, _CHUNK_PIXELS // per_image)
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n, step):
        chunk = source[start:start + step]
        # u * 255 < x holds with probability x / 255 for u uniform in [0, 1).
        draw = torch.rand(chunk.shape, generator=generator).mul_(255.0)
        out[start:start + step] = torch.lt(draw, chunk.to(torch.float32)).to(torch.uint8).mul_(255)
    return out


def is_binary(images: torch.Tensor) -> bool:
    """Whether every value is 0 or 255 (so BCE on them is a likelihood)."""
    return bool(((images == 0) | (images == 255)).all())
