"""The lasso's point-in-polygon test: convex and concave outlines, self-crossing ones (even-odd),
points on edges and vertices, degenerate outlines, and agreement with a plain per-point loop
on random freehand outlines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.analysis.polygon import points_in_polygon

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def ray_casting(point: np.ndarray, outline: np.ndarray) -> bool:
    """The textbook even-odd test, one point at a time (no edge rule: used off the edges)."""
    x, y = point
    inside = False
    for i in range(len(outline)):
        (x1, y1), (x2, y2) = outline[i], outline[(i + 1) % len(outline)]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def test_a_convex_outline_selects_what_it_encloses():
    points = np.array([[0.5, 0.5], [0.1, 0.9], [1.5, 0.5], [-0.1, 0.5], [0.5, -0.01], [0.5, 1.2]])
    assert points_in_polygon(points, SQUARE).tolist() == [True, True, False, False, False, False]
    # The same outline drawn the other way round, and closed by repeating its first vertex.
    closed = np.vstack([SQUARE[::-1], SQUARE[-1:]])
    assert points_in_polygon(points, closed).tolist() == [True, True, False, False, False, False]


def test_a_concave_outline_leaves_its_notch_out():
    # A U shape: the notch between the arms (x in 1..2, y above 1) is outside.
    u_shape = np.array([[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]], dtype=float)
    points = np.array([[0.5, 2.5], [2.5, 2.5], [1.5, 0.5], [1.5, 2.0], [1.5, 2.9], [3.5, 1.0]])
    assert points_in_polygon(points, u_shape).tolist() == [True, True, True, False, False, False]


def test_points_on_edges_and_vertices_are_selected():
    on_outline = np.array([[0.5, 0.0], [1.0, 0.3], [0.5, 1.0], [0.0, 0.7], [0, 0], [1, 1], [1, 0], [0, 1]])
    assert points_in_polygon(on_outline, SQUARE).all()
    slanted = np.array([[0.0, 0.0], [2.0, 1.0], [0.0, 2.0]])
    assert points_in_polygon(np.array([[1.0, 0.5], [1.0, 1.5], [1.0, 0.5 - 1e-3]]), slanted).tolist() \
        == [True, True, False]
    # On the line through an edge but past its end is not on the outline.
    assert not points_in_polygon(np.array([[1.5, 0.0], [-0.5, 0.0]]), SQUARE).any()


def test_a_self_crossing_outline_follows_the_even_odd_rule():
    # A pentagram: its middle is enclosed twice, so it is out; the points' tips are in.
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.column_stack([np.cos(angles), np.sin(angles)])
    assert points_in_polygon(np.array([[0.0, 0.0], [0.0, 0.8]]), star).tolist() == [False, True]


@pytest.mark.parametrize("outline", [
    np.zeros((0, 2)), np.array([[0.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]),
    np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),  # two distinct vertices, closed
    np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.5, 0.5]]),  # all on one line
    np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, np.inf]]),  # one finite vertex
])
def test_a_degenerate_outline_selects_nothing(outline):
    points = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.2, 0.1]])
    assert not points_in_polygon(points, outline).any()


def test_no_points_and_non_finite_points():
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)
    mask = points_in_polygon(np.array([[np.nan, 0.5], [0.5, np.inf], [0.5, 0.5]]), SQUARE)
    assert mask.tolist() == [False, False, True]


def test_agrees_with_a_per_point_loop_on_random_freehand_outlines():
    rng = np.random.default_rng(0)
    for _ in range(20):
        # A wobbly closed stroke, like a hand-drawn lasso (it may cross itself).
        t = np.linspace(0, 2 * np.pi, int(rng.integers(5, 200)), endpoint=False)
        radius = 1 + 0.4 * rng.standard_normal(t.size).cumsum() / np.sqrt(t.size)
        outline = np.column_stack([radius * np.cos(t), radius * np.sin(t)]) + rng.normal(0, 0.05, (t.size, 2))
        points = rng.uniform(-2, 2, (400, 2))
        expected = np.array([ray_casting(p, outline) for p in points])
        np.testing.assert_array_equal(points_in_polygon(points, outline), expected)


def test_the_benchmark_runs_and_its_three_methods_agree():
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "lasso.py"), "--quick", "--json"], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)["results"]
    assert [r["outline"] for r in rows] == ["one cluster", "all clusters"]
    assert all(r["agree"] and r["project_ms"] > 0 for r in rows)
    assert 0 < rows[0]["selected"] < rows[1]["selected"] <= 1000
