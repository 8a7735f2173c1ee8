"""A neighbour map refitted from the last one keeps its clusters where they were; the prior
pushed through a map has contours that, through a linear map, are the exact circles; and a
posterior's samples placed with only the codes near its mean land where the full transform
puts them."""

from __future__ import annotations

import numpy as np

from explorer.analysis.maps import LatentMap, fit_map, push_density


def clustered_codes(seed: int, n: int = 900, dim: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, dim)) * 4
    labels = rng.integers(0, 6, n)
    return (centres[labels] + rng.standard_normal((n, dim))).astype(np.float32), labels


def centroids(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([points[labels == k].mean(0) for k in range(labels.max() + 1)])


def test_a_refit_from_the_last_map_keeps_the_clusters_where_they_were():
    codes, labels = clustered_codes(0)
    first = fit_map(codes, "umap")
    # The last map as the person saw it: the same layout turned a quarter and mirrored (a
    # refit from PCA has no reason to come back in that pose).
    turn = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    shown = LatentMap("umap", first.codes, (first.points - first.points.mean(0)) @ turn + 5.0)
    moved = (codes + 0.3 * np.random.default_rng(1).standard_normal(codes.shape)).astype(np.float32)
    spread = np.linalg.norm(shown.points.std(0))

    warm = fit_map(moved, "umap", previous=shown, seed=1)
    cold = fit_map(moved, "umap", seed=1)
    warm_shift = np.linalg.norm(centroids(warm.points, labels) - centroids(shown.points, labels), axis=1).max()
    cold_shift = np.linalg.norm(centroids(cold.points, labels) - centroids(shown.points, labels), axis=1).max()
    assert warm_shift < 0.2 * spread, warm_shift / spread
    assert cold_shift > 0.5 * spread, "the test cannot tell a warm start from a cold one"


def test_the_prior_pushed_through_a_linear_map_has_the_exact_circles_as_contours():
    codes, _ = clustered_codes(2, dim=6)
    linear = fit_map(codes, "pca")  # orthonormal axes: N(0, I) lands as N(centre, I)
    samples = np.random.default_rng(3).standard_normal((4000, 6))
    density = push_density(linear, samples, (1 - np.exp(-0.5), 1 - np.exp(-2.0)))
    assert density.levels[0] > density.levels[1]
    # The density at radius r about the pushed centre falls as exp(-r^2 / 2): its levels cross
    # near radii 1 and 2. Read each level's radius off the grid's cells along rings.
    centre = np.asarray(linear.transform(np.zeros((1, 6))))[0]
    bins = density.density.shape[0]
    xs = np.linspace(*density.x_range, bins + 1)
    ys = np.linspace(*density.y_range, bins + 1)
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    radius = np.hypot(cx[:, None] - centre[0], cy[None, :] - centre[1])
    for level, expected in zip(density.levels, (1.0, 2.0), strict=True):
        inside = radius[density.density >= level]
        assert abs(np.percentile(inside, 95) - expected) < 0.25 * expected


def test_a_posteriors_samples_placed_near_its_mean_land_where_the_full_transform_puts_them():
    codes, _ = clustered_codes(4, n=3000)
    latent_map = fit_map(codes, "umap")
    mean = codes[10].astype(np.float64)
    samples = mean + 0.3 * np.random.default_rng(5).standard_normal((64, codes.shape[1]))
    near = latent_map.transform_near(samples, mean)
    full = latent_map.transform(samples)
    np.testing.assert_allclose(near, full, atol=1e-5)
    # Far from the centre the shortcut is not the full transform: it only holds for samples about it.
    far = mean + 12.0 * np.random.default_rng(6).standard_normal((64, codes.shape[1]))
    assert not np.allclose(latent_map.transform_near(far, mean), latent_map.transform(far), atol=1e-3)
