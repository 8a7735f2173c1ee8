"""What the new uses of a trained model compute, checked against values worked out by hand
or computed a second, independent way: PSNR and ROC/detection metrics, the PCA baseline,
anomaly scores (and the headline result: a VAE trained on one digit flags the others),
writing generated images as a dataset folder that loads and trains again, and the CLI's
``anomaly`` command and ``generate --folder``.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from PIL import Image

from explorer.analysis.anomaly import anomaly_report, anomaly_scores, error_maps
from explorer.analysis.dataset_export import write_image_folder
from explorer.analysis.metrics import detection_at, mean_psnr, psnr, roc_auc, roc_curve
from explorer.analysis.pca_baseline import (
    PCA,
    compression_ratio,
    fit_pca,
    model_error,
    pca_errors,
)
from explorer.config import DataConfig, TrainConfig
from explorer.data.dataset import ImageData
from explorer.data.dataset import to_float as as_float
from explorer.data.folder import FolderReport, load_folder
from explorer.errors import UserError
from explorer.models.autoencoder import Autoencoder
from explorer.models.losses import gaussian_kl, reconstruction_loss
from explorer.models.registry import build_model, config_for_data
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.engine import run_to_end, train
from explorer.training.events import EpochEnd
from explorer.training.runs import model_config_for


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a small machine: one torch thread for the whole module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_model(preset: str, image_shape=(1, 28, 28), num_classes: int = 0, seed: int = 0,
                **overrides) -> Autoencoder:
    torch.manual_seed(seed)
    cfg = config_for_data(model_config_for(preset, **overrides), image_shape, num_classes)
    return build_model(cfg).eval()


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("latent-explorer: error: "), err
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- PSNR ---------------------------------------------------------------------------------


def test_psnr_of_identical_images_is_infinite() -> None:
    x = np.random.default_rng(0).random((3, 1, 4, 4))
    values = psnr(x, x.copy())
    assert values.shape == (3,)
    assert np.all(np.isinf(values)) and np.all(values > 0)


def test_psnr_of_a_known_mse() -> None:
    # All-0 against all-0.1: MSE 0.01, so 10 log10(1 / 0.01) = 20 dB exactly.
    clean = np.zeros((2, 1, 5, 5))
    other = np.full((2, 1, 5, 5), 0.1)
    np.testing.assert_allclose(psnr(clean, other), [20.0, 20.0], rtol=0, atol=1e-9)
    # MSE 0.0001 -> 40 dB; and images are scored one by one.
    mixed = np.stack([np.full((1, 5, 5), 0.1), np.full((1, 5, 5), 0.01), np.zeros((1, 5, 5))])
    got = psnr(np.zeros((3, 1, 5, 5)), mixed)
    assert got.shape == (3,)
    np.testing.assert_allclose(got[:2], [20.0, 40.0], atol=1e-9)
    assert got[2] == math.inf


def test_psnr_per_image_shape_and_half_the_pixels_wrong() -> None:
    # Half the pixels off by 0.5: MSE 0.125, PSNR 10 log10(8) = 9.0309 dB.
    clean = np.zeros((4, 3, 2, 2))
    other = clean.copy()
    other[:, :, 0, :] = 0.5
    got = psnr(clean, other)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, 10 * np.log10(8.0), atol=1e-12)


def test_psnr_with_a_data_range_of_255() -> None:
    # uint8-style images off by 255/10 everywhere: MSE = 255^2 / 100 -> 20 dB.
    clean = np.zeros((1, 1, 3, 3), dtype=np.uint8)
    other = np.full((1, 1, 3, 3), 25.5)
    np.testing.assert_allclose(psnr(clean, other, data_range=255.0), [20.0], atol=1e-9)
    # The same images with the default range of 1 would read 48.13 dB lower.
    np.testing.assert_allclose(psnr(clean, other), [20.0 - 20 * np.log10(255.0)], atol=1e-9)


def test_mean_psnr_ignores_exact_restorations() -> None:
    assert mean_psnr(np.array([20.0, np.inf, 40.0])) == 30.0
    assert mean_psnr(np.array([np.inf, np.inf])) == math.inf
    assert mean_psnr(np.array([12.5])) == 12.5


# -- ROC ----------------------------------------------------------------------------------


def mann_whitney_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The chance a random positive outscores a random negative, ties counted half, by
    counting every pair."""
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def test_roc_curve_of_a_hand_example() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    fpr, tpr, thresholds = roc_curve(scores, positive)
    # Descending: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-).
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert roc_auc(scores, positive) == pytest.approx(0.75, abs=1e-12)
    assert mann_whitney_auc(scores, positive) == 0.75


