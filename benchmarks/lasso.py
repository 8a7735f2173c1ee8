"""The latent plane's lasso: how long deciding which dots a drawn outline encloses takes.

The plane holds at most 10,000 test codes, and the test runs on the GUI thread when the
mouse button is let go, so it must stay well under a frame. For ``--points`` codes in ten
Gaussian clusters (like a trained plane's classes) and freehand outlines of each
``--vertices`` size (a wobbly loop, as a hand draws it, around one cluster and around all of
them), it times, in the same run:

- ``points_in_polygon`` (explorer.analysis.polygon): NumPy, each edge against the points in
  its own y band;
- the whole (points x edges) matrix in NumPy, the plain vectorised even-odd test (reference);
- Qt's ``QPainterPath.contains`` called once per point (reference: the GUI-thread alternative).

It reports the median of ``--repeats`` runs of each, their ratio to the project's, and
whether all three select the same dots (they must: the points are random, never on an edge).

    python benchmarks/lasso.py [--points 10000] [--vertices 100,500,2000] [--repeats 7]
        [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis.polygon import points_in_polygon  # noqa: E402


def clusters(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-4, 4, (10, 2))
    return centres[rng.integers(0, 10, n)] + rng.normal(0, 0.6, (n, 2))


def freehand(centre: np.ndarray, radius: float, vertices: int, seed: int = 1) -> np.ndarray:
    """A closed, wobbly stroke of ``vertices`` points around ``centre``."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    wobble = 1 + 0.15 * np.sin(5 * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.01, vertices)
    return centre + radius * np.column_stack([wobble * np.cos(t), wobble * np.sin(t)])


def full_matrix(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    x, y = points[:, :1], points[:, 1:]
    x1, y1 = outline[None, :, 0], outline[None, :, 1]
    x2, y2 = np.roll(x1, -1, axis=1), np.roll(y1, -1, axis=1)
    straddles = (y1 > y) != (y2 > y)
    rise = np.where(straddles, y2 - y1, 1.0)
    crosses = straddles & (x < x1 + (y - y1) * (x2 - x1) / rise)
    return crosses.sum(axis=1) % 2 == 1


def painter_path(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QPainterPath, QPolygonF

    path = QPainterPath()
    path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in outline]))
    path.closeSubpath()  # the default fill rule is odd-even, as the lasso's
    return np.array([path.contains(QPointF(float(x), float(y))) for x, y in points])


def timed(fn, points: np.ndarray, outline: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(points, outline)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--vertices", default="100,500,2000", help="outline sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 points, outlines of 50 vertices, 2 repeats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.vertices, args.repeats = 1000, "50", 2
    sizes = [int(v) for v in args.vertices.split(",") if v.strip()]

    points = clusters(args.points)
    rows = []
    for vertices in sizes:
        for shape, outline in (("one cluster", freehand(points[0], 1.5, vertices)),
                               ("all clusters", freehand(points.mean(0), 7.0, vertices))):
            ours, selected = timed(points_in_polygon, points, outline, args.repeats)
            matrix, by_matrix = timed(full_matrix, points, outline, args.repeats)
            qt, by_qt = timed(painter_path, points, outline, max(1, args.repeats // 3))
            rows.append({"vertices": vertices, "outline": shape, "selected": int(selected.sum()),
                         "project_ms": ours, "matrix_ms": matrix, "qpainterpath_ms": qt,
                         "matrix_over_project": matrix / ours, "qt_over_project": qt / ours,
                         "agree": bool(np.array_equal(selected, by_matrix) and np.array_equal(selected, by_qt))})
    out = {"points": args.points, "repeats": args.repeats, "cpus": os.cpu_count(),
           "load_1min": os.getloadavg()[0], "machine": platform.processor() or platform.machine(), "results": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.points:,} points, median of {args.repeats} (Qt: {max(1, args.repeats // 3)}); "
          f"load {out['load_1min']:.2f} on {out['cpus']} CPUs")
    print(f"{'vertices':>8} {'outline':>12} {'selected':>8} {'project':>9} {'matrix':>9} {'QPainterPath':>13} "
          f"{'x matrix':>8} {'x Qt':>6} agree")
    for r in rows:
        print(f"{r['vertices']:>8} {r['outline']:>12} {r['selected']:>8} {r['project_ms']:>7.2f}ms "
              f"{r['matrix_ms']:>7.2f}ms {r['qpainterpath_ms']:>11.2f}ms {r['matrix_over_project']:>8.1f} "
              f"{r['qt_over_project']:>6.1f} {r['agree']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
