"""The importance-weighted log-likelihood against exact answers.

Exact answers come two ways: a model whose posterior is the prior and whose decoder
ignores the code (log p(x) is then one Bernoulli likelihood, and every K gives it), and,
for trained 1- and 2-D models, the integral of p(x|z) p(z) on a fine grid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.analysis.likelihood import (
    MAX_K,
    grid_log_likelihood,
    iw_log_likelihood,
    likelihood_notes,
)
from explorer.config import ModelConfig, TrainConfig, replace
from explorer.data.binarize import binarize
from explorer.data.dataset import ImageData, to_float
from explorer.errors import UserError
from explorer.models import build_model, config_for_data, get_preset
from explorer.training.engine import run_to_end, train
from explorer.training.evaluate import evaluate_tensors


@pytest.fixture(scope="module")
def binary_mnist(bundled_mnist: ImageData) -> ImageData:
    small = bundled_mnist.limited(1500)
    return ImageData("mnist-binary", binarize(small.train_images, 1), small.train_labels,
                     binarize(small.test_images[:120], 2), small.test_labels[:120], small.class_names)


def _trained(preset: str, data: ImageData, epochs: int = 4, **changes) -> torch.nn.Module:
    torch.manual_seed(0)
    config = config_for_data(replace(get_preset(preset).model, **changes), data.image_shape, data.num_classes)
    model = build_model(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_to_end(train(model, data, TrainConfig(epochs=epochs, batch_size=64, device="cpu", seed=0)))
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def vae_2d(binary_mnist: ImageData):
    return _trained("vae", binary_mnist, latent_dim=2, hidden_dims=(200,))


@pytest.fixture(scope="module")
def vae_20d(binary_mnist: ImageData):
    return _trained("vae", binary_mnist, epochs=3, hidden_dims=(200,))


def test_posterior_equal_to_prior_and_a_decoder_that_ignores_the_code_give_the_exact_likelihood(binary_mnist):
    config = config_for_data(replace(get_preset("vae").model, latent_dim=3, hidden_dims=(16,)), (1, 28, 28), 10)
    model = build_model(config).eval()
    with torch.no_grad():
        for head in (model.mean_head, model.logvar_head):
            head.weight.zero_()
            head.bias.zero_()  # q(z|x) = N(0, I) = p(z)
        first = next(m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear))
        first.weight.zero_()  # the decoder's output no longer depends on z
    x = binary_mnist.test_images[:10]
    logits = model.decode_logits(torch.zeros(1, 3)).detach().flatten()
    target = to_float(x).flatten(1)
    exact = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits.expand_as(target).double(), target.double(), reduction="none").sum(1).numpy()
    for k in (1, 7, 300):
        estimate = iw_log_likelihood(model, x, None, k, seed=k)
        assert np.allclose(estimate, exact, atol=2e-3), k


def test_the_grid_integral_has_converged(vae_2d, binary_mnist):
    x = binary_mnist.test_images[:20]
    fine = grid_log_likelihood(vae_2d, x, points=500)
    coarse = grid_log_likelihood(vae_2d, x, points=250)
    assert np.abs(fine - coarse).max() < 1e-2
    assert np.isfinite(fine).all() and (fine < 0).all()


def test_the_estimate_converges_to_the_exact_likelihood_of_a_2d_model_from_below(vae_2d, binary_mnist):
    x = binary_mnist.test_images[:40]
    exact = grid_log_likelihood(vae_2d, x, points=500)
    # The estimate is a lower bound in expectation whose gap closes as K grows (Burda et al.,
    # Theorem 1). A briefly trained 2-D model has a poor Gaussian posterior, so the gap at
    # K = 2000 is still about half a nat: measured -2.6, -1.2, -0.6 nats at K = 20, 200, 2000.
    gaps = [float((iw_log_likelihood(vae_2d, x, None, k, seed=0) - exact).mean()) for k in (20, 200, 2000)]
    assert gaps[0] < gaps[1] < gaps[2] < 0.1
    assert abs(gaps[2]) < 1.0


def test_the_estimate_converges_to_the_exact_likelihood_of_a_conditional_model(binary_mnist):
    model = _trained("cvae", binary_mnist, epochs=3, hidden_dims=(200,))
    x, y = binary_mnist.test_images[:20], binary_mnist.test_labels[:20]
    exact = grid_log_likelihood(model, x, y, points=400)
    gaps = [float((iw_log_likelihood(model, x, y, k, seed=1) - exact).mean()) for k in (20, 200, 3000)]
    assert gaps[0] < gaps[1] < gaps[2] < 0.1  # measured about -1.1 nats at K = 1500
    assert abs(gaps[2]) < 1.5
    with pytest.raises(UserError, match="labels"):
        iw_log_likelihood(model, x, None, 10)


def test_the_negative_log_likelihood_falls_with_k_from_the_negative_elbo(vae_20d, binary_mnist):
    x = binary_mnist.test_images
    nll = {k: -iw_log_likelihood(vae_20d, x, None, k, seed=3) for k in (1, 10, 100, 1000)}
    means = {k: v.mean() for k, v in nll.items()}
    assert means[1] > means[10] > means[100] > means[1000]
    # K = 1 is the ELBO: the same expectation as the engine's one-sample negative ELBO.
    neg_elbo = evaluate_tensors(vae_20d, x, None, seed=0)["loss"]
    se = nll[1].std() / math.sqrt(x.shape[0])
    assert abs(means[1] - neg_elbo) < 4 * se + 0.5


def test_batching_and_the_other_images_do_not_change_an_image_s_estimate(vae_20d, binary_mnist):
    x = binary_mnist.test_images[:30]
    whole = iw_log_likelihood(vae_20d, x, None, 400, seed=5)
    # A budget of 50 samples' logits per batch: one image's 400 samples span 8 batches.
    progress: list[tuple[int, int]] = []
    split = iw_log_likelihood(vae_20d, x, None, 400, seed=5, logit_budget=50 * 784,
                              progress=lambda done, total: progress.append((done, total)))
    assert np.allclose(split, whole, rtol=0, atol=1e-4)  # float32 sums in other batch shapes
    assert progress[-1] == (30, 30) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert np.allclose(iw_log_likelihood(vae_20d, x[:10], None, 400, seed=5), whole[:10], rtol=0, atol=1e-4)
    other_seed = iw_log_likelihood(vae_20d, x, None, 400, seed=6)
    assert not np.allclose(other_seed, whole)


def test_models_without_a_likelihood_are_refused_in_one_line(binary_mnist):
    x = binary_mnist.test_images[:4]
    ae = build_model(config_for_data(get_preset("ae").model, (1, 28, 28), 10))
    with pytest.raises(UserError, match="no prior") as plain:
        iw_log_likelihood(ae, x, None, 10)
    mse = build_model(config_for_data(replace(get_preset("vae").model, recon_loss="mse"), (1, 28, 28), 10))
    with pytest.raises(UserError, match="not a normalised likelihood") as squared:
        iw_log_likelihood(mse, x, None, 10)
    vae = build_model(config_for_data(get_preset("vae").model, (1, 28, 28), 10))
    with pytest.raises(UserError, match=f"1 to {MAX_K:,}"):
        iw_log_likelihood(vae, x, None, MAX_K + 1)
    for exc in (plain.value, squared.value):
        assert "\n" not in str(exc)


def test_grey_levels_are_flagged_and_binary_images_are_not(bundled_mnist, binary_mnist):
    assert likelihood_notes(binary_mnist.test_images) == []
    (note,) = likelihood_notes(bundled_mnist.test_images[:100])
    assert "grey levels" in note and "not a likelihood" in note


def test_the_grid_refuses_more_than_two_dimensions():
    model = build_model(ModelConfig(latent_dim=3, hidden_dims=(8,)))
    with pytest.raises(UserError, match="1- or 2-D"):
        grid_log_likelihood(model, torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
