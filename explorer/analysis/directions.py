"""Named directions in a latent space: "4 to 9", "smiling", "this cluster against the rest".

A :class:`Direction` is a unit vector in code space with two marks on it, ``start`` and
``end``: the projections of where it was made from and to (the two class means, the two
codes, the rest and the selection). A slider reads a code's place along it as
``t = (u . code - start) / (end - start)`` (0 at the start, 1 at the end) and moving to
another ``t`` adds a multiple of ``u`` alone, so the code's component orthogonal to the
direction never changes.

Where a label defines a direction (two classes, a linear probe on one class) it carries the
accuracy it reaches on codes it was not made from: the codes are split in a seeded,
stratified way, the direction's rule is fitted on one part and scored on the other. The
score is balanced (the mean of the two sides' recalls), so chance is 0.5 even for one class
against nine.

Everything here is NumPy on codes the caller already has; only the probe fits with torch
(explorer.analysis.latent_metrics).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import numpy as np

from explorer.display import one_line

MAX_DIRECTIONS = 64  # a checkpoint keeps at most this many
MAX_NAME = 80  # characters: a list entry and a slider's label
MAX_DEFINING = 10_000  # indices kept of what defines a direction (the test codes the window holds)
HELD_OUT = 0.3  # the share of each class kept out of the fit to score it
MIN_SPAN = 1e-6  # a direction whose two ends project closer than this has no scale of its own


class Made(str, Enum):
    """How a direction was made (stored in checkpoints by value)."""

    CLASS_MEANS = "class means"  # from class a's mean code to class b's
    SELECTION = "selection"  # from the rest's mean to the selected codes' mean
    PROBE = "linear probe"  # the normal of a logistic regression: one class against the rest
    CODES = "two codes"  # from one code (a picked image's) to another
    IMPORTED = "imported"  # given as a vector

    @property
    def label(self) -> str:
        return {Made.CLASS_MEANS: "two classes", Made.SELECTION: "selection vs rest", Made.PROBE: "linear probe",
                Made.CODES: "two images", Made.IMPORTED: "given vector"}[self]


@dataclass(frozen=True, eq=False)
class Direction:
    """A named unit vector in code space and the scale a slider moves along it in (compared
    by identity: it holds an array)."""

    name: str
    vector: np.ndarray  # float64 (D,), unit length
    made: Made
    defined_by: tuple[int, ...] = ()  # classes (a, b) / (class,), or test-image indices
    accuracy: float | None = None  # held-out balanced accuracy, where a label defines it
    start: float = 0.0  # u . (where it starts): t = 0
    end: float = 1.0  # u . (where it ends): t = 1

    def __post_init__(self) -> None:
        vector = np.asarray(self.vector, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(vector)) if vector.size else 0.0
        if not np.isfinite(vector).all() or not norm > 0:
            raise ValueError("a direction needs a finite, nonzero vector")
        object.__setattr__(self, "vector", vector / norm)
        object.__setattr__(self, "name", clean_name(self.name))
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError("a direction's ends must be finite")
        if abs(self.end - self.start) < MIN_SPAN:
            object.__setattr__(self, "end", self.start + 1.0)
        if self.accuracy is not None and not 0.0 <= self.accuracy <= 1.0:
            raise ValueError("an accuracy lies between 0 and 1")

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    @property
    def span(self) -> float:
        """How far the code moves per unit of ``t``."""
        return self.end - self.start

    def position(self, code: np.ndarray) -> float:
        """Where ``code`` lies along this direction: 0 at its start, 1 at its end."""
        return (float(np.asarray(code, dtype=np.float64) @ self.vector) - self.start) / self.span

    def moved(self, code: np.ndarray, t: float) -> np.ndarray:
        """``code`` moved along this direction (and only along it) to position ``t``."""
        code = np.asarray(code, dtype=np.float64)
        return code + (t - self.position(code)) * self.span * self.vector

    def renamed(self, name: str) -> Direction:
        return replace(self, name=name)


def clean_name(name: str) -> str:
    """One line of at most MAX_NAME characters (control characters escaped), never empty."""
    text = one_line(str(name), limit=MAX_NAME).strip()
    return text or "direction"


def _ends(vector: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, float, float]:
    unit = vector / np.linalg.norm(vector)
    return unit, float(start @ unit), float(end @ unit)


def _as_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError("directions are made from a (N, D) array of codes")
    return codes


def held_out_split(labels: np.ndarray, fraction: float = HELD_OUT, seed: int = 0) -> np.ndarray:
    """A boolean mask of the rows kept out of a fit: ``fraction`` of each label's rows
    (at least one where a label has two or more), seeded."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = np.zeros(labels.shape[0], dtype=bool)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        if rows.size < 2:
            continue
        n = min(rows.size - 1, max(1, int(round(fraction * rows.size))))
        held[rng.permutation(rows)[:n]] = True
    return held


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The mean over the true classes present of the share predicted right (chance: 1/k)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan")


