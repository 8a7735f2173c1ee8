"""The latent-space numbers (explorer.analysis.latent_metrics) on cases small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.analysis.latent_metrics import (
    active_units,
    knn_accuracy,
    label_efficiency,
    labelled_subset,
    linear_probe_accuracy,
    reconstruction_quality,
)
from explorer.config import ModelConfig
from explorer.models.autoencoder import Autoencoder

# -- active units ----------------------------------------------------------------------------


def test_active_units_counts_dimensions_varying_more_than_the_threshold() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    codes = np.zeros((n, 5))
    codes[:, 0] = rng.normal(0, 1.0, n)  # variance 1: active
    codes[:, 1] = rng.normal(0, 0.3, n)  # variance 0.09: active
    codes[:, 2] = rng.normal(0, 0.05, n)  # variance 0.0025: inactive
    codes[:, 3] = 7.0  # constant: inactive
    codes[:, 4] = rng.choice([-0.2, 0.2], n)  # variance 0.04: active
    assert active_units(codes) == 3
    assert active_units(codes, threshold=0.05) == 2
    assert active_units(codes, threshold=2.0) == 0


def test_active_units_threshold_is_strict() -> None:
    # variance exactly 0.04 for +/-0.2; a threshold of 0.04 does not count it (strictly greater)
    codes = np.array([[-0.2], [0.2]] * 10)
    assert np.isclose(codes.var(axis=0)[0], 0.04)
    assert active_units(codes, threshold=0.0401) == 0
    assert active_units(codes, threshold=0.0399) == 1


# -- labelled subsets ------------------------------------------------------------------------


def _labels(per_class: int = 50, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(3).permutation(np.repeat(np.arange(classes), per_class))


def test_labelled_subset_is_balanced_across_classes() -> None:
    labels = _labels()
    rows = labelled_subset(labels, 100, seed=0)
    assert rows.size == 100
    assert np.unique(rows).size == 100  # no index twice
    assert np.array_equal(np.bincount(labels[rows], minlength=10), np.full(10, 10))
    assert np.all(np.diff(rows) > 0)  # sorted


def test_labelled_subset_is_seeded() -> None:
    labels = _labels()
    a = labelled_subset(labels, 100, seed=0)
    b = labelled_subset(labels, 100, seed=0)
    c = labelled_subset(labels, 100, seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(np.bincount(labels[c], minlength=10), np.full(10, 10))


def test_labelled_subset_none_or_too_many_gives_every_index() -> None:
    labels = _labels(per_class=5)
    assert np.array_equal(labelled_subset(labels, None), np.arange(50))
    assert np.array_equal(labelled_subset(labels, 50), np.arange(50))
    assert np.array_equal(labelled_subset(labels, 500), np.arange(50))


def test_labelled_subset_fills_from_other_classes_when_one_is_short() -> None:
    # class 0 has 2 images, class 1 has 40: 10 each is asked, class 0 gives 2, the rest come from class 1
    labels = np.array([0] * 2 + [1] * 40)
    rows = labelled_subset(labels, 20, seed=0)
    assert rows.size == 20 and np.unique(rows).size == 20
    assert np.bincount(labels[rows], minlength=2).tolist() == [2, 18]


# -- k-NN --------------------------------------------------------------------------------------


def _centres(classes: int = 4, dim: int = 3) -> np.ndarray:
    """Fixed, well-separated class centres (the same for the train and test draws)."""
    return np.random.default_rng(99).normal(0, 10, (classes, dim))


def _clusters(n_per: int, classes: int = 4, dim: int = 3, spread: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = _centres(classes, dim)
    labels = np.repeat(np.arange(classes), n_per)
    codes = centres[labels] + rng.normal(0, spread, (labels.size, dim))
    return codes.astype(np.float32), labels


def test_knn_on_separated_clusters_is_perfect() -> None:
    train, train_y = _clusters(20, seed=0)
    test, test_y = _clusters(10, seed=1)
    assert knn_accuracy(train, train_y, test, test_y) == 1.0
    # wrong labels on the test side: every one misses
    assert knn_accuracy(train, train_y, test, (test_y + 1) % 4) == 0.0


def test_knn_majority_vote_by_count() -> None:
    # 1-D codes; the query at 0 sees class 0 at distance 1 and class 1 twice further out: 2 votes beat 1
    train = np.array([[1.0], [2.0], [3.0], [50.0]], dtype=np.float32)
    train_y = np.array([0, 1, 1, 0])
    query = np.array([[0.0]], dtype=np.float32)
    assert knn_accuracy(train, train_y, query, np.array([1]), k=3) == 1.0
    assert knn_accuracy(train, train_y, query, np.array([0]), k=1) == 1.0  # only the nearest votes


def test_knn_tie_goes_to_the_nearer_neighbour() -> None:
    # k=4, two votes each: ranks 0 and 2 belong to one class, ranks 1 and 3 to the other
    train = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    query = np.array([[0.0]], dtype=np.float32)
    assert knn_accuracy(train, np.array([0, 1, 0, 1]), query, np.array([0]), k=4) == 1.0
    assert knn_accuracy(train, np.array([1, 0, 1, 0]), query, np.array([1]), k=4) == 1.0
    # the same with the higher class index nearest, so it cannot win by argmax order alone
    assert knn_accuracy(train, np.array([3, 2, 3, 2]), query, np.array([3]), k=4) == 1.0
    # ranks 0 and 3 against ranks 1 and 2: the class holding the nearest neighbour wins
    assert knn_accuracy(train, np.array([1, 0, 0, 1]), query, np.array([1]), k=4) == 1.0
    assert knn_accuracy(train, np.array([0, 1, 1, 0]), query, np.array([0]), k=4) == 1.0


def test_knn_k_larger_than_the_reference_set_uses_every_reference() -> None:
    train = np.array([[0.0], [1.0], [10.0]], dtype=np.float32)
    train_y = np.array([1, 1, 0])
    query = np.array([[9.0]], dtype=np.float32)  # nearest is class 0, but all 3 vote: class 1 wins 2-1
    assert knn_accuracy(train, train_y, query, np.array([1]), k=50) == 1.0


def test_knn_counts_a_fraction_over_more_than_one_chunk() -> None:
    # 2500 queries cross the 1000-query chunks; the first 500 get a wrong label
    train, train_y = _clusters(10, seed=0)
    rng = np.random.default_rng(5)
    test_y = rng.integers(0, 4, 2500)
    test = _centres()[test_y].astype(np.float32)
    wrong = test_y.copy()
    wrong[:500] = (wrong[:500] + 1) % 4
    assert knn_accuracy(train, train_y, test, wrong) == pytest.approx(0.8)


# -- linear probe ----------------------------------------------------------------------------


def test_linear_probe_on_separable_data_is_perfect() -> None:
    train, train_y = _clusters(30, classes=4, dim=3, spread=0.5, seed=0)
    test, test_y = _clusters(15, classes=4, dim=3, spread=0.5, seed=1)
    assert linear_probe_accuracy(train, train_y, test, test_y) == 1.0


def test_linear_probe_on_a_halfspace_split_is_perfect() -> None:
    # labels from the sign of a fixed direction, with a margin: linearly separable, not clustered
    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5, 0.0])

    def draw(n: int):
        x = rng.normal(0, 1, (n, 4))
        x = x[np.abs(x @ w) > 0.3]
        return x, (x @ w > 0).astype(np.int64)

    train, train_y = draw(400)
    test, test_y = draw(200)
    assert linear_probe_accuracy(train, train_y, test, test_y) == 1.0


def test_linear_probe_on_random_labels_is_near_chance() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, (600, 16))
    test = rng.normal(0, 1, (600, 16))
    accuracy = linear_probe_accuracy(train, rng.integers(0, 10, 600), test, rng.integers(0, 10, 600))
    assert 0.0 <= accuracy < 0.3


def test_linear_probe_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    train, test = rng.normal(0, 1, (200, 5)), rng.normal(0, 1, (100, 5))
    train_y, test_y = rng.integers(0, 3, 200), rng.integers(0, 3, 100)
    a = linear_probe_accuracy(train, train_y, test, test_y)
    assert a == linear_probe_accuracy(train, train_y, test, test_y)


# -- label efficiency ------------------------------------------------------------------------


def test_label_efficiency_skips_budgets_not_below_the_training_codes() -> None:
    train, train_y = _clusters(75, classes=4, dim=3, seed=0)  # 300 codes: 100 and all, no 1000
    test, test_y = _clusters(10, classes=4, dim=3, seed=1)
    out = label_efficiency(train, train_y, test, test_y)
    assert set(out) == {"knn_acc_100", "probe_acc_100", "knn_acc_all", "probe_acc_all"}
    assert all(v == 1.0 for v in out.values()), out


def test_label_efficiency_with_enough_codes_has_every_budget() -> None:
    train, train_y = _clusters(300, classes=4, dim=3, seed=0)  # 1200 codes
    test, test_y = _clusters(5, classes=4, dim=3, seed=1)
    out = label_efficiency(train, train_y, test, test_y)
    assert set(out) == {f"{m}_acc_{b}" for m in ("knn", "probe") for b in ("100", "1000", "all")}
    assert all(0.0 <= v <= 1.0 for v in out.values())


def test_label_efficiency_budget_equal_to_the_codes_is_skipped() -> None:
    train, train_y = _clusters(25, classes=4, dim=3, seed=0)  # exactly 100 codes
    test, test_y = _clusters(5, classes=4, dim=3, seed=1)
    assert set(label_efficiency(train, train_y, test, test_y)) == {"knn_acc_all", "probe_acc_all"}


def test_label_efficiency_uses_the_balanced_subset() -> None:
    # the same seed gives the same numbers; 100 balanced labels (25 per class) suffice on clusters
    train, train_y = _clusters(100, classes=4, dim=3, seed=0)
    test, test_y = _clusters(5, classes=4, dim=3, seed=1)
    a = label_efficiency(train, train_y, test, test_y, seed=0)
    b = label_efficiency(train, train_y, test, test_y, seed=0)
    assert a == b
    assert a["knn_acc_100"] == 1.0


# -- reconstruction quality ------------------------------------------------------------------


@pytest.fixture
def tiny_model() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(latent_dim=2, hidden_dims=(8,)))


def _images(n: int = 7) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_exact_reconstructions_have_zero_error_and_infinite_psnr(tiny_model, monkeypatch) -> None:
    monkeypatch.setattr(tiny_model, "reconstruct", lambda x, y=None: x.clone())
    tiny_model.train()
    out = reconstruction_quality(tiny_model, _images(), None, batch_size=3)
    assert out["recon_mse"] == 0.0
    assert out["psnr"] == math.inf
    assert tiny_model.training  # put back as it was


def test_a_constant_offset_gives_the_formula(tiny_model, monkeypatch) -> None:
    offset = 0.1
    monkeypatch.setattr(tiny_model, "reconstruct", lambda x, y=None: x + offset)
    out = reconstruction_quality(tiny_model, _images(), None, batch_size=3)
    assert out["recon_mse"] == pytest.approx(offset ** 2, rel=1e-4)
    assert out["psnr"] == pytest.approx(10 * math.log10(1 / offset ** 2), rel=1e-4)  # 20 dB


def test_psnr_is_the_mean_over_images_ignoring_exact_copies(tiny_model, monkeypatch) -> None:
    # image 0 copied exactly (infinite PSNR, left out of the mean); images 1-3 off by 0.1 and 0.01
    offsets = torch.tensor([0.0, 0.1, 0.01, 0.1]).view(4, 1, 1, 1)
    seen = []

    def reconstruct(x, y=None):
        seen.append(x.shape[0])
        return x + offsets[: x.shape[0]] if len(seen) == 1 else x + offsets[2:]

    monkeypatch.setattr(tiny_model, "reconstruct", reconstruct)
    out = reconstruction_quality(tiny_model, _images(4), None, batch_size=2)
    assert seen == [2, 2]
    assert out["recon_mse"] == pytest.approx((0.1 ** 2 + 0.01 ** 2 + 0.1 ** 2) / 4, rel=1e-4)
    assert out["psnr"] == pytest.approx((20 + 40 + 20) / 3, rel=1e-4)


def test_real_model_reconstructions_are_scored_consistently(tiny_model) -> None:
    images = _images(5)
    out = reconstruction_quality(tiny_model, images, None)
    with torch.no_grad():
        x = images.float() / 255
        mse = float((tiny_model.eval().reconstruct(x) - x).double().square().mean())
    assert out["recon_mse"] == pytest.approx(mse, rel=1e-5)
    assert math.isfinite(out["psnr"]) and out["psnr"] == pytest.approx(-10 * math.log10(mse), abs=1.0)
