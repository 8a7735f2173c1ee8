"""Latent maps (explorer.analysis.maps, explorer.fit_map): a UMAP-style neighbour map pulls
apart clusters that PCA piles up, every map has an inverse, and far points are flagged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer
from explorer.analysis.maps import fit_map

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def blobs(n_per: int = 60, clusters: int = 8, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (clusters, dim))
    codes = np.concatenate([c + rng.normal(0, 0.6, (n_per, dim)) for c in centres]).astype(np.float32)
    return codes, np.repeat(np.arange(clusters), n_per)


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    idx = np.argsort(d2, 1)[:, :k]
    return float((np.array([np.bincount(labels[i]).argmax() for i in idx]) == labels).mean())


@pytest.fixture(scope="module")
def maps():
    codes, labels = blobs()
    return codes, labels, fit_map(codes, "pca"), fit_map(codes, "umap", seed=1)


def test_the_neighbour_map_separates_what_pca_piles_up(maps) -> None:
    codes, labels, pca, umap = maps
    assert umap.points.shape == (len(codes), 2) and np.isfinite(umap.points).all()
    assert knn_accuracy(umap.points, labels) > 0.97
    assert knn_accuracy(umap.points, labels) > knn_accuracy(pca.points, labels)
    assert umap.fit_seconds > 0 and pca.fit_seconds >= 0


def test_every_map_goes_back_to_codes(maps) -> None:
    codes, labels, pca, umap = maps
    back = pca.inverse(pca.transform(codes))
    origin, axes = pca.linear
    np.testing.assert_allclose(back, origin + (codes - origin) @ axes.T @ axes, atol=1e-4)
    # The neighbour map's inverse lands in the right cluster: nearer its own centre than any other.
    back = umap.inverse(umap.points)
    centres = np.stack([codes[labels == c].mean(0) for c in range(labels.max() + 1)])
    nearest = np.argmin(((back[:, None] - centres[None]) ** 2).sum(-1), 1)
    assert (nearest == labels).mean() > 0.97


def test_far_points_are_flagged_as_extrapolated(maps) -> None:
    _, _, _, umap = maps
    inside = umap.points[:5]
    far = umap.points.max(0) + 50 * umap.scale
    _, distance = umap.inverse_with_confidence(np.vstack([inside, far[None]]))
    assert (distance[:5] < 0.1).all() and distance[5] > 3


def test_numpy_in_numpy_out_torch_in_torch_out(maps) -> None:
    codes, _, pca, umap = maps
    for m in (pca, umap):
        assert isinstance(m.transform(codes[:3]), np.ndarray)
        out = m.inverse(torch.zeros(4, 2, dtype=torch.float64))
        assert isinstance(out, torch.Tensor) and out.shape == (4, 16) and out.dtype == torch.float64
        assert isinstance(m.transform(torch.from_numpy(codes[:2])), torch.Tensor)


def test_a_refresh_starts_from_the_last_map(maps) -> None:
    codes, _, _, umap = maps
    again = fit_map(codes + 0.01, "umap", previous=umap, seed=2)
    moved = np.linalg.norm(again.points - umap.points, axis=1)
    spread = np.linalg.norm(umap.points - umap.points.mean(0), axis=1).mean()
    assert np.median(moved) < 0.5 * spread, "clusters jumped on a refresh"


def test_bad_requests_are_one_line() -> None:
    with pytest.raises(ValueError, match="unknown map"):
        fit_map(np.zeros((10, 3)), "tsne-xl")
    with pytest.raises(ValueError, match="at least three"):
        fit_map(np.zeros((2, 3)), "pca")


def test_fit_map_through_the_api(mnist_300) -> None:
    model = explorer.train("ae", data=mnist_300, epochs=1, latent_dim=6, batch_size=50, timeline=False)
    fitted = explorer.fit_map(model, mnist_300.test_images.numpy(), method="pca")
    assert fitted.points.shape == (300, 2) and fitted.dim == 6
    assert fitted.inverse(np.zeros((1, 2))).shape == (1, 6)


def test_the_layouts_closed_form_gradient_is_the_losss_gradient() -> None:
    """The layout steps with the gradient of UMAP's loss worked out by hand (NumPy, no
    autograd): it must agree with autograd on that loss, clamps included."""
    from explorer.analysis.maps import _layout_gradient

    rng = np.random.default_rng(3)
    n, a, b = 40, 1.58, 0.9
    coords = rng.normal(0, 2, (2, n)).astype(np.float32)
    coords[:, 1] = coords[:, 0]  # a pair at distance 0: the d2 floor, and repulsion under the loss's clamp
    coords[:, 2] = coords[:, 0] + 400.0  # a far pair: a vanishing pull and push
    h, t = rng.integers(0, n, 120), rng.integers(0, n, 120)
    h[:2], t[:2] = 0, (1, 2)
    hn = np.tile(h, 5)
    r = rng.integers(0, n, len(hn))
    r[:2] = (1, 2)
    y = torch.tensor(coords.T, dtype=torch.float64, requires_grad=True)
    hh, tt, hhn, rr = (torch.from_numpy(v) for v in (h, t, hn, r))
    d2 = ((y[hh] - y[tt]) ** 2).sum(1)
    attract = torch.log1p(a * d2.clamp(min=1e-8) ** b)
    d2n = ((y[hhn] - y[rr]) ** 2).sum(1)
    repel = -torch.log((1 - 1 / (1 + a * d2n.clamp(min=1e-8) ** b)).clamp(min=1e-4))
    (attract.mean() + repel.mean()).backward()
    np.testing.assert_allclose(_layout_gradient(coords, h, t, hn, r, a, b), y.grad.numpy().T, rtol=2e-3, atol=1e-6)


def test_a_fit_is_repeatable_and_stops_when_cancelled(maps) -> None:
    import threading

    from explorer.cancellation import Cancelled, cancellable

    codes, _, _, umap = maps
    np.testing.assert_array_equal(fit_map(codes, "umap", seed=1).points, umap.points)
    flag = threading.Event()
    flag.set()
    with cancellable(flag), pytest.raises(Cancelled):
        fit_map(codes, "umap", seed=1)


def test_a_map_of_many_codes_lays_out_a_subset_and_blends_in_the_rest(monkeypatch) -> None:
    from explorer.analysis import maps as maps_module

    monkeypatch.setattr(maps_module, "MAX_FIT_POINTS", 200)
    codes, labels = blobs(n_per=60)
    fitted = fit_map(codes, "umap", seed=0)
    assert fitted.points.shape == (len(codes), 2) and np.isfinite(fitted.points).all()
    assert knn_accuracy(fitted.points, labels) > 0.95  # the blended-in points land among their own
