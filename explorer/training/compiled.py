"""The model's training forward pass through ``torch.compile``, with a way back.

Compiling needs a working C/C++ compiler (CPU) or Triton (CUDA) and can fail on an unusual
setup; a failed compile must cost the user speed, never the run. The first call is the
compile, so only errors raised there fall back to the eager model; later errors (out of
memory, for example) propagate as they would without compiling.
"""

from __future__ import annotations

from typing import Any

import torch

from explorer.models.autoencoder import Autoencoder
from explorer.models.base import ModelOutput


class CompiledForward:
    def __init__(self, model: Autoencoder) -> None:
        self.model = model
        # Only the loss terms are compiled; beta weighs them outside, so a new beta is not
        # a new graph. Shapes stay fixed (the engine drops a short last batch).
        self._fn: Any = torch.compile(model.loss_parts, dynamic=False)
        self._first = True
        self.failure: str | None = None

    @property
    def compiled(self) -> bool:
        return self._fn is not self.model

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> ModelOutput:
        if not self._first:
            return self.model.combine(*self._fn(x, y))
        try:
            out = self.model.combine(*self._fn(x, y))
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure: train uncompiled instead
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            self.failure = f"{type(exc).__name__}: {first_line}"
            self._fn = self.model
            out = self.model(x, y)
        self._first = False
        return out
