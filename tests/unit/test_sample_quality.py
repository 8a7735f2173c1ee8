"""Sample quality: the bundled MNIST classifier, its training script, the Fréchet distance
on its features, classifiers trained on demand and cached, and sample_quality itself."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.analysis import classifier as clf_mod
from explorer.analysis.classifier import (
    BUNDLED_PATH,
    ClassifierInfo,
    LeNet,
    accuracy,
    bundled_classifier,
    classifier_for,
    fingerprint,
    load_classifier,
    save_classifier,
    train_classifier,
)
from explorer.analysis.fid import classifier_features, feature_stats, frechet_distance, sample_quality
from explorer.data.dataset import ImageData
from explorer.errors import CheckpointError, UserError
from explorer.models import build_model, config_for_data, get_preset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundled():
    return bundled_classifier()


@pytest.fixture(scope="module")
def mnist_features(bundled, bundled_mnist):
    """LeNet features of the 10,000 test images and the first 10,000 train images."""
    model, _ = bundled
    return (classifier_features(model, bundled_mnist.test_images),
            classifier_features(model, bundled_mnist.train_images[:10_000]))


def _subset(data: ImageData, n_train: int, n_test: int) -> ImageData:
    return ImageData(data.name, data.train_images[:n_train].clone(), data.train_labels[:n_train].clone(),
                     data.test_images[:n_test].clone(), data.test_labels[:n_test].clone(), data.class_names)


def _toy_folder_data(name: str = "/tmp/my-shapes") -> ImageData:
    """Three classes of 16x16 colour images (a bright square in a class's own corner), as a
    folder dataset would load them."""
    gen = torch.Generator().manual_seed(3)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 3
        images = (torch.rand(n, 3, 16, 16, generator=gen) * 60).to(torch.uint8)
        for i, k in enumerate(labels.tolist()):
            r, c = [(0, 0), (0, 8), (8, 4)][k]
            images[i, k, r:r + 8, c:c + 8] = 230
        return images, labels

    (xtr, ytr), (xte, yte) = split(120), split(30)
    return ImageData(name, xtr, ytr, xte, yte, ("a", "b", "c"))


# -- the bundled classifier and its script ---------------------------------------------------------


def test_bundled_classifier_reaches_99_percent_as_recorded(bundled, bundled_mnist):
    model, info = bundled
    acc = accuracy(model, bundled_mnist.test_images, bundled_mnist.test_labels)
    assert acc >= 0.99
    assert abs(acc - info.accuracy) < 1e-4
    assert info.source == "bundled" and info.dataset == "mnist" and info.num_classes == 10
    assert info.image_shape == (1, 28, 28) and info.fingerprint == fingerprint(bundled_mnist)
    assert BUNDLED_PATH.stat().st_size < 1_000_000


def test_bundled_readme_records_the_accuracy(bundled):
    _, info = bundled
    text = (BUNDLED_PATH.parent / "README.md").read_text()
    assert f"{info.accuracy * 100:.2f}%" in text
    assert "scripts/train_classifier.py" in text and f"seed {info.seed}" in text.lower()


def test_training_is_reproducible(bundled_mnist):
    data = _subset(bundled_mnist, 2000, 500)
    a, acc_a = train_classifier(data, seed=5, epochs=1)
    b, acc_b = train_classifier(data, seed=5, epochs=1)
    assert acc_a == acc_b and acc_a > 0.5
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), key
    c, _ = train_classifier(data, seed=6, epochs=1)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_training_leaves_the_global_rng_alone(bundled_mnist):
    data = _subset(bundled_mnist, 256, 100)
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    train_classifier(data, seed=0, epochs=1)
    assert torch.equal(torch.rand(3), expected)


def test_training_script_writes_a_loadable_classifier(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_classifier_script", ROOT / "scripts" / "train_classifier.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "clf.safetensors"
    assert script.main(["--limit", "1000", "--epochs", "1", "--threads", "1", "--min-accuracy", "0",
                        "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    model, info = load_classifier(out)
    assert info.accuracy == report["test_accuracy"] and info.epochs == 1 and info.threads == 1
    assert 0 <= report["test_accuracy_binarised"] <= 1
    refused = tmp_path / "refused.safetensors"
    assert script.main(["--limit", "500", "--epochs", "1", "--threads", "1", "--min-accuracy", "1.01",
                        "--out", str(refused)]) == 1
    assert not refused.exists()


# -- Fréchet distance ---------------------------------------------------------------------------------


def _random_stats(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_of_identical_stats_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = _random_stats(rng, 64)
    assert frechet_distance(mu, sigma, mu, sigma) < 1e-6
    mu, sigma = feature_stats(rng.normal(size=(500, 32)) ** 2)
    assert frechet_distance(mu, sigma, mu, sigma) < 1e-6


def test_frechet_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    a, b = rng.uniform(0.1, 3, size=20), rng.uniform(0.1, 3, size=20)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert abs(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) - expected) < 1e-8


def test_frechet_of_full_covariances_matches_an_independent_formula():
    """Against tr((S1 S2)^(1/2)) from the (complex) eigenvalues of the non-symmetric S1 S2."""
    rng = np.random.default_rng(2)
    for d in (2, 10, 50):
        mu1, s1 = _random_stats(rng, d)
        mu2, s2 = _random_stats(rng, d)
        trace_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum()
        expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)
        got = frechet_distance(mu1, s1, mu2, s2)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert got == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_frechet_refuses_mismatched_shapes():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        feature_stats(np.zeros((1, 3)))


def test_lenet_fid_of_mnist(bundled, mnist_features, bundled_mnist):
    model, _ = bundled
    test_feats, train_feats = mnist_features
    assert test_feats.shape == (10_000, 128) and test_feats.dtype == np.float64
    test_stats = feature_stats(test_feats)
    scale = float(np.trace(test_stats[1]))
    assert frechet_distance(*test_stats, *test_stats) < 1e-6 * scale
    floor = frechet_distance(*feature_stats(train_feats), *test_stats)
    assert 0 < floor
    noise = torch.randint(0, 256, (2000, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    fid_noise = frechet_distance(*feature_stats(classifier_features(model, noise)), *test_stats)
    shifted = torch.roll(bundled_mnist.test_images[:2000], shifts=(4, 4), dims=(2, 3))
    fid_shifted = frechet_distance(*feature_stats(classifier_features(model, shifted)), *test_stats)
    assert floor < 0.05 * fid_shifted < fid_shifted < fid_noise


def test_features_of_uint8_and_float_images_agree(bundled, bundled_mnist):
    model, _ = bundled
    images = bundled_mnist.test_images[:50]
    a = classifier_features(model, images, batch_size=7)
    b = classifier_features(model, images.float() / 255, batch_size=50)
    np.testing.assert_allclose(a, b, atol=1e-5)


# -- classifiers on demand and their files --------------------------------------------------------------


@pytest.fixture
def counted_training(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    calls = []
    real = clf_mod.train_classifier

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(clf_mod, "train_classifier", counting)
    return calls


def test_classifier_for_a_folder_trains_once_then_loads_from_cache(counted_training, tmp_path):
    data = _toy_folder_data()
    ticks = []
    model, info = classifier_for(data, data.name, progress=lambda done, total: ticks.append((done, total)), epochs=2)
    assert info.source == "trained" and len(counted_training) == 1
    assert info.image_shape == (3, 16, 16) and info.num_classes == 3 and info.accuracy > 0.9
    assert ticks and ticks[-1][0] == ticks[-1][1]
    assert info.path == tmp_path / "cache" / "classifiers" / f"{fingerprint(data)}.safetensors"
    again, info2 = classifier_for(data, data.name, epochs=2)
    assert len(counted_training) == 1 and info2.source == "cached" and info2.accuracy == info.accuracy
    for va, vb in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(va, vb)
    info.path.write_bytes(b"damaged")  # a damaged cache file is replaced, not fatal
    _, info3 = classifier_for(data, data.name, epochs=2)
    assert len(counted_training) == 2 and info3.source == "trained"
    assert load_classifier(info.path)[1].fingerprint == info.fingerprint


def test_classifier_for_bundled_mnist_trains_nothing(counted_training, bundled_mnist):
    _, info = classifier_for(bundled_mnist, "mnist")
    assert info.source == "bundled" and not counted_training


def test_classifier_for_unlabelled_data_says_it_needs_labels(counted_training):
    data = _toy_folder_data()
    unlabelled = ImageData(data.name, data.train_images, None, data.test_images, None)
    with pytest.raises(UserError, match="sample quality needs class labels") as err:
        classifier_for(unlabelled, data.name)
    assert "\n" not in str(err.value) and not counted_training


def _damaged_files(tmp_path: Path) -> dict[str, Path]:
    raw = BUNDLED_PATH.read_bytes()
    files = {"truncated": raw[: len(raw) // 2], "garbage": b"\x00" * 5 + b"not a classifier" * 10,
             "empty": b"", "huge header": (10**12).to_bytes(8, "little") + raw[8:],
             "flipped header": raw[:20] + b"\xff\xfe" + raw[22:]}
    paths = {}
    for name, blob in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '-')}.safetensors"
        paths[name].write_bytes(blob)
    info = ClassifierInfo("mnist", (1, 28, 28), 10, 0, 1, 0.5, "x", "trained")
    paths["wrong shapes"] = tmp_path / "shapes.safetensors"
    save_classifier(paths["wrong shapes"], LeNet((1, 28, 28), 5), info)
    nan = LeNet()
    with torch.no_grad():
        nan.fc2.bias[0] = float("nan")
    paths["nan"] = tmp_path / "nan.safetensors"
    save_classifier(paths["nan"], nan, info)
    paths["missing"] = tmp_path / "missing.safetensors"
    paths["folder"] = tmp_path
    return paths


def test_a_damaged_classifier_file_gives_one_line(tmp_path):
    for what, path in _damaged_files(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_classifier(path)
        message = str(err.value)
        assert message and "\n" not in message and len(message) < 300, what


def test_save_and_load_round_trip(tmp_path):
    model = LeNet((3, 32, 32), 4)
    info = ClassifierInfo("cifar-ish", (3, 32, 32), 4, 7, 2, 0.75, "ab" * 32, "trained", "2.x", 2)
    path = save_classifier(tmp_path / "sub" / "c.safetensors", model, info)
    loaded, got = load_classifier(path)
    assert got.accuracy == 0.75 and got.seed == 7 and got.image_shape == (3, 32, 32) and got.threads == 2
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded(x)) and loaded.features(x).shape == (2, 128)


# -- sample_quality -----------------------------------------------------------------------------------------


def _model(preset: str, data: ImageData):
    torch.manual_seed(0)
    return build_model(config_for_data(get_preset(preset).model, data.image_shape, data.num_classes))


def test_sample_quality_of_an_untrained_vae(bundled, bundled_mnist):
    model, _ = bundled
    data = _subset(bundled_mnist, 1000, 1000)
    ticks = []
    result = sample_quality(_model("vae", data), data, model, n=300, progress=lambda d, t: ticks.append((d, t)))
    assert set(result) == {"fid", "fid_floor", "n_samples"} and result["n_samples"] == 300
    assert np.isfinite(result["fid"]) and np.isfinite(result["fid_floor"])
    assert result["fid"] > result["fid_floor"] > 0
    assert ticks[-1][0] == ticks[-1][1]
    again = sample_quality(_model("vae", data), data, model, n=300)
    assert again["fid"] == result["fid"]  # seeded


def test_sample_quality_of_a_conditional_model(bundled, bundled_mnist):
    model, _ = bundled
    data = _subset(bundled_mnist, 500, 500)
    result = sample_quality(_model("cvae", data), data, model, n=205)
    assert result["n_samples"] == 200 and len(result["class_accuracy_per_class"]) == 10
    assert 0 <= result["class_accuracy"] <= 1
    assert result["class_accuracy"] == pytest.approx(np.mean(result["class_accuracy_per_class"]))


def test_sample_quality_refuses_what_cannot_be_measured(bundled, bundled_mnist):
    model, _ = bundled
    data = _subset(bundled_mnist, 100, 100)
    with pytest.raises(UserError, match="cannot sample"):
        sample_quality(_model("ae", data), data, model, n=10)
    other = _toy_folder_data()
    with pytest.raises(UserError, match="image shapes differ"):
        sample_quality(_model("vae", other), data, model, n=10)
