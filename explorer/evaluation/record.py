"""An evaluation's numbers as they travel: from the worker to the window, into a checkpoint
and back out of one, so a reopened model shows them without recomputing.

A record says what it was computed on (dataset, split, number of images, a fingerprint of
those images, binarisation, the model's training step) so a number is never shown for
weights it was not measured on, and numbers measured on different test sets are never
ranked against each other (:meth:`Evaluation.data_key`). Records written before the test
set was recorded read with it unknown (``split`` "", ``n_images`` 0, shown as "?"). Reading
a record from a file validates it field by field and bounds it; a damaged record is
dropped, never fatal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

MAX_RECORDS = 8  # per checkpoint: one per dataset evaluated on
MAX_METRICS = 64
MAX_DETAIL_NUMBERS = 70_000  # KL per dimension of the widest model, with room to spare
MAX_NOTES = 16
MAX_GROUPS = 16
MAX_TEXT = 600
MAX_NAME = 32  # a split's name
MAX_FINGERPRINT = 64

UNKNOWN = "?"  # how an older record's missing split or size reads

# One key per test set: what :meth:`Evaluation.data_key` returns.
DataKey = tuple[str, str, str, int, str]


@dataclass(frozen=True)
class Evaluation:
    """Metric values keyed as in :data:`explorer.evaluation.metrics.METRICS`, plus lists
    (``kl_per_dim``, ``class_accuracy_per_class``) in ``details`` and one-line ``notes``
    (what was skipped, and why; what a number means on these data)."""

    dataset: str
    binarize: str = "none"
    step: int = 0  # the model's global training step when it was evaluated
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, list[float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    iw_k: int = 0  # importance samples behind iw_nll (0: not estimated)
    n_samples: int = 0  # generated images behind fid and class_accuracy
    seconds: float = 0.0
    groups: tuple[str, ...] = ()  # the metric groups asked for (done, or skipped with a note)
    # What the numbers were measured on, beyond the dataset and binarisation. Absent from
    # older records, which read as unknown: "" and 0.
    split: str = ""  # "test"
    n_images: int = 0  # the test images measured
    fingerprint: str = ""  # a hash of those images and their labels (suite.fingerprint_of_test_set)

    @property
    def data_known(self) -> bool:
        """Whether the record says which test set it measured (older records do not)."""
        return bool(self.split) and self.n_images > 0

    def data_key(self) -> DataKey | None:
        """What the numbers were measured on, as a key: records of equal keys may be ranked
        against each other; None (an older record) is comparable with nothing."""
        if not self.data_known:
            return None
        return (self.dataset, self.split, self.binarize, self.n_images, self.fingerprint)

    def measured_on(self) -> str:
        """What the numbers were measured on, as a table cell reads it:
        "mnist test, 10,000 images, binarised: dynamic" ("?" for what an older record lacks)."""
        images = f"{self.n_images:,}" if self.n_images > 0 else UNKNOWN
        return f"{self.dataset} {self.split or UNKNOWN}, {images} images, binarised: {self.binarize}"

    def same_data(self, other: Evaluation) -> bool:
        """Whether both were measured on the same test set (two older records of the same
        dataset and binarisation count as the same, as they always did)."""
        return ((self.dataset, self.split, self.binarize, self.n_images, self.fingerprint)
                == (other.dataset, other.split, other.binarize, other.n_images, other.fingerprint))

    def same_subject(self, other: Evaluation) -> bool:
        """Whether both measure the same weights on the same data."""
        return self.step == other.step and self.same_data(other)

    def merged_with(self, newer: Evaluation) -> Evaluation:
        """This record updated by ``newer`` of the same subject: its metrics win, the rest stay.
        A ``newer`` of another subject (other weights, or another test set) is not merged:
        numbers measured on different data never share a record; ``newer`` is returned."""
        if not self.same_subject(newer):
            return newer
        # Notes about groups measured again are the newer record's; the rest are kept.
        redone = set(self.groups) <= set(newer.groups)
        notes = newer.notes if redone else tuple(dict.fromkeys(self.notes + newer.notes))[-MAX_NOTES:]
        # The merge stays within the bounds from_dict reads (a record merged past them would
        # be written, then dropped whole on the next read): the newer numbers first, then as
        # many of the older ones as still fit.
        metrics = _newest_first_within({**newer.metrics}, self.metrics, MAX_METRICS)
        details = _newest_first_within({**newer.details}, self.details, MAX_METRICS,
                                       size=len, budget=MAX_DETAIL_NUMBERS)
        groups = tuple(dict.fromkeys(self.groups + newer.groups))[-MAX_GROUPS:]
        return replace(newer, metrics=metrics, details=details, notes=notes, iw_k=newer.iw_k or self.iw_k,
                       n_samples=newer.n_samples or self.n_samples, seconds=self.seconds + newer.seconds,
                       groups=groups)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "binarize": self.binarize, "step": self.step, "metrics": dict(self.metrics),
                "details": {k: list(v) for k, v in self.details.items()}, "notes": list(self.notes),
                "iw_k": self.iw_k, "n_samples": self.n_samples, "seconds": self.seconds, "groups": list(self.groups),
                "split": self.split, "n_images": self.n_images, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: Any) -> Evaluation:
        """A record from parsed JSON; ValueError (one line) for anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("an evaluation record must be an object")
        dataset = _text(data.get("dataset"), "dataset")
        binarize = _text(data.get("binarize", "none"), "binarize")
        step = _whole(data.get("step", 0), "step")
        metrics = data.get("metrics", {})
        if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
            raise ValueError(f"evaluation metrics must be an object of at most {MAX_METRICS} numbers")
        checked_metrics = {_text(k, "metric name", 64): _number(v, str(k)) for k, v in metrics.items()}
        details = data.get("details", {})
        if not isinstance(details, dict) or len(details) > MAX_METRICS:
            raise ValueError("evaluation details must be an object of lists")
        total = 0
        checked_details: dict[str, list[float]] = {}
        for key, values in details.items():
            if not isinstance(values, list):
                raise ValueError(f"evaluation detail {key!r} must be a list of numbers")
            total += len(values)
            if total > MAX_DETAIL_NUMBERS:
                raise ValueError("evaluation details hold too many numbers")
            checked_details[_text(key, "detail name", 64)] = [_number(v, str(key)) for v in values]
        notes = data.get("notes", [])
        if not isinstance(notes, list) or len(notes) > MAX_NOTES:
            raise ValueError("evaluation notes must be a short list of lines")
        groups = data.get("groups", [])
        if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
            raise ValueError("evaluation groups must be a short list of names")
        return cls(dataset=dataset, binarize=binarize, step=step, metrics=checked_metrics, details=checked_details,
                   notes=tuple(_text(n, "note") for n in notes), iw_k=_whole(data.get("iw_k", 0), "iw_k"),
                   n_samples=_whole(data.get("n_samples", 0), "n_samples"),
                   seconds=_number(data.get("seconds", 0.0), "seconds"),
                   groups=tuple(_text(g, "group", 32) for g in groups),
                   split=_text(data.get("split", ""), "split", MAX_NAME),
                   n_images=_whole(data.get("n_images", 0), "n_images"),
                   fingerprint=_text(data.get("fingerprint", ""), "fingerprint", MAX_FINGERPRINT))