def from_class_means(codes: np.ndarray, labels: np.ndarray, from_class: int, to_class: int,
                     name: str | None = None, class_names: Sequence[str] = (), seed: int = 0) -> Direction:
    """From ``from_class``'s mean code to ``to_class``'s. Its accuracy: the two means of a
    fitted part of those classes' codes, a threshold halfway between them along their
    difference, scored on the rest."""
    codes, labels = _as_codes(codes), np.asarray(labels)
    if from_class == to_class:
        raise ValueError("a direction between classes needs two different classes")
    a, b = labels == from_class, labels == to_class
    for cls, rows in ((from_class, a), (to_class, b)):
        if not rows.any():
            raise ValueError(f"there are no codes of class {_class_name(cls, class_names)}")
    mean_a, mean_b = codes[a].mean(0), codes[b].mean(0)
    if not np.linalg.norm(mean_b - mean_a) > 0:
        raise ValueError("the two classes' mean codes are the same point")
    unit, start, end = _ends(mean_b - mean_a, mean_a, mean_b)
    accuracy = _class_means_accuracy(codes[a | b], (labels[a | b] == to_class).astype(np.int64), seed)
    label = name or f"{_class_name(from_class, class_names)} to {_class_name(to_class, class_names)}"
    return Direction(label, unit, Made.CLASS_MEANS, (int(from_class), int(to_class)), accuracy, start, end)


def _class_means_accuracy(codes: np.ndarray, side: np.ndarray, seed: int) -> float | None:
    held = held_out_split(side, seed=seed)
    fit = ~held
    if not held.any() or len(np.unique(side[fit])) < 2:
        return None
    mean_a, mean_b = codes[fit & (side == 0)].mean(0), codes[fit & (side == 1)].mean(0)
    gap = mean_b - mean_a
    if not np.linalg.norm(gap) > 0:
        return None
    predicted = (codes[held] - (mean_a + mean_b) / 2) @ gap > 0
    return balanced_accuracy(predicted.astype(np.int64), side[held])


def from_probe(codes: np.ndarray, labels: np.ndarray, target: int, name: str | None = None,
               class_names: Sequence[str] = (), seed: int = 0) -> Direction:
    """The normal of a logistic regression of ``target`` against every other class
    (balanced, on standardised codes), fitted on a seeded part of the codes; its accuracy
    is scored on the rest. It points towards ``target``."""
    from explorer.analysis.latent_metrics import fit_linear_probe

    codes, labels = _as_codes(codes), np.asarray(labels)
    side = (labels == target).astype(np.int64)
    if side.sum() < 2 or (1 - side).sum() < 2:
        raise ValueError(f"a probe on class {_class_name(target, class_names)} needs at least two codes of it "
                         "and two of other classes")
    held = held_out_split(side, seed=seed)
    probe = fit_linear_probe(codes[~held], side[~held], n_classes=2, balanced=True)
    normal = probe.code_weight[:, 1] - probe.code_weight[:, 0]
    if not (np.isfinite(normal).all() and np.linalg.norm(normal) > 0):
        raise ValueError("the probe found no direction (the codes do not vary)")
    accuracy = balanced_accuracy(probe.predict(codes[held]), side[held]) if held.any() else None
    rest, chosen = codes[side == 0].mean(0), codes[side == 1].mean(0)
    unit, start, end = _ends(normal, rest, chosen)
    label = name or f"probe: {_class_name(target, class_names)}"
    return Direction(label, unit, Made.PROBE, (int(target),), accuracy, start, end)


def from_selection(codes: np.ndarray, selected: np.ndarray, name: str = "selection",
                   indices: np.ndarray | None = None) -> Direction:
    """From the mean of the codes not selected to the mean of those selected (``selected``:
    a boolean mask or row numbers). ``indices``: the rows' image numbers, kept as what
    defines it (at most MAX_DEFINING)."""
    codes = _as_codes(codes)
    mask = np.zeros(codes.shape[0], dtype=bool)
    chosen = np.asarray(selected)
    if chosen.dtype == bool:
        if chosen.shape != mask.shape:
            raise ValueError("the selection mask needs one entry per code")
        mask = chosen
    else:
        mask[chosen.astype(np.int64)] = True
    if not mask.any() or mask.all():
        raise ValueError("a selection against the rest needs some codes selected and some not")
    rest, inside = codes[~mask].mean(0), codes[mask].mean(0)
    if not np.linalg.norm(inside - rest) > 0:
        raise ValueError("the selection's mean code is the rest's")
    unit, start, end = _ends(inside - rest, rest, inside)
    rows = np.flatnonzero(mask)
    kept = (np.asarray(indices)[rows] if indices is not None else rows)[:MAX_DEFINING]
    return Direction(name, unit, Made.SELECTION, tuple(int(i) for i in kept), None, start, end)


