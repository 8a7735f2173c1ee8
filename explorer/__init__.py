"""Latent Explorer: train autoencoders, then see and touch what they learned.

The public API, for scripts and notebooks::

    import explorer
    model = explorer.train("vae", epochs=5, latent_dim=2)   # the engine the CLI uses
    explorer.save(model, "vae.safetensors")
    viewer = explorer.view(model)                            # the window on it
    viewer = explorer.view(encoder=enc, decoder=dec, images=x)  # your own modules

``import explorer`` stays light: torch loads on the first call, Qt only in ``view``.
Everything in this package except :mod:`explorer.gui` (and ``view``) is plain PyTorch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Viewer", "direction", "fit_map", "load", "run", "save", "train", "view"]


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (PEP 562)."""
    if name in __all__:
        from explorer import api

        return getattr(api, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