def records_from_json(data: Any) -> list[Evaluation]:
    """The valid records of a checkpoint's list (at most MAX_RECORDS; damaged ones dropped)."""
    if not isinstance(data, list):
        return []
    out = []
    for item in data[:MAX_RECORDS]:
        try:
            out.append(Evaluation.from_dict(item))
        except ValueError:
            continue
    return out


def with_record(records: list[Evaluation], new: Evaluation) -> list[Evaluation]:
    """``records`` with ``new`` merged into the record of the same subject (the same weights
    on the same test set), or added; records of the same dataset measured at another
    training step are replaced (they describe weights that are gone); a record of the same
    weights measured on another test set (or an older one that does not say which) is kept
    apart, never merged; at most MAX_RECORDS, newest last."""
    kept: list[Evaluation] = []
    for old in records:
        if old.same_subject(new):
            new = old.merged_with(new)
        elif (old.dataset, old.binarize) != (new.dataset, new.binarize) or old.step == new.step:
            kept.append(old)
    return (kept + [new])[-MAX_RECORDS:]


def _newest_first_within(newer: dict[str, Any], older: dict[str, Any], limit: int, size: Any = None,
                         budget: int = 0) -> dict[str, Any]:
    """``newer``'s entries (at most ``limit``), then ``older``'s that are not in it while the
    count stays within ``limit`` and, with ``size``, the summed sizes within ``budget``."""
    out: dict[str, Any] = {}
    used = 0
    for key, value in [*newer.items(), *((k, v) for k, v in older.items() if k not in newer)]:
        cost = size(value) if size is not None else 0
        if len(out) >= limit or (size is not None and used + cost > budget):
            continue
        out[key] = value
        used += cost
    return out


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"evaluation {what} must be text of at most {limit} characters")
    return value


def _whole(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise ValueError(f"evaluation {what} must be a whole number")
    return value


def _number(value: Any, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ValueError(f"evaluation value {what!r} must be a number")
    return float(value)
