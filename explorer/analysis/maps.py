"""Maps of a latent space onto a plane, and back: PCA, and a UMAP-style neighbour map.

Above two latent dimensions a linear projection piles clusters on each other; a
neighbour-preserving map (UMAP's fuzzy-graph cross-entropy) pulls them apart. Such maps
have no inverse of their own, so every map here is fitted together with one: a blend of the
codes of the nearest mapped points, weighted by inverse distance. On MNIST VAE codes
(``benchmarks/latent_map.py``, 16-D, held-out test codes) its relative code error is 0.67
against 0.84 for the nearest code alone, and a small MLP inverse (2 -> D, 500 steps) was no
better (0.68; decoded pixel error 6% lower), so none is fitted. Where a plane point is far
from every mapped point the decode is an extrapolation:
:meth:`LatentMap.inverse_with_confidence` says how far.

The UMAP-style map needs neither umap-learn nor numba (whose compile took 50 s the first
time): the k-nearest-neighbour graph and UMAP's edge weights are built with torch, and the
layout (UMAP's attraction/repulsion loss with negative sampling, optimised with Adam) runs
in NumPy with the loss's closed-form gradient, about 0.6 s for 10,000 codes on 2 cores
where the same loop under autograd took 3.5 s. New codes are placed by the same neighbour
blend in code space (``transform``).

A refit during training starts from the last map (each code where the last map places
it), with a lower learning rate, and is then turned and shifted back onto that start
(orthogonal Procrustes), so clusters stay where the person last saw them. On a 16-D VAE
between epochs 2 and 3 (3,000 MNIST test codes, two measurements) a cold refit moved the
points by a median 0.47-1.6 times the map's spread, a warm one by 0.20-0.27; the lower rate
takes a little more off (0.22 to 0.20 there, 0.11 to 0.06 on tests/unit's synthetic
clusters) and keeps as many code-space neighbours (10-NN kept 0.377, against 0.374 at the
cold rate and 0.365 cold).

A distribution seen through a map (the prior N(0, I) on a neighbour map) has no closed
form: :func:`push_density` pushes samples through it and finds the density levels that
enclose given shares of them (highest-density regions), for the plane to draw as contours.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explorer import cancellation
from explorer.analysis.projection import orthogonal_turn

METHODS = ("pca", "umap")
INVERSE_NEIGHBOURS = 8
MAX_POINTS = 20_000  # the whole MNIST test split with room; the graph is built in blocks
MAX_FIT_POINTS = 3_000  # the layout's own optimisation; the rest are blended in
LAYOUT_LR = 0.5  # Adam's starting rate for a layout from PCA
WARM_START_LR = 0.2  # from an earlier map: refine it, do not rebuild it
NEAR_CANDIDATES = 256  # transform_near: the mapped codes nearest the centre that a query may blend


@dataclass
class LatentMap:
    """A fitted map. ``transform(codes) -> (N, 2)``, ``inverse(points) -> (N, D)``; NumPy in,
    NumPy out, torch in, torch out. ``fit_seconds`` is what the fit took."""

    method: str
    codes: np.ndarray  # (N, D) float32: the codes the map was fitted on
    points: np.ndarray  # (N, 2) float32: where they lie on the plane
    fit_seconds: float = 0.0
    linear: tuple[np.ndarray, np.ndarray] | None = None  # PCA: (origin (D,), axes (2, D))
    scale: float = field(default=1.0)  # a typical neighbour distance on the plane

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def transform(self, codes: Any) -> Any:
        array, back = _as_array(codes)
        array = array.reshape(-1, self.dim)
        if self.linear is not None:
            origin, axes = self.linear
            out = (array - origin) @ axes.T
        else:
            out = _blend(self.codes, self.points, array)
        return back(out.astype(np.float32))

    def transform_near(self, codes: np.ndarray, centre: np.ndarray, candidates: int = NEAR_CANDIDATES) -> np.ndarray:
        """``transform`` for codes gathered about ``centre`` (samples of one posterior):
        each blends only the ``candidates`` mapped codes nearest the centre, which hold its own
        nearest ones unless it lies far out. One (N, candidates) distance table instead of
        (N, all codes): on the GUI thread, 64 samples against 10,000 codes took 50 ms on a
        busy machine."""
        array = np.asarray(codes, dtype=np.float64).reshape(-1, self.dim)
        if self.linear is not None or len(self.codes) <= candidates:
            return np.asarray(self.transform(array), dtype=np.float64)
        reference = self.codes.astype(np.float64)
        d2 = _pairwise(np.asarray(centre, dtype=np.float64).reshape(1, -1), reference)[0]
        near = np.argpartition(d2, candidates - 1)[:candidates]
        return _blend(reference[near], self.points[near].astype(np.float64), array)

    def inverse(self, points: Any) -> Any:
        array, back = _as_array(points)
        return back(self._inverse_codes(array.reshape(-1, 2)))

    def inverse_with_confidence(self, points: Any) -> tuple[Any, Any]:
        """The codes, and for each point its distance to the nearest mapped point in units of
        a typical neighbour distance: above about 3 the decode is extrapolated."""
        array, back = _as_array(points)
        codes, distance = self._inverse(array.reshape(-1, 2))
        return back(codes), back(distance.astype(np.float32))

    def _inverse(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nearest = _nearest_distance(self.points, points)
        return self._inverse_codes(points), nearest / max(self.scale, 1e-12)

    def _inverse_codes(self, points: np.ndarray) -> np.ndarray:
        if self.linear is not None:
            origin, axes = self.linear
            return (origin + points @ axes).astype(np.float32)
        return _blend(self.points, self.codes, points).astype(np.float32)


def _as_array(value: Any) -> tuple[np.ndarray, Any]:
    if isinstance(value, torch.Tensor):
        device, dtype = value.device, value.dtype if value.is_floating_point() else torch.float32
        return value.detach().cpu().double().numpy(), lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(
            device=device, dtype=dtype)
    return np.asarray(value, dtype=np.float64), lambda a: a


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances of every row of ``a`` to every row of ``b``, built in place (one
    (len(a), len(b)) array, no temporaries of its size)."""
    d2 = a @ b.T
    d2 *= -2
    d2 += (a * a).sum(1)[:, None]
    d2 += (b * b).sum(1)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _nearest_distance(reference: np.ndarray, queries: np.ndarray, block: int = 2048) -> np.ndarray:
    out = np.empty(len(queries))
    for i in range(0, len(queries), block):
        out[i:i + block] = np.sqrt(_pairwise(queries[i:i + block], reference).min(1))
    return out


