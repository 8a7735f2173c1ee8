"""The model zoo: one Autoencoder class, configured by presets, keeping one contract."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.data.dataset import to_float
from explorer.errors import ConfigError, UserError
from explorer.models import PRESETS, Autoencoder, build_model, config_for_data, get_preset
from explorer.models.losses import gaussian_kl, kl_per_dimension, reconstruction_loss
from explorer.models.noise import corrupt

PRESET_NAMES = sorted(PRESETS)
VARIATIONAL = sorted(n for n, p in PRESETS.items() if p.model.variational)
PLAIN = sorted(n for n, p in PRESETS.items() if not p.model.variational)
CONDITIONAL = sorted(n for n, p in PRESETS.items() if p.model.conditional)
SHAPES = [(1, 28, 28), (3, 30, 17)]

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def make(name: str, shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return build_model(config_for_data(PRESETS[name].model, shape, num_classes))


def labels_for(model: Autoencoder, n: int) -> torch.Tensor | None:
    return torch.arange(n) % model.config.num_classes if model.is_conditional else None


# -- the registry ------------------------------------------------------------------------


def test_registry_holds_the_agreed_presets() -> None:
    assert set(PRESETS) == {"ae", "deep-ae", "sparse-ae", "denoising-ae", "conv-ae", "vae", "beta-vae",
                            "conv-vae", "cvae", "conv-cvae"}
    for name, preset in PRESETS.items():
        assert preset.model.preset == name
    vae = PRESETS["vae"].model
    assert (vae.family, vae.hidden_dims, vae.latent_dim, vae.variational) == ("mlp", (400,), 20, True)
    assert PRESETS["beta-vae"].model.beta > 1


def test_get_preset_unknown_name_is_a_config_error() -> None:
    assert get_preset("vae") is PRESETS["vae"]
    with pytest.raises(ConfigError, match="no-such-model"):
        get_preset("no-such-model")


def test_config_for_data_fits_shape_and_classes() -> None:
    cfg = config_for_data(PRESETS["cvae"].model, (3, 30, 17), 4)
    assert cfg.image_shape == (3, 30, 17) and cfg.num_classes == 4
    # a model that is not conditional does not carry a class count
    assert config_for_data(PRESETS["vae"].model, (1, 28, 28), 10).num_classes == 0
    with pytest.raises(ConfigError, match="conditional"):
        config_for_data(PRESETS["cvae"].model, (1, 28, 28), 0)


# -- shapes and the contract -------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_forward_encode_decode_shapes(name: str, shape: tuple[int, int, int]) -> None:
    model = make(name, shape)
    model.eval()
    n = 5
    x = torch.rand(n, *shape)
    y = labels_for(model, n)
    latent = model.config.latent_dim

    out = model(x, y)
    assert out.logits.shape == (n, *shape)
    assert out.recon.shape == (n, *shape)
    assert out.z.shape == (n, latent)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)

    dist = model.encode(x, y)
    assert dist.mean.shape == (n, latent)
    if model.config.variational:
        assert dist.logvar is not None and dist.logvar.shape == (n, latent)
    else:
        assert dist.logvar is None
    if model.config.code_activation == "relu":
        assert (dist.mean >= 0).all()

    images = model.decode(dist.mean, y)
    assert images.shape == (n, *shape)
    assert images.min() >= 0 and images.max() <= 1
    # even for codes far outside anything seen in training
    wild = model.decode(torch.randn(n, latent) * 100, y)
    assert wild.shape == (n, *shape)
    assert wild.min() >= 0 and wild.max() <= 1
    assert model.reconstruct(x, y).shape == (n, *shape)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_parts_match_part_names_and_make_up_the_loss(name: str) -> None:
    model = make(name)
    model.eval()
    x = torch.rand(6, 1, 28, 28)
    out = model(x, labels_for(model, 6))
    cfg = model.config
    assert tuple(out.parts) == model.part_names
    assert ("kl" in model.part_names) == cfg.variational
    assert ("sparsity" in model.part_names) == (cfg.sparsity_weight > 0)
    assert model.part_names[0] == "recon"
    for value in out.parts.values():
        assert value.dim() == 0 and torch.isfinite(value)
    expected = out.parts["recon"]
    if "kl" in out.parts:
        expected = expected + model.beta * out.parts["kl"]
    if "sparsity" in out.parts:
        expected = expected + cfg.sparsity_weight * out.parts["sparsity"]
    torch.testing.assert_close(out.loss, expected)


def test_runtime_beta_weights_the_kl_term() -> None:
    model = make("vae")
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(3)
    base = model(x)
    model.beta = 5.0
    torch.manual_seed(3)
    heavy = model(x)
    torch.testing.assert_close(heavy.parts["kl"], base.parts["kl"])
    torch.testing.assert_close(heavy.loss, base.parts["recon"] + 5.0 * base.parts["kl"])
    assert model.config.beta == 1.0  # the frozen config is untouched


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_loss_falls_on_a_fixed_batch(name: str, bundled_mnist) -> None:
    model = make(name)
    x = to_float(bundled_mnist.train_images[:64])
    y = bundled_mnist.train_labels[:64] if model.is_conditional else None
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def eval_loss() -> float:
        model.eval()
        torch.manual_seed(123)  # the same reparameterisation noise before and after
        with torch.no_grad():
            value = model(x, y).loss.item()
        model.train()
        return value

    before = eval_loss()
    model.train()
    for _ in range(12):
        out = model(x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    after = eval_loss()
    assert math.isfinite(before) and math.isfinite(after)
    assert after < 0.8 * before, (before, after)


# -- conditional models ------------------------------------------------------------------


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_model_rejects_missing_and_out_of_range_labels(name: str) -> None:
    model = make(name)
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    z = torch.randn(3, model.config.latent_dim)
    with pytest.raises(UserError, match="label"):
        model(x)
    with pytest.raises(UserError):
        model.encode(x)
    with pytest.raises(UserError):
        model.decode(z)
    with pytest.raises(UserError):
        model.sample(3)
    with pytest.raises(UserError, match="10"):
        model(x, torch.tensor([0, 10, 1]))
    with pytest.raises(UserError):
        model(x, torch.tensor([0, -1, 1]))
    with pytest.raises(UserError):
        model.decode(z, torch.tensor(10))
    # good labels work, a single label stands for the whole batch, and the label matters
    assert model(x, torch.tensor([0, 9, 4])).logits.shape == (3, 1, 28, 28)
    assert model.sample(3, torch.tensor(7)).shape == (3, 1, 28, 28)
    assert not torch.allclose(model.decode(z, torch.tensor(0)), model.decode(z, torch.tensor(1)))


def test_conditional_error_names_the_negative_label() -> None:
    model = make("cvae")
    model.eval()
    with pytest.raises(UserError, match="-1"):
        model(torch.rand(2, 1, 28, 28), torch.tensor([-1, 3]))


# -- sampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLAIN)
def test_sample_on_a_plain_autoencoder_is_a_user_error(name: str) -> None:
    model = make(name)
    assert not model.is_generative
    with pytest.raises(UserError, match="sample"):
        model.sample(4)


@pytest.mark.parametrize("name", VARIATIONAL)
def test_sample_with_a_generator_is_reproducible(name: str) -> None:
    model = make(name)
    model.eval()
    y = torch.tensor(3) if model.is_conditional else None
    a = model.sample(4, y, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(999)  # the global RNG must not matter
    b = model.sample(4, y, generator=torch.Generator().manual_seed(7))
    c = model.sample(4, y, generator=torch.Generator().manual_seed(8))
    assert a.shape == (4, 1, 28, 28)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# -- input noise -------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.1, 0.4])
def test_mask_noise_zeroes_about_level_of_the_pixels(level: float) -> None:
    torch.manual_seed(0)
    x = torch.full((64, 1, 28, 28), 0.6)
    out = corrupt(x, "mask", level)
    hit = out != x
    assert abs(hit.float().mean().item() - level) < 0.02
    assert (out[hit] == 0).all()
    assert torch.equal(out[~hit], x[~hit])
    assert torch.equal(x, torch.full_like(x, 0.6))  # the input is not modified in place


@pytest.mark.parametrize("level", [0.1, 0.4])
def test_salt_pepper_noise_sets_about_level_of_the_pixels_to_0_or_1(level: float) -> None:
    torch.manual_seed(0)
    x = torch.full((64, 1, 28, 28), 0.5)
    out = corrupt(x, "salt-pepper", level)
    hit = out != x
    assert abs(hit.float().mean().item() - level) < 0.02
    assert set(out[hit].unique().tolist()) == {0.0, 1.0}
    # roughly as many salt as pepper
    assert abs((out[hit] == 1).float().mean().item() - 0.5) < 0.05


def test_gaussian_noise_has_the_level_as_std_and_stays_in_range() -> None:
    torch.manual_seed(0)
    x = torch.full((64, 1, 28, 28), 0.5)
    out = corrupt(x, "gaussian", 0.1)
    assert out.min() >= 0 and out.max() <= 1
    assert abs((out - x).std().item() - 0.1) < 0.005
    big = corrupt(torch.rand(16, 1, 28, 28), "gaussian", 2.0)
    assert big.min() >= 0 and big.max() <= 1
    assert ((big == 0) | (big == 1)).float().mean() > 0.5  # heavily clipped, not out of range


def test_no_noise_is_the_identity() -> None:
    x = torch.rand(4, 1, 28, 28)
    assert corrupt(x, "none", 0.5) is x
    assert corrupt(x, "gaussian", 0.0) is x


def test_corruption_applies_only_in_train_mode() -> None:
    model = make("denoising-ae")
    assert model.config.noise == "gaussian" and model.config.noise_level > 0
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        clean_logits = model.decode_logits(model.encode(x).mean)

        model.eval()
        torch.manual_seed(1)
        e1 = model(x)
        torch.manual_seed(2)
        e2 = model(x)
        assert torch.equal(e1.logits, clean_logits)
        assert torch.equal(e2.logits, clean_logits)

        model.train()
        torch.manual_seed(1)
        t1 = model(x)
        torch.manual_seed(2)
        t2 = model(x)
        assert not torch.allclose(t1.logits, clean_logits)
        assert not torch.allclose(t1.logits, t2.logits)
        # the target is still the clean image, not the corrupted input
        torch.testing.assert_close(t1.parts["recon"], reconstruction_loss(t1.logits, x, "bce").mean())


# -- loss terms --------------------------------------------------------------------------


def test_kl_is_zero_for_the_prior_and_matches_the_closed_form() -> None:
    zeros = torch.zeros(3, 5)
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(3))
    assert torch.equal(kl_per_dimension(zeros, zeros), torch.zeros(5))
    # mean 1, var 1: 0.5 nats per dimension
    torch.testing.assert_close(gaussian_kl(torch.ones(3, 5), zeros), torch.full((3,), 2.5))
    # mean 0, logvar log 4: 0.5 * (4 - 1 - log 4) per dimension
    logvar = torch.full((2, 5), math.log(4.0))
    torch.testing.assert_close(gaussian_kl(torch.zeros(2, 5), logvar),
                               torch.full((2,), 5 * 0.5 * (4 - 1 - math.log(4.0))))
    assert (gaussian_kl(torch.randn(10, 4), torch.randn(10, 4)) >= 0).all()


def test_bce_recon_loss_equals_torch_bce_summed_per_image() -> None:
    torch.manual_seed(0)
    logits = torch.randn(7, 1, 28, 28) * 3
    x = torch.rand(7, 1, 28, 28)
    ours = reconstruction_loss(logits, x, "bce")
    assert ours.shape == (7,)
    ref = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / 7
    torch.testing.assert_close(ours.mean(), ref, rtol=1e-5, atol=1e-3)


def test_mse_recon_loss_is_summed_squared_error_per_image() -> None:
    torch.manual_seed(0)
    logits = torch.randn(7, 3, 5, 4)
    x = torch.rand(7, 3, 5, 4)
    expected = ((torch.sigmoid(logits) - x) ** 2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(reconstruction_loss(logits, x, "mse"), expected)


def test_model_recon_part_uses_the_configured_loss() -> None:
    from explorer.config import replace

    torch.manual_seed(0)
    model = build_model(replace(PRESETS["ae"].model, recon_loss="mse"))
    model.eval()
    x = torch.rand(5, 1, 28, 28)
    out = model(x)
    torch.testing.assert_close(out.parts["recon"], ((out.recon - x) ** 2).sum(dim=(1, 2, 3)).mean())
    torch.testing.assert_close(out.loss, out.parts["recon"])


# -- configs -----------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {"latent_dim": 0},
    {"latent_dim": -3},
    {"latent_dim": 2.5},
    {"latent_dim": True},
    {"latent_dim": 70000},
    {"recon_loss": "l1"},
    {"family": "conv", "conv_channels": ()},
    {"family": "transformer"},
    {"conditional": True, "num_classes": 1},
    {"conditional": True, "num_classes": 0},
    {"image_shape": (2, 28, 28)},
    {"image_shape": (1, 28)},
    {"hidden_dims": (400, 0)},
    {"noise": "mask", "noise_level": 1.5},
    {"noise": "speckle"},
    {"beta": -1.0},
    {"beta": float("nan")},
    {"code_activation": "tanh"},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_bad_model_config_is_a_config_error(changes: dict) -> None:
    with pytest.raises(ConfigError):
        ModelConfig(**changes)


def test_config_error_is_a_user_error_and_a_value_error() -> None:
    with pytest.raises(UserError):
        ModelConfig(latent_dim=0)
    with pytest.raises(ValueError, match="latent size"):
        ModelConfig(latent_dim=0)


def test_infinite_sparsity_weight_is_rejected() -> None:
    with pytest.raises(ConfigError):
        ModelConfig(sparsity_weight=float("inf"))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_model_config_round_trips(name: str) -> None:
    cfg = config_for_data(PRESETS[name].model, (3, 30, 17), 10)
    as_dict = cfg.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict  # plain JSON types only
    assert ModelConfig.from_dict(as_dict) == cfg
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg
    assert isinstance(again.hidden_dims, tuple) and isinstance(again.image_shape, tuple)
    assert json.loads(cfg.to_json()) == as_dict


def test_other_configs_round_trip() -> None:
    data = DataConfig(dataset="/some/folder", limit=100, image_size=32, channels=3, classes=(1, 7))
    assert DataConfig.from_json(data.to_json()) == data
    assert DataConfig.from_dict(DataConfig().to_dict()) == DataConfig()
    train = TrainConfig(epochs=3, lr=5e-4, snapshot_interval_s=0.5)
    assert TrainConfig.from_json(train.to_json()) == train


def test_from_dict_rejects_unknown_fields_and_bad_input() -> None:
    data = ModelConfig().to_dict()
    data["lattent_dim"] = 5
    with pytest.raises(ConfigError, match="lattent_dim"):
        ModelConfig.from_dict(data)
    with pytest.raises(ConfigError):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ModelConfig.from_json("{not json")
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({"latent_dim": "20"})
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"epochs": 0})


def test_every_noise_kind_in_the_table_is_implemented() -> None:
    from explorer.config import CORRUPTIONS, FRACTION_NOISES, NOISE_LABELS, NOISE_TYPES

    assert NOISE_TYPES == tuple(NOISE_LABELS) and NOISE_TYPES[0] == "none"
    assert set(CORRUPTIONS) == set(NOISE_TYPES) - {"none"} and set(FRACTION_NOISES) <= set(CORRUPTIONS)
    x = torch.full((2, 1, 8, 8), 0.5)
    for kind in CORRUPTIONS:
        assert not torch.equal(corrupt(x, kind, 0.5, torch.Generator().manual_seed(0)), x), kind
    assert corrupt(x, "none", 0.5) is x
