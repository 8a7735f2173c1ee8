"""The loss history a run leaves behind: per-epoch metrics and a bounded step curve.

The step curve halves its resolution whenever it passes ``max_points``, so a run of any
length keeps a faithful outline in fixed memory and a small checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from explorer.training.events import EpochEnd, StepLoss

MAX_STEP_POINTS = 4000


@dataclass
class History:
    part_names: tuple[str, ...] = ("recon",)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    # Each row: [global_step, loss, *parts in part_names order].
    steps: list[list[float]] = field(default_factory=list)
    max_points: int = MAX_STEP_POINTS
    _stride: int = 1
    _pending: int = 0
    _latest_step: int = 0

    def record(self, event: object) -> None:
        if isinstance(event, StepLoss):
            self._latest_step = event.global_step
            self._pending += 1
            if self._pending >= self._stride:
                self._pending = 0
                self.steps.append([float(event.global_step), event.loss,
                                   *(event.parts.get(k, float("nan")) for k in self.part_names)])
                if len(self.steps) > self.max_points:
                    self.steps = self.steps[1::2]
                    self._stride *= 2
        elif isinstance(event, EpochEnd):
            self.epochs.append({"epoch": event.epoch, "global_step": self._latest_step,
                                "train": dict(event.train), "test": dict(event.test),
                                "seconds": event.seconds, "samples_per_s": event.samples_per_s})

    @property
    def last_epoch(self) -> int:
        return int(self.epochs[-1]["epoch"]) if self.epochs else 0

    @property
    def last_step(self) -> int:
        return max(self._latest_step, int(self.steps[-1][0]) if self.steps else 0)

    def to_dict(self) -> dict[str, Any]:
        return {"part_names": list(self.part_names), "epochs": self.epochs, "steps": self.steps,
                "stride": self._stride}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        if not isinstance(data, dict):
            raise ValueError("history must be a JSON object")
        names = data.get("part_names", ["recon"])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("history part names must be a list of strings")
        epochs = data.get("epochs", [])
        steps = data.get("steps", [])
        if not isinstance(epochs, list) or not all(_valid_epoch(e) for e in epochs):
            raise ValueError("history epochs must be objects with a whole epoch number and metric tables")
        if not isinstance(steps, list) or not all(
                isinstance(s, list) and len(s) >= 2 and all(_is_number(v) for v in s)
                and math.isfinite(s[0]) and s[0] >= 0 for s in steps):
            raise ValueError("history steps must be rows of numbers starting with a step count")
        history = cls(part_names=tuple(names), epochs=epochs, steps=[[float(v) for v in s] for s in steps])
        stride = data.get("stride", 1)
        history._stride = stride if _is_int(stride) and stride >= 1 else 1
        steps_at_epochs = [int(e["global_step"]) for e in epochs if "global_step" in e]
        history._latest_step = max(steps_at_epochs + [int(history.steps[-1][0]) if history.steps else 0])
        return history


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_epoch(record: Any) -> bool:
    if not isinstance(record, dict) or not _is_int(record.get("epoch")) or record["epoch"] < 0:
        return False
    step = record.get("global_step", 0)
    if not (_is_number(step) and math.isfinite(step) and step >= 0):
        return False
    for split in ("train", "test"):
        table = record.get(split, {})
        if not isinstance(table, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in table.items()):
            return False
    return True