def _blend(source: np.ndarray, target: np.ndarray, queries: np.ndarray, k: int = INVERSE_NEIGHBOURS,
           block: int = 2048) -> np.ndarray:
    """For each query (in ``source``'s space) the inverse-distance blend of the ``target``
    rows of its ``k`` nearest ``source`` rows (an exact hit takes that row)."""
    k = min(k, len(source))
    out = np.empty((len(queries), target.shape[1]))
    for i in range(0, len(queries), block):
        d2 = _pairwise(queries[i:i + block], source)
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        dist = np.sqrt(np.take_along_axis(d2, idx, axis=1))
        weights = 1.0 / np.maximum(dist, 1e-9) ** 2
        weights /= weights.sum(1, keepdims=True)
        out[i:i + block] = np.einsum("nk,nkd->nd", weights, target[idx])
    return out


def _knn(codes: torch.Tensor, k: int, block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Each code's k nearest others (indices and distances), in blocks of rows."""
    n = len(codes)
    idx = torch.empty(n, k, dtype=torch.long)
    dist = torch.empty(n, k)
    for i in range(0, n, block):
        d = torch.cdist(codes[i:i + block], codes)
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        values, indices = d.topk(k, largest=False)
        idx[i:i + block], dist[i:i + block] = indices, values
    return idx, dist


def _fuzzy_weights(dist: torch.Tensor, iterations: int = 64) -> torch.Tensor:
    """UMAP's membership strengths: exp(-(d - rho) / sigma) with each point's sigma found by
    bisection so the strengths sum to log2(k)."""
    k = dist.shape[1]
    rho = dist[:, :1]
    target = math.log2(k)
    lo, hi = torch.zeros(len(dist), 1), torch.full((len(dist), 1), float("inf"))
    sigma = torch.ones(len(dist), 1)
    for _ in range(iterations):
        total = torch.exp(-(dist - rho).clamp(min=0) / sigma).sum(1, keepdim=True)
        too_big = total > target
        hi = torch.where(too_big, sigma, hi)
        lo = torch.where(too_big, lo, sigma)
        sigma = torch.where(torch.isinf(hi), sigma * 2, (lo + hi) / 2)
    return torch.exp(-(dist - rho).clamp(min=0) / sigma)


def fit_neighbour_map(codes: np.ndarray, *, neighbours: int = 15, epochs: int = 200, seed: int = 0,
                      init: np.ndarray | None = None, progress: Any = None) -> np.ndarray:
    """A UMAP-style 2-D embedding of ``codes`` (N, D): the symmetrised fuzzy k-NN graph,
    attraction along its edges and repulsion from random points, UMAP's curve with
    min_dist 0.1 (a=1.58, b=0.9). ``init`` (N, 2) starts from an earlier map, so a refresh
    during training does not move clusters around (at WARM_START_LR, then turned and shifted
    back onto ``init``); otherwise PCA starts it."""
    x = torch.as_tensor(codes, dtype=torch.float32)
    n = len(x)
    k = max(2, min(neighbours, n - 1))
    idx, dist = _knn(x, k)
    weights = _fuzzy_weights(dist)
    rows = torch.arange(n).repeat_interleave(k)
    graph = torch.sparse_coo_tensor(torch.stack([rows, idx.reshape(-1)]), weights.reshape(-1), (n, n),
                                    check_invariants=True).coalesce()
    sym = (graph + graph.t() - graph * graph.t()).coalesce()
    heads, tails = (i.numpy() for i in sym.indices())
    strength = sym.values().double().numpy()
    if init is None:
        centred = x - x.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        start = centred @ v[:2].T
        start = (start / start.std().clamp(min=1e-6) * 3).numpy()
    else:
        start = np.asarray(init, dtype=np.float32)
    points = _layout(start, heads, tails, strength, epochs=epochs, seed=seed, progress=progress,
                     lr=LAYOUT_LR if init is None else WARM_START_LR)
    return points if init is None else _aligned_to(points, start)


def _aligned_to(points: np.ndarray, start: np.ndarray) -> np.ndarray:
    """``points`` (N, 2) turned (orthogonal Procrustes) and shifted to lie as close to
    ``start`` as a rigid motion allows: what a warm refit drifted as a whole is taken back."""
    here, there = points.mean(0), start.mean(0)
    turn = orthogonal_turn(points - here, start - there)
    return ((points - here) @ turn + there).astype(np.float32)


def _layout(start: np.ndarray, heads: np.ndarray, tails: np.ndarray, strength: np.ndarray, *, epochs: int,
            seed: int, progress: Any = None, negatives: int = 5, a: float = 1.58, b: float = 0.9,
            lr: float = LAYOUT_LR) -> np.ndarray:
    """Minimise UMAP's cross-entropy over the graph (edges ``heads``-``tails`` of weight
    ``strength``) from ``start`` (N, 2), with Adam and a learning rate falling from ``lr``.
    Each epoch takes every edge with probability weight / largest weight and ``negatives``
    random points per edge taken, and applies the loss's closed-form gradient.

    NumPy on one thread, coordinates stored per axis: the gathers (``np.take`` on a 1-D
    array), the ``bincount`` scatters and the float32 arithmetic cost a fraction of the same
    loop under autograd with two torch threads, whose backward of the indexing and whose
    ``multinomial`` draws dominated it (and which slowed several-fold when another process
    took a core)."""
    rng = np.random.default_rng(seed)
    n = len(start)
    coords = np.ascontiguousarray(np.asarray(start, dtype=np.float32).T)  # (2, N): one array per axis
    keep = (strength / max(float(strength.max()), 1e-12)).astype(np.float32)
    heads, tails = heads.astype(np.int64), tails.astype(np.int64)
    first, second = np.zeros_like(coords), np.zeros_like(coords)  # Adam's moments
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for epoch in range(epochs):
        cancellation.check()
        picked = np.flatnonzero(rng.random(len(keep), dtype=np.float32) < keep)
        if len(picked) == 0:
            continue
        h, t = heads[picked], tails[picked]
        hn = np.tile(h, negatives)
        grad = _layout_gradient(coords, h, t, hn, rng.integers(0, n, len(hn)), a, b)
        # Adam, as torch.optim.Adam steps.
        rate = lr * (1 - epoch / epochs) + 0.01
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad * grad
        step = epoch + 1
        denom = np.sqrt(second) / math.sqrt(1 - beta2 ** step) + eps
        coords -= (rate / (1 - beta1 ** step) * first / denom).astype(np.float32)
        if progress is not None and epoch % 10 == 0:
            progress(epoch / epochs, "Fitting the map")
    return np.ascontiguousarray(coords.T)


def _layout_gradient(coords: np.ndarray, h: np.ndarray, t: np.ndarray, hn: np.ndarray, r: np.ndarray,
                     a: float, b: float) -> np.ndarray:
    """The gradient, at ``coords`` (2, N), of the mean attraction log(1 + a d2^b) over the
    edges ``h``-``t`` plus the mean repulsion -log(q / (1 + q)), q = a d2^b, over the pairs
    ``hn``-``r`` (zero where q / (1 + q) is under the loss's clamp, 1e-4); d2 at least 1e-8."""
    n = coords.shape[1]
    a32, b32, floor = np.float32(a), np.float32(b), np.float32(1e-8)
    grad = np.zeros((2, n))
    dx = [np.take(c, h) - np.take(c, t) for c in coords]
    d2 = np.maximum(dx[0] * dx[0] + dx[1] * dx[1], floor)
    power = np.exp(b32 * np.log(d2))
    pull = np.float32(2 * a * b / len(h)) * power / (d2 * (1 + a32 * power))  # 2 d(attract)/d(d2), meaned
    for axis in range(2):
        g = dx[axis] * pull
        grad[axis] += np.bincount(h, g, n) - np.bincount(t, g, n)
    dx = [np.take(c, hn) - np.take(c, r) for c in coords]
    d2 = np.maximum(dx[0] * dx[0] + dx[1] * dx[1], floor)
    q = a32 * np.exp(b32 * np.log(d2))
    push = np.where(q > np.float32(1e-4) * (1 + q), np.float32(-2 * b / len(hn)) / (d2 * (1 + q)), np.float32(0))
    for axis in range(2):
        g = dx[axis] * push
        grad[axis] += np.bincount(hn, g, n) - np.bincount(r, g, n)
    return grad


def fit_map(codes: np.ndarray, method: str = "pca", *, previous: LatentMap | None = None, seed: int = 0,
            progress: Any = None) -> LatentMap:
    """A map of ``codes`` (N, D) by ``method`` ("pca" or "umap"). With ``previous`` (of the
    same method) a UMAP-style map starts from where its points were, so clusters keep
    their places across refreshes."""
    if method not in METHODS:
        raise ValueError(f"unknown map {method!r}; choose one of {', '.join(METHODS)}")
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or len(codes) < 3:
        raise ValueError("a map needs at least three codes")
    if len(codes) > MAX_POINTS:
        raise ValueError(f"a map takes at most {MAX_POINTS:,} codes, not {len(codes):,}")
    start = time.perf_counter()
    if method == "pca" or codes.shape[1] <= 2:
        origin = codes.mean(0).astype(np.float64)
        _, _, vt = np.linalg.svd(codes - origin, full_matrices=False)
        axes = vt[:2] if codes.shape[1] >= 2 else np.vstack([vt[:1], np.zeros_like(vt[:1])])
        for row in axes:  # a fixed sign per axis, so refits do not flip the plane
            if row[np.argmax(np.abs(row))] < 0:
                row *= -1
        points = ((codes - origin) @ axes.T).astype(np.float32)
        fitted = LatentMap("pca", codes, points, linear=(origin, axes))
    else:
        # The layout is optimised on at most MAX_FIT_POINTS codes (a seeded subset); the rest
        # are placed by the neighbour blend, as new codes are.
        subset = np.arange(len(codes))
        if len(codes) > MAX_FIT_POINTS:
            subset = np.sort(np.random.default_rng(seed).choice(len(codes), MAX_FIT_POINTS, replace=False))
        init = None
        if previous is not None and previous.method == method and previous.codes.shape[1] == codes.shape[1]:
            init = previous.transform(codes[subset])
        fitted_points = fit_neighbour_map(codes[subset], seed=seed, init=init, progress=progress)
        points = np.empty((len(codes), 2), dtype=np.float32)
        points[subset] = fitted_points
        rest = np.setdiff1d(np.arange(len(codes)), subset, assume_unique=True)
        if len(rest):
            points[rest] = _blend(codes[subset].astype(np.float64), fitted_points.astype(np.float64),
                                  codes[rest].astype(np.float64))
        fitted = LatentMap(method, codes, points)
    fitted.scale = _neighbour_scale(fitted.points)
    fitted.fit_seconds = time.perf_counter() - start
    return fitted


@dataclass(frozen=True)
class PushedDensity:
    """Samples of a distribution pushed through a map, as a smoothed histogram over the
    plane: ``density[i, j]`` is the bin at x index ``i``, y index ``j`` (bin centres
    ``x_range[0] + (i + 0.5) * (x_range[1] - x_range[0]) / bins``), and ``levels[k]`` the density
    above which ``masses[k]`` of the samples lie (the highest-density region holding that
    share)."""

    density: np.ndarray  # (bins, bins) float64
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    masses: tuple[float, ...]
    levels: tuple[float, ...]


def push_density(latent_map: LatentMap, samples: np.ndarray, masses: tuple[float, ...], bins: int = 64,
                 smoothing: float = 1.5) -> PushedDensity:
    """Push ``samples`` (S, D) through ``latent_map`` and find the density levels that
    enclose ``masses`` of them: a histogram of the pushed points over their bulk (the
    0.5-99.5 percentiles, with a margin, so the contours close inside it), smoothed by a Gaussian of ``smoothing`` bins,
    each sample scored by its bin's density, and each level the (1 - mass) quantile of those
    scores. Runs the neighbour blend for every sample: call off the GUI thread."""
    points = np.asarray(latent_map.transform(np.asarray(samples, dtype=np.float64)), dtype=np.float64)
    # The grid spans the bulk (a few far samples would leave the dense middle a bin or two wide).
    lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    margin = 0.25 * (hi - lo) + 1e-6
    lo, hi = lo - margin, hi + margin
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    reach = max(1, int(math.ceil(3 * smoothing)))
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / smoothing) ** 2)
    kernel /= kernel.sum()
    density = counts
    for axis in (0, 1):
        density = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), axis, density)
    cells = np.clip(((points - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
    scores = density[cells[:, 0], cells[:, 1]]
    levels = tuple(float(np.quantile(scores, 1.0 - mass)) for mass in masses)
    return PushedDensity(density, (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])),
                         tuple(float(m) for m in masses), levels)


def _neighbour_scale(points: np.ndarray, sample: int = 512) -> float:
    """The median distance from a point to its nearest other point: the map's grain."""
    pick = points[np.linspace(0, len(points) - 1, min(sample, len(points))).astype(int)]
    d2 = _pairwise(pick, points)
    d2[d2 == 0] = np.inf
    return float(np.median(np.sqrt(d2.min(1))))


@dataclass(frozen=True)
class MapAxes:
    """A fitted map as the latent plane's axes (the interface of
    :class:`~explorer.analysis.projection.PlaneAxes`): ``project`` places codes, ``lift``
    goes back through the map's inverse (the off-plane coordinates come from the map, not
    from a reference code: a non-linear map has no "rest of the code" to keep). The codes it
    was fitted on (or last placed, off the GUI thread) project from a cache, so drawing the
    plane never runs the neighbour blend on the GUI thread."""

    latent_map: LatentMap
    known_codes: np.ndarray
    known_points: np.ndarray
    names: tuple[str, str] = ("map 1", "map 2")
    explained: None = None

    @classmethod
    def of(cls, latent_map: LatentMap, codes: np.ndarray | None = None) -> MapAxes:
        """Axes whose cache holds ``codes`` (placed now: call off the GUI thread)."""
        if codes is None or (codes.shape == latent_map.codes.shape and np.array_equal(codes, latent_map.codes)):
            return cls(latent_map, latent_map.codes, latent_map.points)
        return cls(latent_map, codes, latent_map.transform(codes))

    @property
    def dim(self) -> int:
        return self.latent_map.dim

    @property
    def origin(self) -> np.ndarray:
        return self.latent_map.codes.mean(0).astype(np.float64)

    def project(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes is self.known_codes or (codes.shape == self.known_codes.shape
                                         and np.array_equal(codes, self.known_codes)):
            return self.known_points.astype(np.float64)
        flat = codes.reshape(-1, self.dim)
        out = self.latent_map.transform(flat).astype(np.float64)
        return out[0] if codes.ndim == 1 else out

    def lift(self, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        out = self.latent_map.inverse(points.reshape(-1, 2)).astype(np.float32)
        return out[0] if points.ndim == 1 else out.reshape(points.shape[:-1] + (self.dim,))

    def extrapolation(self, point: np.ndarray) -> float:
        """How far ``point`` is from every mapped code, in the map's neighbour distances."""
        _, distance = self.latent_map.inverse_with_confidence(np.asarray(point, dtype=np.float64).reshape(1, 2))
        return float(distance[0])


EXTRAPOLATED = 3.0  # neighbour distances from the data: beyond, a decode is an extrapolation
