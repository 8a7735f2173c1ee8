"""Named directions in code space: how each is made, moving along one, analogies, export."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from explorer.analysis import directions as dirs
from explorer.analysis.directions import Direction, Made


def blobs(dim: int = 16, per_class: int = 120, classes: int = 4, gap: float = 4.0, seed: int = 0):
    """Gaussian clusters, one per class, their centres ``gap`` apart along random axes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim))
    centres *= gap / np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(classes), per_class)
    codes = centres[labels] + rng.standard_normal((labels.size, dim))
    return codes, labels, centres


def orthogonal_part(vector: np.ndarray, unit: np.ndarray) -> np.ndarray:
    return vector - (vector @ unit) * unit


def test_moving_along_a_direction_changes_only_its_component():
    rng = np.random.default_rng(1)
    d = dirs.from_codes(rng.standard_normal(20), rng.standard_normal(20), "a to b")
    code = rng.standard_normal(20)
    for t in (-1.0, 0.0, 0.37, 1.0, 2.5):
        moved = d.moved(code, t)
        np.testing.assert_allclose(orthogonal_part(moved, d.vector), orthogonal_part(code, d.vector), atol=1e-12)
        assert d.position(moved) == pytest.approx(t)
    assert not np.allclose(d.moved(code, 2.0), code)


def test_two_codes_direction_reaches_each_code_at_its_ends():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, 3.5])
    d = dirs.from_codes(a, b, defined_by=(7, 12))
    assert d.made is Made.CODES and d.defined_by == (7, 12) and d.accuracy is None
    np.testing.assert_allclose(d.vector, (b - a) / np.linalg.norm(b - a))
    assert d.position(a) == pytest.approx(0.0) and d.position(b) == pytest.approx(1.0)
    np.testing.assert_allclose(d.moved(a, 1.0), b, atol=1e-12)  # a differs from b only along the direction
    with pytest.raises(ValueError):
        dirs.from_codes(a, a)


def test_class_means_direction_points_from_the_first_mean_to_the_second():
    codes, labels, _ = blobs()
    d = dirs.from_class_means(codes, labels, 1, 3, class_names=("zero", "one", "two", "three"))
    gap = codes[labels == 3].mean(0) - codes[labels == 1].mean(0)
    np.testing.assert_allclose(d.vector, gap / np.linalg.norm(gap), atol=1e-12)
    assert d.name == "one to three" and d.defined_by == (1, 3) and d.made is Made.CLASS_MEANS
    assert d.position(codes[labels == 1].mean(0)) == pytest.approx(0.0)
    assert d.position(codes[labels == 3].mean(0)) == pytest.approx(1.0)
    assert d.accuracy is not None and d.accuracy > 0.95  # well-separated clusters
    with pytest.raises(ValueError, match="no codes of class 9"):
        dirs.from_class_means(codes, labels, 1, 9)


def test_held_out_split_keeps_a_share_of_every_class_and_is_seeded():
    labels = np.repeat([0, 1, 2], [10, 50, 3])
    held = dirs.held_out_split(labels, 0.3, seed=5)
    assert [int(held[labels == c].sum()) for c in (0, 1, 2)] == [3, 15, 1]
    np.testing.assert_array_equal(held, dirs.held_out_split(labels, 0.3, seed=5))


def test_probe_accuracy_is_held_out_and_beats_chance_on_separable_codes():
    codes, labels, centres = blobs(dim=20, gap=5.0)
    d = dirs.from_probe(codes, labels, 2)
    assert d.made is Made.PROBE and d.defined_by == (2,)
    assert d.accuracy is not None and d.accuracy > 0.9  # chance is 0.5 (balanced)
    rest = codes[labels != 2].mean(0)
    assert float((codes[labels == 2].mean(0) - rest) @ d.vector) > 0, "it points towards the class"
    assert d.position(codes[labels == 2].mean(0)) == pytest.approx(1.0)


def test_probe_accuracy_is_near_chance_when_labels_carry_nothing():
    rng = np.random.default_rng(3)
    codes = rng.standard_normal((400, 8))
    labels = rng.integers(0, 2, 400)
    d = dirs.from_probe(codes, labels, 1)
    assert d.accuracy is not None and 0.35 < d.accuracy < 0.65, "scored on codes it was not fitted on"


