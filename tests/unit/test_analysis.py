"""The pure analysis modules behind the latent views: planes, paths, codes, lattices, files.

No Qt here. Models are tiny (small hidden layers, 4-d codes) and run on one thread.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from explorer.analysis.export import save_codes, save_npy
from explorer.analysis.grids import tile
from explorer.analysis.interpolation import interpolate, lerp, slerp
from explorer.analysis.latents import (
    LatentStats,
    encode_images,
    gaussian_fit_samples,
    latent_stats,
    pick_subset,
)
from explorer.analysis.manifold import decode_codes, lattice, manifold_codes, manifold_image, traversal_codes
from explorer.analysis.projection import PlaneAxes, pca_axes, raw_axes
from explorer.data.dataset import to_float
from explorer.errors import UserError
from explorer.models.autoencoder import Autoencoder
from explorer.models.losses import kl_per_dimension
from explorer.models.registry import build_model, config_for_data
from explorer.training.runs import model_config_for

pytestmark = pytest.mark.usefixtures("single_thread_torch")

SHAPE = (1, 28, 28)


def make_model(preset: str, seed: int = 0, **overrides: object) -> Autoencoder:
    torch.manual_seed(seed)
    config = config_for_data(model_config_for(preset, **overrides), SHAPE, 10)
    return build_model(config).eval()


def random_images(n: int = 200, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return random_images()


@pytest.fixture
def ae() -> Autoencoder:
    return make_model("ae", latent_dim=4)


@pytest.fixture
def vae() -> Autoencoder:
    model = make_model("vae", latent_dim=4, hidden_dims=(32,))
    # At initialisation the mean codes of noise images barely vary (variance ~0.004, under
    # the VAE's 0.01 activity threshold); a larger mean head makes every unit clearly active.
    with torch.no_grad():
        model.mean_head.weight.mul_(10.0)
    return model


@pytest.fixture
def cvae() -> Autoencoder:
    return make_model("cvae", hidden_dims=(32,))


def kill_dimension(model: Autoencoder, d: int) -> None:
    """Make code dimension ``d`` ignore the input: mean 0 (and log-variance 0: the prior)."""
    with torch.no_grad():
        model.mean_head.weight[d].zero_()
        model.mean_head.bias[d].zero_()
        if model.logvar_head is not None:
            model.logvar_head.weight[d].zero_()
            model.logvar_head.bias[d].zero_()


# -- projection ---------------------------------------------------------------------------

VARIANCES = np.array([25.0, 4.0, 1.0, 0.25, 0.01])


@pytest.fixture(scope="module")
def anisotropic() -> tuple[np.ndarray, np.ndarray]:
    """2000 codes of a 5-d Gaussian with known variances along the columns of a random rotation."""
    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    latent = rng.standard_normal((2000, 5)) * np.sqrt(VARIANCES)
    codes = latent @ rotation.T + np.array([1.0, -2.0, 3.0, 0.5, -0.5])
    return codes, rotation


def test_pca_first_axis_follows_the_largest_variance(anisotropic) -> None:
    codes, rotation = anisotropic
    axes = pca_axes(codes)
    assert abs(float(axes.basis[0] @ rotation[:, 0])) > 0.99
    assert abs(float(axes.basis[1] @ rotation[:, 1])) > 0.99
    np.testing.assert_allclose(axes.origin, codes.mean(axis=0), atol=1e-12)
    assert axes.names == ("PC1", "PC2")
    assert axes.dim == 5


def test_pca_basis_is_orthonormal(anisotropic) -> None:
    axes = pca_axes(anisotropic[0])
    assert axes.basis.shape == (5, 5)
    np.testing.assert_allclose(axes.basis @ axes.basis.T, np.eye(5), atol=1e-10)


def test_pca_explained_fractions_match_the_known_variances(anisotropic) -> None:
    axes = pca_axes(anisotropic[0])
    expected = VARIANCES[:2] / VARIANCES.sum()  # 0.826, 0.132
    assert axes.explained is not None
    np.testing.assert_allclose(axes.explained, expected, atol=0.02)
    # the plane coordinates carry those variances and are uncorrelated
    xy = axes.project(anisotropic[0])
    np.testing.assert_allclose(xy.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(xy.var(axis=0), VARIANCES[:2], rtol=0.1)
    assert abs(np.corrcoef(xy.T)[0, 1]) < 1e-9


def test_pca_signs_are_fixed_by_the_largest_loading(anisotropic) -> None:
    codes = anisotropic[0]
    axes = pca_axes(codes)
    for row in axes.basis:
        assert row[np.abs(row).argmax()] > 0
    # mirrored or shifted data give the same axes (an SVD alone may flip any of them)
    mirrored = pca_axes(-codes)
    np.testing.assert_allclose(mirrored.basis, axes.basis, atol=1e-9)
    np.testing.assert_allclose(mirrored.origin, -axes.origin, atol=1e-12)
    shifted = pca_axes(codes + 10.0)
    np.testing.assert_allclose(shifted.basis, axes.basis, atol=1e-9)
    np.testing.assert_allclose(shifted.origin, axes.origin + 10.0, atol=1e-9)


def test_pca_project_shapes(anisotropic) -> None:
    axes = pca_axes(anisotropic[0])
    assert axes.project(anisotropic[0][:7]).shape == (7, 2)
    one = axes.project(anisotropic[0][3])
    assert one.shape == (2,)
    np.testing.assert_allclose(one, (anisotropic[0][3] - axes.origin) @ axes.basis[:2].T)


def test_lift_of_a_projection_is_the_identity(anisotropic) -> None:
    axes = pca_axes(anisotropic[0])
    rng = np.random.default_rng(3)
    for z in rng.normal(0.0, 3.0, size=(10, 5)):
        back = axes.lift(axes.project(z), z)
        assert back.dtype == np.float32 and back.shape == (5,)
        np.testing.assert_allclose(back, z, rtol=1e-5, atol=1e-5)


def test_lift_keeps_the_reference_off_the_plane(anisotropic) -> None:
    axes = pca_axes(anisotropic[0])
    reference = np.array([0.3, -1.0, 2.0, 4.0, -0.7])
    points = np.array([[0.0, 0.0], [5.0, -2.0], [-3.5, 1.25]])
    lifted = axes.lift(points, reference)
    assert lifted.shape == (3, 5) and lifted.dtype == np.float32
    off_plane = (lifted - axes.origin) @ axes.basis[2:].T
    expected_off = (reference - axes.origin) @ axes.basis[2:].T
    np.testing.assert_allclose(off_plane, np.broadcast_to(expected_off, (3, 3)), atol=1e-5)
    np.testing.assert_allclose(axes.project(lifted), points, atol=1e-5)
    # a single point gives a single code
    single = axes.lift(points[1], reference)
    assert single.shape == (5,)
    np.testing.assert_allclose(single, lifted[1], atol=1e-6)


def test_pca_on_two_dimensional_codes() -> None:
    rng = np.random.default_rng(5)
    direction = np.array([3.0, 4.0]) / 5.0
    codes = rng.standard_normal((500, 1)) * 3.0 * direction + rng.standard_normal((500, 1)) * 0.1 * np.array(
        [-4.0, 3.0]) / 5.0
    axes = pca_axes(codes)
    assert axes.basis.shape == (2, 2)
    np.testing.assert_allclose(axes.basis @ axes.basis.T, np.eye(2), atol=1e-12)
    assert abs(float(axes.basis[0] @ direction)) > 0.999
    assert axes.explained is not None
    assert sum(axes.explained) == pytest.approx(1.0)
    assert axes.explained[0] > 0.99
    # the plane is the whole space: lifting ignores the reference and projects back exactly
    point = np.array([1.5, -0.5])
    a = axes.lift(point, np.zeros(2))
    b = axes.lift(point, np.array([100.0, -50.0]))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(axes.project(a), point, atol=1e-5)


def test_pca_needs_two_dimensions() -> None:
    with pytest.raises(ValueError):
        pca_axes(np.arange(10.0).reshape(10, 1))


def test_pca_of_constant_codes_has_no_explained_fractions() -> None:
    axes = pca_axes(np.full((10, 3), 2.0))
    assert axes.explained is None
    np.testing.assert_allclose(axes.origin, [2.0, 2.0, 2.0])
    np.testing.assert_allclose(axes.basis @ axes.basis.T, np.eye(3), atol=1e-12)


def test_raw_axes_pick_two_code_dimensions() -> None:
    axes = raw_axes(5, 3, 1)
    assert isinstance(axes, PlaneAxes)
    assert axes.names == ("z3", "z1") and axes.explained is None and axes.dim == 5
    z = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    np.testing.assert_array_equal(axes.project(z), [13.0, 11.0])
    np.testing.assert_array_equal(axes.project(np.stack([z, -z])), [[13.0, 11.0], [-13.0, -11.0]])
    lifted = axes.lift(np.array([-1.0, 7.5]), z)
    np.testing.assert_array_equal(lifted, np.array([10.0, 7.5, 12.0, -1.0, 14.0], dtype=np.float32))
    np.testing.assert_array_equal(raw_axes(3).project(np.array([4.0, 5.0, 6.0])), [4.0, 5.0])


@pytest.mark.parametrize("dims", [(1, 1), (5, 0), (0, 5), (-1, 2), (2, -1)])
def test_raw_axes_reject_bad_dimensions(dims: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        raw_axes(5, *dims)


# -- interpolation ------------------------------------------------------------------------


def test_lerp_endpoints_and_midpoint() -> None:
    a, b = np.array([1.0, -2.0, 0.0]), np.array([3.0, 2.0, 10.0])
    path = lerp(a, b, 5)
    assert path.shape == (5, 3) and path.dtype == np.float32
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_allclose(path[2], [2.0, 0.0, 5.0])
    np.testing.assert_allclose(path[1], [1.5, -1.0, 2.5])


def test_slerp_between_orthogonal_unit_vectors() -> None:
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    path = slerp(a, b, 3)
    assert path.shape == (3, 3) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], a, atol=1e-7)
    np.testing.assert_allclose(path[-1], b, atol=1e-7)
    np.testing.assert_allclose(path[1], (a + b) / np.sqrt(2.0), atol=1e-7)
    assert np.linalg.norm(path[1]) == pytest.approx(1.0, abs=1e-6)


def test_slerp_keeps_unit_norm_with_equal_angle_steps() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    path = slerp(a, b, 9).astype(np.float64)
    np.testing.assert_allclose(path[0], a, atol=1e-6)
    np.testing.assert_allclose(path[-1], b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-6)
    omega = np.arccos(a @ b)
    steps = np.arccos(np.clip(np.sum(path[1:] * path[:-1], axis=1), -1, 1))
    np.testing.assert_allclose(steps, omega / 8, atol=1e-3)
    # it stays in the plane of a and b
    plane, _ = np.linalg.qr(np.stack([a, b], axis=1))
    np.testing.assert_allclose(path @ plane @ plane.T, path, atol=1e-6)


def test_slerp_radius_changes_linearly_for_unequal_norms() -> None:
    a, b = np.array([2.0, 0.0]), np.array([0.0, 4.0])
    path = slerp(a, b, 5)
    np.testing.assert_allclose(path[0], a, atol=1e-6)
    np.testing.assert_allclose(path[-1], b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), [2.0, 2.5, 3.0, 3.5, 4.0], atol=1e-6)
    # the middle step is half way round the quarter circle
    np.testing.assert_allclose(path[2], 3.0 * np.array([1.0, 1.0]) / np.sqrt(2.0), atol=1e-6)


@pytest.mark.parametrize("b", [np.array([-2.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]),
                               np.array([3.0, 0.0, 0.0])])
def test_slerp_without_a_unique_arc_falls_back_to_lerp(b: np.ndarray) -> None:
    a = np.array([1.0, 0.0, 0.0])
    path = slerp(a, b, 5)
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path, lerp(a, b, 5), atol=1e-7)


def test_slerp_from_the_centre_falls_back_to_lerp() -> None:
    a, b = np.zeros(3), np.array([1.0, 2.0, 3.0])
    path = slerp(a, b, 4)
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path, lerp(a, b, 4), atol=1e-7)
    c = np.array([1.0, 1.0, 1.0])
    path = slerp(c, b, 4, centre=c)
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path, lerp(c, b, 4), atol=1e-7)


def test_slerp_around_a_centre_is_a_shifted_slerp() -> None:
    rng = np.random.default_rng(2)
    a, b, c = rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(6)
    around = slerp(a, b, 7, centre=c)
    np.testing.assert_allclose(around, c + slerp(a - c, b - c, 7), atol=1e-5)
    np.testing.assert_allclose(around[0], a, atol=1e-6)
    np.testing.assert_allclose(around[-1], b, atol=1e-6)
    # and it is not the same path as around the origin
    assert not np.allclose(around, slerp(a, b, 7), atol=1e-3)


def test_interpolate_dispatches_and_validates() -> None:
    a, b, c = np.array([1.0, 0.0]), np.array([0.0, 3.0]), np.array([0.5, 0.5])
    np.testing.assert_array_equal(interpolate(a, b, 6), lerp(a, b, 6))
    np.testing.assert_array_equal(interpolate(a, b, 6, "linear"), lerp(a, b, 6))
    np.testing.assert_array_equal(interpolate(a, b, 6, "spherical"), slerp(a, b, 6))
    np.testing.assert_array_equal(interpolate(a, b, 6, "spherical", centre=c), slerp(a, b, 6, c))
    assert not np.allclose(interpolate(a, b, 6, "spherical"), interpolate(a, b, 6, "linear"))
    assert interpolate(a, b, 2).shape == (2, 2)
    for steps in (1, 0, -3):
        with pytest.raises(ValueError):
            interpolate(a, b, steps)
    with pytest.raises(ValueError, match="cubic"):
        interpolate(a, b, 5, "cubic")


# -- latent statistics ---------------------------------------------------------------------


def mean_codes(model: Autoencoder, images: torch.Tensor, labels: torch.Tensor | None = None):
    with torch.no_grad():
        dist = model.encode(to_float(images), labels)
    return dist.mean.numpy(), None if dist.logvar is None else dist.logvar


def test_encode_images_in_batches_matches_one_pass(vae: Autoencoder, images: torch.Tensor) -> None:
    means, logvars = encode_images(vae, images, batch_size=64)
    with torch.no_grad():
        dist = vae.encode(to_float(images))
    assert means.shape == (200, 4) and logvars is not None and logvars.shape == (200, 4)
    torch.testing.assert_close(means, dist.mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logvars, dist.logvar, atol=1e-5, rtol=1e-5)
    ae_means, ae_logvars = encode_images(make_model("ae", latent_dim=4), images, batch_size=1000)
    assert ae_logvars is None and ae_means.shape == (200, 4)


def test_latent_stats_of_a_vae(vae: Autoencoder, images: torch.Tensor) -> None:
    stats = latent_stats(vae, images, limit=None)
    codes, logvar = mean_codes(vae, images)
    assert stats.codes.dtype == np.float32 and stats.codes.shape == (200, 4) and stats.dim == 4
    np.testing.assert_allclose(stats.codes, codes, atol=1e-5)
    np.testing.assert_array_equal(stats.indices, np.arange(200))
    assert stats.labels is None
    np.testing.assert_allclose(stats.mean, codes.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(stats.std, codes.std(axis=0), rtol=1e-4)
    expected_kl = kl_per_dimension(torch.from_numpy(codes), logvar).numpy()
    assert stats.kl is not None and stats.kl.shape == (4,)
    np.testing.assert_allclose(stats.kl, expected_kl, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(stats.order, np.argsort(-expected_kl))
    assert np.all(np.diff(stats.kl[stats.order]) <= 0)
    assert stats.active.tolist() == [True, True, True, True]


def test_a_dead_vae_dimension_is_inactive_and_last(vae: Autoencoder, images: torch.Tensor) -> None:
    kill_dimension(vae, 1)
    stats = latent_stats(vae, images, limit=None)
    np.testing.assert_array_equal(stats.codes[:, 1], 0.0)
    assert stats.std[1] == 0.0
    assert stats.kl is not None and stats.kl[1] == pytest.approx(0.0, abs=1e-7)
    assert (stats.kl[[0, 2, 3]] > 0).all()
    assert stats.active.tolist() == [True, False, True, True]
    assert stats.order[-1] == 1
    assert sorted(stats.order.tolist()) == [0, 1, 2, 3]


def test_latent_stats_of_a_plain_autoencoder(ae: Autoencoder, images: torch.Tensor) -> None:
    # give the rows clearly different spreads so the variance order is known: 1, 2, 0, 3
    with torch.no_grad():
        ae.mean_head.weight.mul_(torch.tensor([1.0, 8.0, 3.0, 0.0])[:, None])
    stats = latent_stats(ae, images, limit=None)
    codes, logvar = mean_codes(ae, images)
    assert logvar is None and stats.kl is None
    np.testing.assert_allclose(stats.codes, codes, atol=1e-5)
    np.testing.assert_allclose(stats.mean, codes.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(stats.std, codes.std(axis=0), rtol=1e-4, atol=1e-7)
    assert stats.order.tolist() == [1, 2, 0, 3]
    np.testing.assert_array_equal(stats.order, np.argsort(-codes.var(axis=0)))
    # dimension 3 has zero weights (only its bias): it does not vary (up to float32
    # rounding of the mean of a constant column), so it is inactive
    assert stats.std[3] < 1e-6
    assert stats.active.tolist() == [True, True, True, False]


def test_a_dead_autoencoder_dimension_is_inactive(ae: Autoencoder, images: torch.Tensor) -> None:
    kill_dimension(ae, 2)
    stats = latent_stats(ae, images, limit=None)
    np.testing.assert_array_equal(stats.codes[:, 2], 0.0)
    assert stats.active.tolist() == [True, True, False, True]
    assert stats.order[-1] == 2


def test_latent_stats_limit_takes_a_seeded_sorted_subset(ae: Autoencoder, images: torch.Tensor) -> None:
    stats = latent_stats(ae, images, limit=50, seed=3)
    assert stats.indices.dtype == np.int64 and len(stats.indices) == 50
    assert np.all(np.diff(stats.indices) > 0)  # sorted and distinct
    assert 0 <= stats.indices.min() and stats.indices.max() < 200
    np.testing.assert_array_equal(stats.indices, pick_subset(200, 50, 3))
    np.testing.assert_allclose(stats.codes, mean_codes(ae, images[torch.from_numpy(stats.indices)])[0], atol=1e-5)
    again = latent_stats(ae, images, limit=50, seed=3)
    np.testing.assert_array_equal(again.indices, stats.indices)
    np.testing.assert_array_equal(again.codes, stats.codes)
    other = latent_stats(ae, images, limit=50, seed=4)
    assert not np.array_equal(other.indices, stats.indices)
    # a limit at or above the count keeps everything in order
    np.testing.assert_array_equal(latent_stats(ae, images, limit=200).indices, np.arange(200))


def test_pick_subset() -> None:
    np.testing.assert_array_equal(pick_subset(5, None), np.arange(5))
    np.testing.assert_array_equal(pick_subset(5, 5), np.arange(5))
    np.testing.assert_array_equal(pick_subset(5, 10), np.arange(5))
    sub = pick_subset(1000, 10, seed=9)
    assert sub.dtype == np.int64 and len(sub) == 10 and len(set(sub.tolist())) == 10
    assert sub.tolist() == sorted(sub.tolist())
    np.testing.assert_array_equal(sub, pick_subset(1000, 10, seed=9))


def test_latent_stats_of_a_conditional_model_needs_labels(cvae: Autoencoder, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="labels"):
        latent_stats(cvae, images)
    labels = torch.arange(200) % 10
    stats = latent_stats(cvae, images, labels, limit=60, seed=1)
    assert stats.labels is not None and stats.labels.dtype == np.int64
    np.testing.assert_array_equal(stats.labels, labels.numpy()[stats.indices])
    idx = torch.from_numpy(stats.indices)
    np.testing.assert_allclose(stats.codes, mean_codes(cvae, images[idx], labels[idx])[0], atol=1e-5)
    # the codes depend on the labels, so the labels really went in
    shifted = latent_stats(cvae, images, (labels + 1) % 10, limit=60, seed=1)
    assert not np.allclose(shifted.codes, stats.codes)


def make_stats(codes: np.ndarray) -> LatentStats:
    codes = codes.astype(np.float32)
    dim = codes.shape[1]
    return LatentStats(codes=codes, labels=None, indices=np.arange(len(codes)), mean=codes.mean(0),
                       std=codes.std(0), kl=None, order=np.arange(dim), active=np.ones(dim, bool))


def test_slider_range_is_mean_plus_minus_three_std() -> None:
    stats = LatentStats(codes=np.zeros((2, 3), np.float32), labels=None, indices=np.arange(2),
                        mean=np.array([1.0, -2.0, 0.5], np.float32), std=np.array([0.5, 0.0, 2.0], np.float32),
                        kl=None, order=np.arange(3), active=np.ones(3, bool))
    assert stats.slider_range(0) == pytest.approx((-0.5, 2.5))
    assert stats.slider_range(2) == pytest.approx((-5.5, 6.5))
    assert stats.slider_range(0, spread=2.0) == pytest.approx((0.0, 2.0))
    # a dimension that never varies still gets a (tiny) range, never an empty one
    lo, hi = stats.slider_range(1)
    assert lo < -2.0 < hi
    assert (lo, hi) == pytest.approx((-2.003, -1.997))


def test_gaussian_fit_samples_match_the_codes_moments() -> None:
    rng = np.random.default_rng(4)
    mixing = np.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [-0.5, 0.3, 0.2]])
    stats = make_stats(rng.standard_normal((500, 3)) @ mixing.T + np.array([1.0, -1.0, 3.0]))
    samples = gaussian_fit_samples(stats, 40_000, seed=0)
    assert samples.shape == (40_000, 3) and samples.dtype == np.float32
    np.testing.assert_allclose(samples.mean(axis=0), stats.mean, atol=0.03)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), np.cov(stats.codes, rowvar=False), atol=0.06)
    np.testing.assert_array_equal(gaussian_fit_samples(stats, 10, seed=5), gaussian_fit_samples(stats, 10, seed=5))
    assert not np.array_equal(gaussian_fit_samples(stats, 10, seed=5), gaussian_fit_samples(stats, 10, seed=6))


def test_gaussian_fit_samples_in_one_dimension() -> None:
    stats = make_stats(np.random.default_rng(0).normal(2.0, 0.5, size=(300, 1)))
    samples = gaussian_fit_samples(stats, 20_000, seed=1)
    assert samples.shape == (20_000, 1)
    assert samples.mean() == pytest.approx(float(stats.mean[0]), abs=0.02)
    assert samples.std() == pytest.approx(float(np.std(stats.codes, ddof=1)), rel=0.03)


# -- lattices, tiles, decoding ----------------------------------------------------------------


def test_lattice_centres_in_reading_order() -> None:
    np.testing.assert_allclose(lattice((0, 1), (0, 2), 2),
                               [[0.25, 1.5], [0.75, 1.5], [0.25, 0.5], [0.75, 0.5]])
    np.testing.assert_allclose(lattice((-1, 1), (-3, 3), 1), [[0.0, 0.0]])
    points = lattice((-1, 2), (0, 3), 3)
    assert points.shape == (9, 2)
    np.testing.assert_allclose(points[:3, 1], 2.5)  # top row first
    np.testing.assert_allclose(points[:3, 0], [-0.5, 0.5, 1.5])
    np.testing.assert_allclose(points[-1], [1.5, 0.5])


def test_tile_places_image_k_at_row_k_div_cols() -> None:
    images = np.arange(6 * 1 * 4 * 5, dtype=np.float32).reshape(6, 1, 4, 5)
    out = tile(images, 2, 3)
    assert out.shape == (8, 15)
    for k in range(6):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(out[r * 4:(r + 1) * 4, c * 5:(c + 1) * 5], images[k, 0])
    constant = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((6, 1, 2, 2), np.float32)
    np.testing.assert_array_equal(tile(constant, 2, 3), [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2],
                                                         [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]])


def test_tile_of_colour_images() -> None:
    images = np.arange(6 * 3 * 4 * 5, dtype=np.float32).reshape(6, 3, 4, 5)
    out = tile(images, 3, 2)
    assert out.shape == (12, 10, 3)
    for k in range(6):
        r, c = divmod(k, 2)
        np.testing.assert_array_equal(out[r * 4:(r + 1) * 4, c * 5:(c + 1) * 5], images[k].transpose(1, 2, 0))


def test_tile_needs_exactly_rows_times_cols_images() -> None:
    with pytest.raises(ValueError):
        tile(np.zeros((6, 1, 4, 4)), 2, 2)
    with pytest.raises(ValueError):
        tile(np.zeros((6, 1, 4, 4)), 3, 3)


def test_decode_codes_matches_the_model(ae: Autoencoder) -> None:
    codes = np.random.default_rng(0).normal(size=(5, 4))  # float64 in: converted
    out = decode_codes(ae, codes)
    assert out.shape == (5, 1, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    with torch.no_grad():
        expected = ae.decode(torch.from_numpy(codes.astype(np.float32))).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # a model without classes ignores the label
    np.testing.assert_array_equal(decode_codes(ae, codes, label=3), out)


def test_decode_codes_of_a_conditional_model_draws_the_label(cvae: Autoencoder) -> None:
    assert cvae.is_conditional and cvae.config.num_classes == 10
    codes = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32)
    zero, three = decode_codes(cvae, codes, label=0), decode_codes(cvae, codes, label=3)
    assert zero.shape == (4, 1, 28, 28)
    assert np.abs(zero - three).max() > 1e-4
    np.testing.assert_array_equal(decode_codes(cvae, codes), zero)
    with torch.no_grad():
        expected = cvae.decode(torch.from_numpy(codes), torch.full((4,), 3)).numpy()
    np.testing.assert_allclose(three, expected, atol=1e-6)


def test_manifold_image_tiles_the_decoded_lattice(ae: Autoencoder) -> None:
    axes = raw_axes(4, 2, 0)
    reference = np.array([0.5, -0.25, 0.1, 1.0], dtype=np.float32)
    picture = manifold_image(ae, axes, reference, (-1.0, 1.0), (-2.0, 2.0), 3)
    assert picture.shape == (84, 84) and picture.dtype == np.float32
    codes = axes.lift(lattice((-1.0, 1.0), (-2.0, 2.0), 3), reference)
    np.testing.assert_array_equal(picture, tile(decode_codes(ae, codes), 3, 3))

    def decoded(z2: float, z0: float) -> np.ndarray:
        z = reference.copy()
        z[2], z[0] = z2, z0
        with torch.no_grad():
            return ae.decode(torch.from_numpy(z[None])).numpy()[0, 0]

    # top left: smallest x (z2), largest y (z0); bottom right: largest x, smallest y
    np.testing.assert_allclose(picture[:28, :28], decoded(-2 / 3, 4 / 3), atol=1e-5)
    np.testing.assert_allclose(picture[56:, 56:], decoded(2 / 3, -4 / 3), atol=1e-5)
    np.testing.assert_allclose(picture[28:56, 28:56], decoded(0.0, 0.0), atol=1e-5)


def test_manifold_codes_lift_the_lattice_with_the_reference() -> None:
    axes = raw_axes(3, 2, 0)
    reference = np.array([9.0, 5.0, 7.0], dtype=np.float32)
    codes = manifold_codes(axes, reference, (-1.0, 1.0), (0.0, 2.0), 2)
    # plane x is z2, plane y is z0; z1 keeps the reference's value; top row (largest y) first
    np.testing.assert_allclose(codes, [[1.5, 5.0, -0.5], [1.5, 5.0, 0.5], [0.5, 5.0, -0.5], [0.5, 5.0, 0.5]])


def test_manifold_image_of_a_conditional_model_uses_the_label(cvae: Autoencoder) -> None:
    axes = raw_axes(2)
    reference = np.zeros(2, np.float32)
    zero = manifold_image(cvae, axes, reference, (-2, 2), (-2, 2), 2)
    seven = manifold_image(cvae, axes, reference, (-2, 2), (-2, 2), 2, label=7)
    assert zero.shape == seven.shape == (56, 56)
    assert np.abs(zero - seven).max() > 1e-4
    np.testing.assert_array_equal(manifold_image(cvae, axes, reference, (-2, 2), (-2, 2), 2, label=0), zero)


def test_traversal_codes_sweep_one_dimension_per_row() -> None:
    code = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    out = traversal_codes(code, [2, 0], [(-1.0, 1.0), (5.0, 6.0)], 5)
    assert out.shape == (10, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[:5, 2], [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(out[5:, 0], [5.0, 5.25, 5.5, 5.75, 6.0])
    np.testing.assert_array_equal(out[:5, [0, 1, 3]], np.broadcast_to(code[[0, 1, 3]], (5, 3)))
    np.testing.assert_array_equal(out[5:, [1, 2, 3]], np.broadcast_to(code[[1, 2, 3]], (5, 3)))
    np.testing.assert_array_equal(code, np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))  # untouched
    assert traversal_codes(code, [], [], 5).shape == (0, 4)
    with pytest.raises(ValueError):
        traversal_codes(code, [0, 1], [(0.0, 1.0)], 5)


# -- export -------------------------------------------------------------------------------------

CODES = np.array([[0.5, -1.25, 3.0], [1 / 3, 2.0, 1234567.0]])


def read_csv(path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_save_codes_csv_with_labels(tmp_path) -> None:
    path = tmp_path / "codes.csv"
    save_codes(path, CODES, labels=np.array([7, 2]))
    assert read_csv(path) == [["label", "z0", "z1", "z2"],
                              ["7", "0.5", "-1.25", "3"],
                              ["2", "0.333333", "2", "1.23457e+06"]]


def test_save_codes_csv_without_labels(tmp_path) -> None:
    path = tmp_path / "codes.CSV"
    save_codes(path, CODES, labels=None)
    rows = read_csv(path)
    assert rows[0] == ["z0", "z1", "z2"]
    assert rows[1:] == [["0.5", "-1.25", "3"], ["0.333333", "2", "1.23457e+06"]]
    np.testing.assert_allclose(np.array(rows[1:], dtype=float), CODES, rtol=5e-6)  # 6 significant digits


def test_save_codes_npy_round_trip(tmp_path) -> None:
    path = tmp_path / "codes.npy"
    save_codes(path, CODES, labels=[1, 2])
    loaded = np.load(path)
    assert loaded.dtype == np.float32 and loaded.shape == (2, 3)
    np.testing.assert_array_equal(loaded, CODES.astype(np.float32))
    other = tmp_path / "plain.npy"
    save_npy(other, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.load(other), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.load(other).dtype == np.float32


@pytest.mark.parametrize("name", ["codes.txt", "codes", "codes.npz"])
def test_save_codes_rejects_other_suffixes(tmp_path, name: str) -> None:
    with pytest.raises(UserError, match=r"\.npy or \.csv"):
        save_codes(tmp_path / name, CODES)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["codes.csv", "codes.npy"])
def test_save_codes_into_a_missing_folder_is_a_user_error(tmp_path, name: str) -> None:
    target = tmp_path / "no-such-folder" / name
    with pytest.raises(UserError, match="could not write"):
        save_codes(target, CODES)
    assert not target.parent.exists()


def test_save_npy_into_a_missing_folder_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="could not write"):
        save_npy(tmp_path / "missing" / "a.npy", CODES)
