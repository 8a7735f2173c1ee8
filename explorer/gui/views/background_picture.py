"""One view's picture computed off the GUI thread: the one way a view decodes or encodes
a batch through the model.

A decode that grows with the model (a 64x64 colour conv-VAE's 16-image reconstruction grid:
32 ms idle, several times that on a busy machine) held the GUI thread on every snapshot
while a run trained. A view now asks for its picture with :meth:`BackgroundPicture.request`
and paints it in its ``show`` callback, on the GUI thread, once the task lands:

- the work runs in the session's task runner under the view's own key, so at most one task
  per view is in flight and a newer request replaces the waiting one (the newest wins);
- it gets a model copy built in the task (``latent_plane.BuiltOnce``) and reused while the
  weights stay the same: dropped when ``new_weights`` fires or another model object is asked for;
- the weights are copied in the task too, not on the GUI thread: copying a 64x64 colour
  conv-VAE's 34 MB of weights took 6-14 ms there, once per view and snapshot. The GUI thread
  changes weights only in place (a snapshot's ``load_state_dict``), and every in-place write
  bumps the tensors' version counters, so a copy that overlapped a write is recognised when
  its result lands (on the GUI thread, after the write ended) and dropped: the write's own
  signal has asked for the next picture. Work asked for by a click rather than redone for
  every snapshot (the PCA comparison, anomaly scores) takes ``copy_at_request``: the copy is
  taken at once on the GUI thread, once per click, and its result is kept even when training
  has moved the weights on meanwhile (no newer request would come to replace it);
- a result is dropped when a newer request was made after it (its generation is old) or the
  model it was computed from is no longer the one shown, so the picture on screen stays
  until the newest one lands and is never replaced by an older one.

Views still coalesce their requests (``Coalescer``), so a hidden view asks for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from PySide6.QtCore import SignalInstance

from explorer.gui.state.tasks import Tasks
from explorer.gui.views.latent_plane import BuiltOnce
from explorer.models import Autoencoder
from explorer.runtime.threads import ModelCopy

Result = TypeVar("Result")


def weights_version(model: torch.nn.Module) -> tuple[int, ...]:
    """Changes whenever any weight or buffer of ``model`` is written in place (microseconds:
    one counter per tensor, no data read)."""
    return tuple(tensor._version for tensor in model.state_dict().values())


@dataclass(frozen=True)
class CopyInTask:
    """A ModelCopy taken where it is built, in the task (``BuiltOnce`` calls ``build``)."""

    model: Autoencoder

    def build(self) -> Autoencoder:
        return ModelCopy.of(self.model).build()


class BackgroundPicture(Generic[Result]):
    """``request(model, work)`` runs ``work(copy_of_model)`` in a task (under ``no_grad``)
    and hands its result to ``show`` on the GUI thread, if it is still the newest one asked
    for and ``current_model()`` is still ``model``."""

    def __init__(self, tasks: Tasks, key: str, label: str, show: Callable[[Result], None],
                 current_model: Callable[[], object], new_weights: SignalInstance,
                 on_failed: Callable[[str], None] | None = None, copy_at_request: bool = False) -> None:
        self._tasks = tasks
        self.key = key
        self.label = label
        self._show = show
        self._current_model = current_model
        self._on_failed = on_failed
        self._copy_at_request = copy_at_request
        self._copy: tuple[object, tuple[int, ...], BuiltOnce] | None = None
        self.generation = 0  # of the newest request; a result of an older one is dropped
        self.shown_generation = 0  # of the result on screen (0: none yet)
        new_weights.connect(self.drop_copy)

    def drop_copy(self) -> None:
        """New weights in the same model object: the next request takes a fresh copy."""
        self._copy = None

    def request(self, model: Autoencoder, work: Callable[[Autoencoder], Result]) -> None:
        version = weights_version(model)
        if self._copy is None or self._copy[0] is not model or self._copy[1] != version:
            copy = ModelCopy.of(model) if self._copy_at_request else CopyInTask(model)
            self._copy = (model, version, BuiltOnce(copy))  # type: ignore[arg-type]
        built = self._copy[2]
        self.generation += 1
        generation = self.generation

        def run(_handle) -> Result:
            with torch.no_grad():
                return work(built.get())

        self._tasks.submit(self.key, run, label=self.label, on_failed=self._on_failed,
                           on_done=lambda result: self._land(result, model, version, generation))

    @property
    def pending(self) -> bool:
        """A newer picture than the one on screen is being computed (or waits to be)."""
        return self._tasks.runner.is_busy(self.key)

    @property
    def current(self) -> bool:
        """The picture on screen answers the newest request."""
        return self.shown_generation == self.generation and self.generation > 0

    def _land(self, result: Result, model: Autoencoder, version: tuple[int, ...], generation: int) -> None:
        if generation != self.generation or model is not self._current_model():
            return  # a newer request was made, or another model is shown: not this picture's turn
        if not self._copy_at_request and weights_version(model) != version:
            self._copy = None  # the weights changed after the request (maybe during the copy)
            return
        self.shown_generation = generation
        self._show(result)