def test_selection_direction_goes_from_the_rest_to_the_selection():
    codes, labels, _ = blobs(dim=16)
    chosen = labels == 0
    indices = np.arange(codes.shape[0]) + 1000
    d = dirs.from_selection(codes, chosen, "cluster", indices=indices)
    gap = codes[chosen].mean(0) - codes[~chosen].mean(0)
    np.testing.assert_allclose(d.vector, gap / np.linalg.norm(gap), atol=1e-12)
    assert d.defined_by[:3] == (1000, 1001, 1002) and len(d.defined_by) == int(chosen.sum())
    rows = dirs.from_selection(codes, np.flatnonzero(chosen), "same")
    np.testing.assert_allclose(rows.vector, d.vector)
    with pytest.raises(ValueError):
        dirs.from_selection(codes, np.ones(len(codes), dtype=bool))


def test_analogy_is_a_minus_b_plus_c():
    a, b, c = np.array([1.0, 5.0]), np.array([0.5, 1.0]), np.array([-2.0, 3.0])
    np.testing.assert_allclose(dirs.analogy(a, b, c), [-1.5, 7.0])
    with pytest.raises(ValueError):
        dirs.analogy(a, b, np.zeros(3))


def test_names_are_one_short_line():
    d = Direction("smile\n\x1b[31mred" + "x" * 200, np.ones(3), Made.IMPORTED)
    assert "\n" not in d.name and "\x1b" not in d.name and len(d.name) <= dirs.MAX_NAME
    assert Direction("   ", np.ones(3), Made.IMPORTED).name == "direction"
    with pytest.raises(ValueError):
        Direction("zero", np.zeros(3), Made.IMPORTED)
    with pytest.raises(ValueError):
        Direction("nan", np.array([1.0, np.nan]), Made.IMPORTED)


def test_export_as_npy_with_names_and_as_csv_reads_back(tmp_path):
    codes, labels, _ = blobs(dim=5)
    listed = [dirs.from_class_means(codes, labels, 0, 1), dirs.from_codes(codes[0], codes[1], 'say "hi", ok')]
    written = dirs.export_directions(tmp_path / "d.npy", listed)
    assert written == [tmp_path / "d.npy", tmp_path / "d.names.txt"]
    matrix = np.load(tmp_path / "d.npy")
    assert matrix.shape == (2, 5) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, np.stack([d.vector for d in listed]), atol=1e-6)
    assert (tmp_path / "d.names.txt").read_text().splitlines() == ["0 to 1", 'say "hi", ok']

    dirs.export_directions(tmp_path / "d.csv", listed)
    with open(tmp_path / "d.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["name", "made_from", "held_out_accuracy", "start", "end", "z0", "z1", "z2", "z3", "z4"]
    assert [r[0] for r in rows[1:]] == ["0 to 1", 'say "hi", ok']
    assert rows[1][1] == "class means" and float(rows[1][2]) == pytest.approx(listed[0].accuracy)
    assert rows[2][2] == ""
    np.testing.assert_allclose(np.array([[float(v) for v in r[5:]] for r in rows[1:]]), matrix, atol=1e-6)

    with pytest.raises(ValueError):
        dirs.export_directions(tmp_path / "none.csv", [])
    assert not (tmp_path / "none.csv").exists()


def test_records_round_trip_and_a_bad_entry_costs_only_itself():
    codes, labels, _ = blobs(dim=6)
    listed = [dirs.from_class_means(codes, labels, 0, 1), dirs.from_probe(codes, labels, 2)]
    vectors, records = dirs.to_records(listed)
    back, notes = dirs.from_records(vectors, records, 6)
    assert notes == [] and [d.name for d in back] == [d.name for d in listed]
    assert back[1].accuracy == listed[1].accuracy and back[0].defined_by == (0, 1)
    np.testing.assert_allclose(back[0].vector, listed[0].vector, atol=1e-6)

    vectors[0, 2] = np.nan
    records[1]["made"] = "magic"
    kept, notes = dirs.from_records(vectors, records, 6)
    assert kept == [] and len(notes) == 2 and all("\n" not in n for n in notes)
    kept, notes = dirs.from_records(vectors[:1], records, 6)
    assert kept == [] and len(notes) == 1, "a count that disagrees drops the set with one line"
    kept, notes = dirs.from_records(np.ones((2, 5)), records, 6)
    assert kept == [] and "6-D" in notes[0]