def from_codes(code_a: np.ndarray, code_b: np.ndarray, name: str = "a to b",
               defined_by: tuple[int, ...] = ()) -> Direction:
    """From ``code_a`` to ``code_b`` (two picked images' codes: ``defined_by`` their numbers)."""
    a, b = np.asarray(code_a, dtype=np.float64).reshape(-1), np.asarray(code_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError("the two codes have different sizes")
    if not np.linalg.norm(b - a) > 0:
        raise ValueError("the two codes are the same point")
    unit, start, end = _ends(b - a, a, b)
    return Direction(name, unit, Made.CODES, tuple(int(i) for i in defined_by), None, start, end)


def analogy(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a - b + c``: what ``c`` becomes when it changes as ``b`` changed into ``a``
    (king - man + woman)."""
    a, b, c = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (a, b, c))
    if not a.shape == b.shape == c.shape:
        raise ValueError("the three codes have different sizes")
    return a - b + c


def _class_name(index: int, names: Sequence[str]) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


# -- files ------------------------------------------------------------------------------------

def export_directions(path: str | Path, directions: Sequence[Direction]) -> list[Path]:
    """Write the directions in the order given; returns the files written.

    ``.npy``: the (k, D) float32 matrix of unit vectors, and beside it ``NAME.names.txt``,
    their names one per line in the same order. ``.csv``: a header row, then one row per
    direction: name, how it was made, its held-out accuracy (empty where no label defines
    it), its start and end marks, and one column per code dimension (``z0``...).
    """
    from explorer.analysis.export import save_npy
    from explorer.atomic import write_text
    from explorer.errors import UserError

    path = Path(path)
    if not directions:
        raise ValueError("there are no directions to export yet")
    dims = {d.dim for d in directions}
    if len(dims) != 1:
        raise ValueError("the directions have different sizes")
    matrix = np.stack([d.vector for d in directions])
    suffix = path.suffix.lower()
    if suffix == ".npy":
        names = path.with_name(path.stem + ".names.txt")
        save_npy(path, matrix)
        write_text(names, lambda fh: fh.write("".join(d.name + "\n" for d in directions)))
        return [path, names]
    if suffix != ".csv":
        raise UserError(f"{one_line(path.name)}: directions are written as .npy or .csv")

    def write(fh) -> None:
        writer = csv.writer(fh)
        writer.writerow(["name", "made_from", "held_out_accuracy", "start", "end",
                         *(f"z{i}" for i in range(matrix.shape[1]))])
        for d in directions:
            writer.writerow([d.name, d.made.value, "" if d.accuracy is None else f"{d.accuracy:.6g}",
                             f"{d.start:.9g}", f"{d.end:.9g}", *(f"{v:.9g}" for v in d.vector)])

    write_text(path, write, newline="")
    return [path]


# -- checkpoints ------------------------------------------------------------------------------

def to_records(directions: Sequence[Direction]) -> tuple[np.ndarray, list[dict[str, object]]]:
    """The (k, D) float32 vectors and the JSON records of the rest, for a checkpoint."""
    vectors = np.stack([d.vector for d in directions]).astype(np.float32)
    records = [{"name": d.name, "made": d.made.value, "defined_by": list(d.defined_by),
                "accuracy": d.accuracy, "start": d.start, "end": d.end} for d in directions]
    return vectors, records


def from_records(vectors: np.ndarray, records: object, dim: int) -> tuple[list[Direction], list[str]]:
    """Directions read back from a checkpoint, each checked on its own: the good ones, and one
    line for each entry dropped (or for the whole set, when its shape is wrong)."""
    vectors = np.asarray(vectors)
    if not isinstance(records, list):
        return [], ["its directions are damaged (their list is not a list) and were dropped"]
    if vectors.ndim != 2 or vectors.shape[0] != len(records) or vectors.shape[1] != dim:
        return [], [f"its directions are damaged (vectors of shape {tuple(vectors.shape)} for {len(records)} "
                    f"names in a {dim}-D code space) and were dropped"]
    if len(records) > MAX_DIRECTIONS:
        return [], [f"it holds {len(records):,} directions, more than the {MAX_DIRECTIONS} Latent Explorer keeps; "
                    "they were dropped"]
    kept: list[Direction] = []
    notes: list[str] = []
    for i, (vector, record) in enumerate(zip(vectors, records)):
        try:
            kept.append(_direction_of(vector, record))
        except (ValueError, TypeError, KeyError) as exc:
            notes.append(f"its direction {i + 1} is damaged ({one_line(str(exc), limit=120)}) and was dropped")
    return kept, notes


def _direction_of(vector: np.ndarray, record: object) -> Direction:
    if not isinstance(record, dict):
        raise ValueError("not a record")
    name = record["name"]
    if not isinstance(name, str) or len(name) > 4 * MAX_NAME:
        raise ValueError("its name is not a short text")
    made = Made(record["made"])
    defined = record.get("defined_by", [])
    if not isinstance(defined, list) or len(defined) > MAX_DEFINING or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40 for v in defined):
        raise ValueError("what defines it is not a short list of whole numbers")
    accuracy = record.get("accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))):
        raise ValueError("its accuracy is not a number")
    start, end = record.get("start", 0.0), record.get("end", 1.0)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start, end)):
        raise ValueError("its ends are not finite numbers")
    if not np.isfinite(vector).all() or float(np.abs(vector).max(initial=0.0)) == 0.0:
        raise ValueError("its vector is not finite and nonzero")
    return Direction(name, np.asarray(vector, dtype=np.float64), made, tuple(defined),
                     None if accuracy is None else float(accuracy), float(start), float(end))