def test_roc_curve_groups_tied_scores_into_one_point() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    positive = np.array([True, True, False, False, True])
    fpr, tpr, thresholds = roc_curve(scores, positive)
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.5, 0.1])
    np.testing.assert_allclose(tpr, [0.0, 1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 1.0, 1.0])
    # Pairs: 0.9 beats both negatives (2), the tied 0.5 half-beats both (1), 0.1 none: 3/6.
    assert roc_auc(scores, positive) == pytest.approx(0.5, abs=1e-12)


def test_roc_auc_of_perfect_reversed_and_tied_scores() -> None:
    positive = np.array([False, False, False, True, True])
    assert roc_auc(np.array([1.0, 2, 3, 4, 5]), positive) == pytest.approx(1.0, abs=1e-12)
    assert roc_auc(np.array([5.0, 4, 3, 2, 1]), positive) == pytest.approx(0.0, abs=1e-12)
    assert roc_auc(np.full(5, 7.0), positive) == pytest.approx(0.5, abs=1e-12)
    fpr, tpr, _ = roc_curve(np.full(5, 7.0), positive)
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(tpr, [0, 1])


def test_roc_auc_matches_the_mann_whitney_count_with_ties() -> None:
    rng = np.random.default_rng(3)
    for trial in range(5):
        n = 200 + 37 * trial
        positive = rng.random(n) < 0.3
        # Integer-valued scores give many ties; positives shifted up a little.
        scores = rng.integers(0, 12, size=n).astype(float) + 2.0 * positive
        assert roc_auc(scores, positive) == pytest.approx(mann_whitney_auc(scores, positive), abs=1e-12)
        fpr, tpr, _ = roc_curve(scores, positive)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


@pytest.mark.parametrize("positive", [[True, True, True], [False, False, False]])
def test_roc_of_one_class_raises(positive: list[bool]) -> None:
    with pytest.raises(ValueError):
        roc_curve(np.array([0.1, 0.2, 0.3]), np.array(positive))
    with pytest.raises(ValueError):
        roc_auc(np.array([0.1, 0.2, 0.3]), np.array(positive))


# -- detection at a threshold --------------------------------------------------------------


def test_detection_at_a_hand_example() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    positive = np.array([False, True, False, True, True, False])
    d = detection_at(scores, positive, 0.25)
    # Flagged: 0.3 (-), 0.4 (+), 0.5 (+), 0.6 (-): 2 of 4 right; 2 of 3 anomalies found.
    assert d.flagged == 4
    assert d.threshold == 0.25
    assert d.precision == pytest.approx(0.5)
    assert d.recall == pytest.approx(2 / 3)
    assert d.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # 4/7
    assert d.f1 == pytest.approx(4 / 7)
    # Strictly above: a score equal to the threshold is not flagged.
    assert detection_at(scores, positive, 0.4).flagged == 2


def test_detection_above_every_score_flags_nothing() -> None:
    scores = np.array([0.1, 0.9, 0.5])
    positive = np.array([True, False, True])
    d = detection_at(scores, positive, 1.0)
    assert (d.flagged, d.precision, d.recall, d.f1) == (0, 0.0, 0.0, 0.0)
    every = detection_at(scores, positive, -1.0)
    assert every.flagged == 3 and every.recall == 1.0 and every.precision == pytest.approx(2 / 3)


# -- the PCA baseline -----------------------------------------------------------------------


def numpy_pca_error(images: np.ndarray, k: int) -> float:
    """Mean summed squared error of the best affine k-D fit, from an SVD in float64."""
    x = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    v = vt[:k]
    recon = (x - mean) @ v.T @ v + mean
    return float(((recon - x) ** 2).sum(1).mean())


