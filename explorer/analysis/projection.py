"""The latent plane: two axes through a D-dimensional code space, and the way back.

A plane is an orthonormal basis of the whole code space plus an origin; its first two
basis vectors are the plane's axes. Projecting keeps the first two coordinates. Going back
from a point on the plane needs the other D-2 coordinates, which come from a reference
code (the sliders' current code), so dragging on the plane only changes what the plane
shows and keeps the rest. With raw dimensions as axes the basis is a permuted identity
and this reduces to "set z[i] and z[j]".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlaneAxes:
    origin: np.ndarray  # float (D,)
    basis: np.ndarray  # float (D, D); rows are orthonormal, rows 0 and 1 span the plane
    names: tuple[str, str]
    explained: tuple[float, float] | None = None  # PCA: fraction of variance per axis

    @property
    def dim(self) -> int:
        return int(self.origin.shape[0])

    def project(self, codes: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) codes to (N, 2) or (2,) plane coordinates (a 1-D code lies on y = 0)."""
        coords = (np.asarray(codes, dtype=np.float64) - self.origin) @ self.basis[:2].T
        if self.dim < 2:
            coords = np.concatenate([coords, np.zeros_like(coords)], axis=-1)
        return coords

    def lift(self, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """(N, 2) or (2,) plane points to full codes; off-plane coordinates from ``reference`` (D,)."""
        points = np.asarray(points, dtype=np.float64)
        coords = (np.asarray(reference, dtype=np.float64) - self.origin) @ self.basis.T
        coords = np.broadcast_to(coords, points.shape[:-1] + (self.dim,)).copy()
        on_plane = min(2, self.dim)
        coords[..., :on_plane] = points[..., :on_plane]
        return (coords @ self.basis + self.origin).astype(np.float32)


def raw_axes(dim: int, first: int = 0, second: int = 1) -> PlaneAxes:
    """Two of the code's own dimensions as the plane's axes (a 1-D code: its one dimension
    across, nothing up)."""
    if dim == 1:
        return PlaneAxes(origin=np.zeros(1), basis=np.eye(1), names=("z0", "(1-D code)"))
    if not (0 <= first < dim and 0 <= second < dim) or first == second:
        raise ValueError(f"pick two different dimensions between 0 and {dim - 1}")
    order = [first, second] + [d for d in range(dim) if d not in (first, second)]
    return PlaneAxes(origin=np.zeros(dim), basis=np.eye(dim)[order], names=(f"z{first}", f"z{second}"))


def pca_axes(codes: np.ndarray) -> PlaneAxes:
    """The principal axes of ``codes`` (N, D). Signs are fixed (each axis's largest loading
    is positive) so the plane does not flip over between snapshots of a training run."""
    codes = np.asarray(codes, dtype=np.float64)
    dim = codes.shape[1]
    if dim < 2:
        raise ValueError("a latent plane needs at least two dimensions")
    origin = codes.mean(axis=0)
    centred = codes - origin
    # The thin SVD: (N, D) codes give a (D, D) basis. full_matrices=True would also build
    # an (N, N) matrix nobody uses (10,000 codes: 800 MB and seconds).
    _, singular, vt = np.linalg.svd(centred, full_matrices=codes.shape[0] < dim)
    vt = vt[:dim]
    signs = np.sign(vt[np.arange(dim), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular ** 2
    total = float(variance.sum())
    explained = (float(variance[0] / total), float(variance[1] / total)) if total > 0 and len(variance) > 1 else None
    return PlaneAxes(origin=origin, basis=vt, names=("PC1", "PC2"), explained=explained)


def orthogonal_turn(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The orthogonal 2x2 ``R`` (rotation or reflection) minimising ``|current @ R - previous|``
    for (N, 2) arrays (orthogonal Procrustes: ``U V^T`` from the SVD of ``current^T previous``)."""
    u, _, vt = np.linalg.svd(np.asarray(current, np.float64).T @ np.asarray(previous, np.float64))
    return u @ vt


def turned(axes: PlaneAxes, turn: np.ndarray) -> PlaneAxes:
    """The same plane with its two axes turned by the orthogonal 2x2 ``turn``: a code's
    coordinates ``p`` become ``p @ turn``, and the way back stays exact. The share of
    variance along each turned axis follows (principal axes are uncorrelated)."""
    basis = np.array(axes.basis, dtype=np.float64, copy=True)
    basis[:2] = turn.T @ basis[:2]
    explained = None
    if axes.explained is not None:
        explained = tuple(float(v) for v in (turn ** 2).T @ np.asarray(axes.explained, dtype=np.float64))
    return PlaneAxes(origin=axes.origin, basis=basis, names=axes.names, explained=explained)


def aligned_plane(axes: PlaneAxes, codes: np.ndarray | None, previous: PlaneAxes | None,
                  previous_points: np.ndarray | None = None) -> PlaneAxes:
    """``axes`` (a refit of the principal axes to ``codes``) turned to agree with the plane
    shown before, so the picture never mirror-flips or swaps its axes between fits (the
    sign of a principal axis is arbitrary, and two axes of similar variance trade places).

    With ``previous_points`` (the (N, 2) coordinates on the previous plane of the images
    ``codes`` (N, D) encode, in the same order) the turn maps the new coordinates onto the
    old ones as closely as an orthogonal turn can (orthogonal Procrustes, as the training
    timeline aligns its frames); without them it maps the new axes onto the previous axes.
    A plane of raw dimensions is never turned."""
    if previous is None or previous.dim != axes.dim or axes.dim <= 2:
        return axes
    if codes is not None and previous_points is not None and np.shape(previous_points) == (len(codes), 2) \
            and len(codes) > 1:
        now, before = axes.project(codes), np.asarray(previous_points, dtype=np.float64)
        turn = orthogonal_turn(now - now.mean(axis=0), before - before.mean(axis=0))
    else:
        turn = orthogonal_turn(axes.basis[:2].T, previous.basis[:2].T)
    return turned(axes, turn)