def test_pca_of_images_exactly_on_a_plane() -> None:
    # base + a*U + b*V with integer a, b and 0/1 patterns U, V: uint8 and exactly on a 2-D affine plane.
    rng = np.random.default_rng(1)
    u = np.zeros(64)
    u[:32] = 1
    v = np.zeros(64)
    v[32:] = 1
    v[::5] = 2
    a = rng.integers(0, 100, size=50)
    b = rng.integers(0, 60, size=50)
    x = 20 + a[:, None] * u + b[:, None] * v
    assert x.max() <= 255
    images = torch.from_numpy(x.astype(np.uint8).reshape(50, 1, 8, 8))
    pca = fit_pca(images, 5)
    errors = pca_errors(pca, images, [0, 1, 2, 3])
    assert errors[2] < 1e-8 * errors[0]
    assert errors[3] < 1e-8 * errors[0]
    assert errors[1] > 1e3 * max(errors[2], 1e-12)
    # k = 0 is the mean image: the summed per-pixel (population) variance.
    xf = x / 255.0
    assert errors[0] == pytest.approx(float(xf.var(0).sum()), rel=1e-6)


def test_pca_of_images_on_a_plane_up_to_rounding() -> None:
    # Real-valued directions rounded to uint8: the best plane is at most the rounding away.
    rng = np.random.default_rng(2)
    d = 100
    u, v = rng.random(d), rng.random(d)
    coef = rng.random((80, 2)) * 100
    x = np.rint(10 + coef[:, :1] * u + coef[:, 1:] * v)
    assert x.max() <= 255
    images = torch.from_numpy(x.astype(np.uint8).reshape(80, 1, 10, 10))
    errors = pca_errors(fit_pca(images, 3), images, [1, 2])
    rounding_bound = d * (0.5 / 255) ** 2  # every pixel off by at most half a level
    assert errors[2] <= rounding_bound
    assert errors[1] > 20 * rounding_bound


def test_pca_error_against_an_svd_and_decreasing_with_k() -> None:
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, size=(120, 1, 6, 6), dtype=np.uint8)
    images = torch.from_numpy(raw)
    d = 36
    pca = fit_pca(images, d)
    assert pca.components.shape == (d, d)
    assert pca.mean.shape == (d,)
    ks = list(range(d + 1))
    errors = pca_errors(pca, images, ks)
    values = [errors[k] for k in ks]
    assert all(later < earlier for earlier, later in itertools.pairwise(values))
    assert errors[d] < 1e-9 * errors[0]
    for k in (0, 1, 5, 17, 30):
        assert errors[k] == pytest.approx(numpy_pca_error(raw, k), rel=1e-5, abs=1e-9)


def test_pca_components_are_orthonormal_and_sorted() -> None:
    rng = np.random.default_rng(5)
    # Anisotropic data: the variance along the pixels falls off.
    x = 128 + rng.normal(size=(400, 25)) * np.linspace(40, 2, 25)
    images = torch.from_numpy(np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(400, 1, 5, 5))
    pca = fit_pca(images, 10)
    c = pca.components
    assert c.shape == (10, 25)
    np.testing.assert_allclose(c @ c.T, np.eye(10), atol=1e-10)
    flat = as_float(images).reshape(400, -1).double().numpy()
    variances = ((flat - pca.mean) @ c.T).var(0)
    assert np.all(np.diff(variances) <= 1e-12)
    np.testing.assert_allclose(pca.mean, flat.mean(0), atol=1e-12)


def test_pca_reconstruct_is_the_projection_onto_the_first_k() -> None:
    mean = np.array([1.0, 2.0, 3.0])
    pca = PCA(mean, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    x = np.array([[5.0, 7.0, 11.0]])
    np.testing.assert_allclose(pca.reconstruct(x, 1), [[5.0, 2.0, 3.0]])
    np.testing.assert_allclose(pca.reconstruct(x, 2), [[5.0, 7.0, 3.0]])
    np.testing.assert_allclose(pca.reconstruct(x, 0), [[1.0, 2.0, 3.0]])


def test_compression_ratio() -> None:
    assert compression_ratio((1, 28, 28), 20) == 39.2
    assert compression_ratio((3, 32, 32), 16) == 192.0
    assert compression_ratio((1, 28, 28), 2) == 392.0


def test_model_error_matches_a_direct_computation(mnist_300: ImageData) -> None:
    images = mnist_300.test_images
    ae = small_model("ae", latent_dim=4)
    with torch.no_grad():
        x = as_float(images)
        direct = float(((ae.reconstruct(x) - x) ** 2).sum()) / images.shape[0]
    assert model_error(ae, images, batch_size=64) == pytest.approx(direct, rel=1e-5)
    assert model_error(ae, images) == pytest.approx(direct, rel=1e-5)

    cvae = small_model("cvae", num_classes=10, hidden_dims=(32,))
    labels = mnist_300.test_labels
    with torch.no_grad():
        direct = float(((cvae.reconstruct(x, labels) - x) ** 2).sum()) / images.shape[0]
        wrong = float(((cvae.reconstruct(x, (labels + 1) % 10) - x) ** 2).sum()) / images.shape[0]
    got = model_error(cvae, images, labels, batch_size=64)
    assert got == pytest.approx(direct, rel=1e-5)
    assert got != pytest.approx(wrong, rel=1e-6)  # the labels are really used


# -- anomaly scores -------------------------------------------------------------------------


def test_vae_anomaly_score_is_the_negative_elbo_of_the_mean_code(mnist_300: ImageData) -> None:
    vae = small_model("vae", hidden_dims=(32,))
    images = mnist_300.test_images[:100]
    with torch.no_grad():
        x = as_float(images)
        dist = vae.encode(x)
        recon = reconstruction_loss(vae.decode_logits(dist.mean), x, "bce")
        expected = (recon + gaussian_kl(dist.mean, dist.logvar)).double().numpy()
    got = anomaly_scores(vae, images, batch_size=30)
    assert got.shape == (100,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # The KL term is really in it, and the mean code (not a sample) makes it repeatable.
    assert np.all(got - recon.double().numpy() > 0)
    np.testing.assert_array_equal(anomaly_scores(vae, images, batch_size=30), got)


def test_ae_anomaly_score_is_the_reconstruction_loss(mnist_300: ImageData) -> None:
    images = mnist_300.test_images[:50]
    x = as_float(images)
    for loss in ("bce", "mse"):
        ae = small_model("ae", latent_dim=5, recon_loss=loss)
        with torch.no_grad():
            expected = reconstruction_loss(ae.decode_logits(ae.encode(x).mean), x, loss).double().numpy()
        np.testing.assert_allclose(anomaly_scores(ae, images, batch_size=16), expected, rtol=1e-5)
    # MSE by hand: the summed squared error of the reconstruction.
    with torch.no_grad():
        by_hand = ((ae.reconstruct(x) - x) ** 2).flatten(1).sum(1).double().numpy()
    np.testing.assert_allclose(anomaly_scores(ae, images), by_hand, rtol=1e-5)


def test_cvae_anomaly_score_uses_the_labels(mnist_300: ImageData) -> None:
    cvae = small_model("cvae", num_classes=10, hidden_dims=(32,))
    images, labels = mnist_300.test_images[:40], mnist_300.test_labels[:40]
    x = as_float(images)
    with torch.no_grad():
        dist = cvae.encode(x, labels)
        expected = (reconstruction_loss(cvae.decode_logits(dist.mean, labels), x, "bce")
                    + gaussian_kl(dist.mean, dist.logvar)).double().numpy()
    np.testing.assert_allclose(anomaly_scores(cvae, images, labels, batch_size=16), expected, rtol=1e-5)


def test_error_maps_shapes_and_values() -> None:
    model = small_model("ae", image_shape=(3, 6, 5), latent_dim=3, hidden_dims=(8,))
    images = torch.from_numpy(np.random.default_rng(6).integers(0, 256, (4, 3, 6, 5), dtype=np.uint8))
    recon, errors = error_maps(model, images)
    assert recon.shape == (4, 3, 6, 5)
    assert errors.shape == (4, 6, 5)
    x = images.numpy().astype(np.float64) / 255.0
    with torch.no_grad():
        expected_recon = model.reconstruct(as_float(images)).numpy()
    np.testing.assert_allclose(recon, expected_recon, rtol=1e-6)
    by_hand = np.zeros((4, 6, 5))
    for c in range(3):
        by_hand += (recon[:, c].astype(np.float64) - x[:, c]) ** 2
    np.testing.assert_allclose(errors, by_hand, rtol=1e-5, atol=1e-7)
    # Summed over the pixels, the maps give the PCA comparison's model error.
    assert float(errors.sum(axis=(1, 2)).mean()) == pytest.approx(model_error(model, images), rel=1e-5)


def test_anomaly_report_needs_labels_and_another_class(mnist_300: ImageData) -> None:
    model = small_model("ae", latent_dim=4)
    unlabelled = ImageData("plain", mnist_300.train_images, None, mnist_300.test_images, None)
    with pytest.raises(ValueError):
        anomaly_report(model, unlabelled, (1,))
    with pytest.raises(ValueError):
        anomaly_report(model, mnist_300.only_classes((1,)), (1,))
    with pytest.raises(ValueError):
        anomaly_report(model, mnist_300.only_classes((1, 7)), (7, 1))
    with pytest.raises(ValueError):
        anomaly_report(model, mnist_300, ())


def test_anomaly_report_scores_every_test_image(mnist_300: ImageData) -> None:
    model = small_model("ae", latent_dim=4)
    report = anomaly_report(model, mnist_300, (3, 1, 1))
    labels = mnist_300.test_labels.numpy()
    assert report.normal_classes == (1, 3)
    assert set(report.auc_per_class) == set(range(10)) - {1, 3}
    np.testing.assert_array_equal(report.labels, labels)
    np.testing.assert_allclose(report.scores, anomaly_scores(model, mnist_300.test_images), rtol=1e-6)
    np.testing.assert_array_equal(report.is_anomaly, (labels != 1) & (labels != 3))
    assert report.auc == pytest.approx(mann_whitney_auc(report.scores, report.is_anomaly), abs=1e-9)
    for k, auc in report.auc_per_class.items():
        keep = (labels == 1) | (labels == 3) | (labels == k)
        assert auc == pytest.approx(mann_whitney_auc(report.scores[keep], labels[keep] == k), abs=1e-9)


@pytest.fixture(scope="module")
def ones_vae(bundled_mnist: ImageData) -> Autoencoder:
    """A VAE that has only ever seen the digit 1 (2000 images, 5 epochs)."""
    torch.set_num_threads(1)
    ones = bundled_mnist.only_classes((1,)).limited(2000)
    assert set(ones.train_labels.tolist()) == {1}
    model = small_model("vae", num_classes=ones.num_classes)
    _, result = run_to_end(train(model, ones, TrainConfig(epochs=5, batch_size=128, lr=1e-3, device="cpu",
                                                          precision="fp32")))
    assert result.status == "completed", result.message
    return model.cpu().eval()


def test_a_vae_trained_on_ones_flags_every_other_digit(ones_vae: Autoencoder, bundled_mnist: ImageData) -> None:
    data = bundled_mnist.limited(3000)
    report = anomaly_report(ones_vae, data, (1,))
    assert set(report.auc_per_class) == {0, 2, 3, 4, 5, 6, 7, 8, 9}
    assert report.auc >= 0.95, report.auc
    for k, auc in report.auc_per_class.items():
        assert auc >= 0.95, (k, auc, report.auc_per_class)
    # The other way round, the ones look far *more* normal than zeros: the score has a direction.
    flipped = anomaly_report(ones_vae, data.only_classes((0, 1)), (0,))
    assert flipped.auc_per_class[1] < 0.05


# -- generated images as a dataset folder ---------------------------------------------------


def loaded_pairs(data: ImageData) -> list[tuple[int, bytes]]:
    """Every image with its label, from both splits, in a fixed order."""
    images = torch.cat([data.train_images, data.test_images]).numpy()
    labels = (torch.cat([data.train_labels, data.test_labels]).tolist() if data.has_labels
              else [-1] * images.shape[0])
    return sorted((label, img.tobytes()) for label, img in zip(labels, images))


def test_write_a_class_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    images = rng.random((7, 1, 6, 5)).astype(np.float32)
    labels = np.array([0, 2, 0, 1, 2, 2, 0])
    names = ("ant", "bee", "cat")
    folder = tmp_path / "made" / "deeper"
    written = write_image_folder(folder, images, labels, names)

    assert [str(p.relative_to(folder)) for p in written] == [
        "ant/0001.png", "cat/0001.png", "ant/0002.png", "bee/0001.png", "cat/0002.png", "cat/0003.png",
        "ant/0003.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["ant", "bee", "cat", "images.npy", "labels.npy"]
    saved = np.load(folder / "images.npy")
    assert saved.dtype == np.float32 and saved.shape == (7, 1, 6, 5)
    np.testing.assert_array_equal(saved, images)
    saved_labels = np.load(folder / "labels.npy")
    np.testing.assert_array_equal(saved_labels, labels)
    for path, image in zip(written, images):
        png = np.asarray(Image.open(path))
        assert png.dtype == np.uint8 and png.shape == (6, 5)
        np.testing.assert_array_equal(png, np.rint(image[0] * 255).astype(np.uint8))
        assert np.abs(png / 255.0 - image[0]).max() <= 0.5 / 255 + 1e-7


def test_write_a_flat_colour_folder(tmp_path: Path) -> None:
    images = np.random.default_rng(8).random((3, 3, 4, 4)).astype(np.float32)
    images[0, :, 0, 0] = [-0.5, 1.5, 1.0]  # out of range is clipped in the PNG, kept in the NPY
    written = write_image_folder(tmp_path / "flat", images)
    assert [p.name for p in written] == ["0001.png", "0002.png", "0003.png"]
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["0001.png", "0002.png", "0003.png",
                                                                     "images.npy"]
    first = np.asarray(Image.open(written[0]))
    assert first.shape == (4, 4, 3)
    assert first[0, 0].tolist() == [0, 255, 255]
    np.testing.assert_array_equal(np.load(tmp_path / "flat" / "images.npy"), images)
    second = np.asarray(Image.open(written[1]))
    np.testing.assert_array_equal(second, np.rint(images[1].transpose(1, 2, 0) * 255).astype(np.uint8))


def test_write_into_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    (folder / "0001.png").write_bytes(b"not really a png")
    before = tree(folder)
    with pytest.raises(UserError, match="not empty"):
        write_image_folder(folder, np.zeros((2, 1, 4, 4), np.float32), np.array([0, 1]), ("a", "b"))
    assert tree(folder) == before
    # A file where the folder should go is refused too.
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError):
        write_image_folder(tmp_path / "afile", np.zeros((1, 1, 4, 4), np.float32))
    assert (tmp_path / "afile").read_text() == "x"
    # An existing empty folder is fine.
    (tmp_path / "empty").mkdir()
    assert len(write_image_folder(tmp_path / "empty", np.zeros((2, 1, 4, 4), np.float32))) == 2


def test_class_names_are_made_safe(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    names = ("../evil", "a/b", "..", "T-shirt/top")
    written = write_image_folder(folder, np.zeros((5, 1, 4, 4), np.float32), np.array([0, 1, 2, 3, 4]), names)
    for path in written:
        assert path.resolve().parent.parent == folder.resolve()  # one level down, never outside
        assert "/" not in path.parent.name and path.parent.name not in ("", ".", "..")
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert len(subdirs) == 5
    assert "a_b" in subdirs and "T-shirt_top" in subdirs
    assert "4" in subdirs  # a label with no name is named by its number
    assert not (tmp_path / "evil").exists()


def test_a_written_class_folder_loads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    images = rng.random((24, 1, 8, 8)).astype(np.float32)
    labels = np.arange(24) % 3
    folder = tmp_path / "gen"
    write_image_folder(folder, images, labels, ("zero", "one", "two"))
    report = FolderReport()
    data = load_folder(folder, image_size=8, report=report)

    assert report.loaded == 24
    assert data.class_names == ("one", "two", "zero")  # sorted folder names
    assert not [name for name, _ in report.skipped if name.endswith(".npy")], report.skipped
    assert report.skipped == []
    assert data.image_shape == (1, 8, 8)
    assert data.train_images.shape[0] + data.test_images.shape[0] == 24
    # Folder order "one", "two", "zero" -> our labels 1, 2, 0 become 0, 1, 2.
    relabel = {1: 0, 2: 1, 0: 2}
    pngs = np.rint(images * 255).astype(np.uint8)
    expected = sorted((relabel[int(k)], img.tobytes()) for k, img in zip(labels, pngs))
    assert loaded_pairs(data) == expected


def test_a_written_flat_folder_loads_back(tmp_path: Path) -> None:
    images = np.random.default_rng(10).random((10, 3, 6, 6)).astype(np.float32)
    write_image_folder(tmp_path / "flat", images)
    report = FolderReport()
    data = load_folder(tmp_path / "flat", image_size=6, report=report)
    assert report.loaded == 10 and report.skipped == []
    assert not data.has_labels and data.image_shape == (3, 6, 6)
    pngs = np.rint(images * 255).astype(np.uint8)
    assert loaded_pairs(data) == sorted((-1, img.tobytes()) for img in pngs)


def test_an_exported_folder_trains(tmp_path: Path, mnist_300: ImageData) -> None:
    images = as_float(mnist_300.train_images[:120]).numpy()
    labels = mnist_300.train_labels[:120].numpy()
    write_image_folder(tmp_path / "digits", images, labels, mnist_300.class_names)
    data = load_folder(tmp_path / "digits", image_size=28)
    assert data.image_shape == (1, 28, 28)
    assert data.num_classes == len(set(labels.tolist()))
    model = small_model("cvae", num_classes=data.num_classes, hidden_dims=(32,))
    events, result = run_to_end(train(model, data, TrainConfig(epochs=1, batch_size=32, device="cpu",
                                                               precision="fp32")))
    assert result.status == "completed", result.message
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert len(ends) == 1
    assert all(math.isfinite(v) for v in (*ends[0].train.values(), *ends[0].test.values()))


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ones_ae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AE trained through the CLI on the digit 1 only. The preset's batch of 256 gives
    only 8 steps in one epoch (an AUC below 0.5, an untrained model); batches of 32 give 63."""
    path = tmp_path_factory.mktemp("ckpt") / "ones.safetensors"
    rc, _, err = run("train", "--model", "ae", "--classes", "1", "--epochs", "1", "--limit", "2000",
                     "--batch-size", "32", "--device", "cpu", "--json", "--out", path)
    assert rc == 0, err
    return path


@pytest.fixture(scope="module")
def all_classes_checkpoint(tmp_path_factory: pytest.TempPathFactory, bundled_mnist: ImageData) -> Path:
    """An AE trained on every class, through the engine and save_checkpoint."""
    torch.set_num_threads(1)
    data_config = DataConfig(limit=500)
    data = bundled_mnist.limited(500)
    model = small_model("ae")
    cfg = TrainConfig(epochs=1, batch_size=128, device="cpu", precision="fp32")
    _, result = run_to_end(train(model, data, cfg))
    assert result.status == "completed"
    path = tmp_path_factory.mktemp("ckpt") / "all.safetensors"
    save_checkpoint(path, model.cpu(), data_config, cfg, class_names=data.class_names)
    return path


@pytest.fixture(scope="module")
def generator_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen-ckpt")
    paths = {}
    for preset in ("cvae", "vae"):
        paths[preset] = root / f"{preset}.safetensors"
        rc, _, err = run("train", "--model", preset, "--epochs", "1", "--limit", "300", "--hidden", "64",
                         "--device", "cpu", "--json", "--out", paths[preset])
        assert rc == 0, err
    return paths


def test_cli_anomaly_json(ones_ae_checkpoint: Path, bundled_mnist: ImageData) -> None:
    rc, out, err = run("anomaly", ones_ae_checkpoint, "--json")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["normal_classes"] == [1]
    assert result["model"] == "ae"
    assert result["score"] == "reconstruction loss"
    assert set(result["auc_per_class"]) == {"0", "2", "3", "4", "5", "6", "7", "8", "9"}
    assert 0.9 < result["auc"] <= 1.0  # measured 0.99
    assert all(0.9 < v <= 1.0 for v in result["auc_per_class"].values()), result["auc_per_class"]
    assert "scores" not in result

    # The same numbers from the library on the same 2000 test images (the class filter is dropped).
    model = load_checkpoint(ones_ae_checkpoint).build_model()
    report = anomaly_report(model, bundled_mnist.limited(2000), (1,))
    assert result["auc"] == pytest.approx(report.auc, abs=1e-9)
    assert result["auc_per_class"] == pytest.approx({str(k): v for k, v in report.auc_per_class.items()},
                                                    abs=1e-9)


def test_cli_anomaly_per_image(ones_ae_checkpoint: Path, bundled_mnist: ImageData) -> None:
    rc, out, err = run("anomaly", ones_ae_checkpoint, "--json", "--per-image")
    assert rc == 0, err
    result = json.loads(out)
    rows = result["scores"]
    assert len(rows) == 2000
    assert [r["index"] for r in rows] == list(range(2000))
    assert [r["label"] for r in rows] == bundled_mnist.test_labels[:2000].tolist()
    model = load_checkpoint(ones_ae_checkpoint).build_model()
    expected = anomaly_scores(model, bundled_mnist.test_images[:2000])
    np.testing.assert_allclose([r["score"] for r in rows], expected, rtol=1e-5)

    rc, out, err = run("anomaly", ones_ae_checkpoint, "--per-image")
    assert rc == 0, err
    text = out.splitlines()
    header = text.index("index,label,score")
    assert len(text) - header - 1 == 2000
    assert text[header + 1].startswith(f"0,{int(bundled_mnist.test_labels[0])},")


def test_cli_anomaly_needs_normal_classes_for_an_all_class_model(all_classes_checkpoint: Path) -> None:
    rc, out, err = run("anomaly", all_classes_checkpoint, "--json")
    assert rc == 2
    assert out == ""
    assert "--normal" in one_error_line(err)

    rc, out, err = run("anomaly", all_classes_checkpoint, "--normal", "1", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["normal_classes"] == [1]
    assert set(result["auc_per_class"]) == {str(k) for k in range(10) if k != 1}

    rc, out, err = run("anomaly", all_classes_checkpoint, "--normal", "3,1", "--json")
    assert rc == 0, err
    assert json.loads(out)["normal_classes"] == [1, 3]


def test_cli_generate_a_class_folder(generator_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    rc, out, err = run("generate", generator_checkpoints["cvae"], "--folder", folder, "--n", 3)
    assert rc == 0, err
    assert "30" in out
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert subdirs == [str(k) for k in range(10)]
    for sub in subdirs:
        assert sorted(p.name for p in (folder / sub).iterdir()) == ["0001.png", "0002.png", "0003.png"]
    np.testing.assert_array_equal(np.load(folder / "labels.npy"), np.repeat(np.arange(10), 3))
    images = np.load(folder / "images.npy")
    assert images.shape == (30, 1, 28, 28) and images.dtype == np.float32
    # The PNG in class 4 is the 13th sample.
    png = np.asarray(Image.open(folder / "4" / "0001.png"))
    np.testing.assert_array_equal(png, (np.clip(images[12, 0], 0, 1) * 255 + 0.5).astype(np.uint8))
    # The generated folder is a dataset.
    data = load_folder(folder, image_size=28)
    assert data.class_names == tuple(str(k) for k in range(10))
    assert data.train_images.shape[0] + data.test_images.shape[0] == 30


def test_cli_generate_a_flat_folder(generator_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    rc, _, err = run("generate", generator_checkpoints["vae"], "--folder", folder, "--n", 5)
    assert rc == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["0001.png", "0002.png", "0003.png", "0004.png",
                                                       "0005.png", "images.npy"]
    assert np.load(folder / "images.npy").shape == (5, 1, 28, 28)
    # The same seed gives the same images as --out FILE.npy.
    rc, _, err = run("generate", generator_checkpoints["vae"], "--out", tmp_path / "same.npy", "--n", 5)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "same.npy"), np.load(folder / "images.npy"))


def test_cli_generate_out_and_folder_together_is_a_usage_error(generator_checkpoints: dict[str, Path],
                                                               tmp_path: Path) -> None:
    rc, _, err = run("generate", generator_checkpoints["vae"], "--out", tmp_path / "x.png",
                       "--folder", tmp_path / "d")
    assert rc == 2
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line]
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "d").exists()
    rc, _, err = run("generate", generator_checkpoints["vae"])
    assert rc == 2 and "Traceback" not in err


def test_cli_generate_into_a_non_empty_folder(generator_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "0001.png").write_bytes(b"precious")
    (folder / "notes.txt").write_text("keep me")
    before = tree(folder)
    rc, out, err = run("generate", generator_checkpoints["cvae"], "--folder", folder, "--n", 2)
    assert rc == 2
    assert out == ""
    line = one_error_line(err)
    assert "not empty" in line and str(folder) in line
    assert tree(folder) == before


def test_cli_trains_on_a_generated_folder_without_warnings(generator_checkpoints: dict[str, Path],
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "gen"
    rc, _, err = run("generate", generator_checkpoints["cvae"], "--folder", folder, "--n", 4)
    assert rc == 0, err
    rc, out, err = run("train", "--model", "ae", "--dataset", folder, "--image-size", 28, "--epochs", 1,
                       "--device", "cpu", "--json", "--out", tmp_path / "again.safetensors")
    assert rc == 0, err
    assert "skipped" not in err, err
    record = json.loads(out.strip().splitlines()[-1])
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["test_loss"])
