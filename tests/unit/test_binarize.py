"""Binarised data (issue #14): every pixel 0 or 255, drawn reproducibly, the test split the
same for every run whatever the mode, and dynamic runs redrawing each batch on the device."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from explorer.config import BINARIZE_LABELS, BINARIZE_MODES, DataConfig, TrainConfig
from explorer.data import load_dataset
from explorer.data.binarize import TEST_SEED, TRAIN_SEED, binarize, is_binary
from explorer.data.dataset import ImageData
from explorer.errors import ConfigError
from explorer.models import PRESETS, build_model, config_for_data
from explorer.training.engine import run_to_end, train

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture(scope="module")
def loads(tmp_path_factory: pytest.TempPathFactory):
    """load_dataset with a private cache, each distinct config loaded once per module."""
    cache = tmp_path_factory.mktemp("binarize-cache")
    seen: dict[DataConfig, ImageData] = {}

    def load(**kw) -> ImageData:
        config = DataConfig(**kw)
        if config not in seen:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("LATENT_EXPLORER_CACHE", str(cache))
                seen[config] = load_dataset(config)
        return seen[config]

    return load


# -- the draw itself ----------------------------------------------------------------------


def test_values_are_0_or_255_and_the_mean_is_kept() -> None:
    grey = torch.full((2000, 1, 8, 8), 64, dtype=torch.uint8)
    grey[1000:] = 200
    out = binarize(grey, seed=3)
    assert out.dtype == torch.uint8 and out.shape == grey.shape
    assert is_binary(out) and not is_binary(grey)
    # 64 000 pixels each: the standard error of the mean is about 0.002
    assert out[:1000].float().mean().item() / 255 == pytest.approx(64 / 255, abs=0.01)
    assert out[1000:].float().mean().item() / 255 == pytest.approx(200 / 255, abs=0.01)


def test_black_stays_black_and_white_stays_white() -> None:
    images = torch.tensor([0, 255], dtype=torch.uint8).repeat(50).reshape(100, 1, 1, 1)
    assert torch.equal(binarize(images, seed=0), images)


def test_the_same_seed_gives_the_same_draw_and_another_seed_another() -> None:
    grey = torch.randint(0, 256, (300, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(binarize(grey, 7), binarize(grey, 7))
    assert not torch.equal(binarize(grey, 7), binarize(grey, 8))


def test_chunking_keeps_memory_bounded_and_the_result_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    import explorer.data.binarize as module

    grey = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    whole = binarize(grey, 5)
    monkeypatch.setattr(module, "_CHUNK_PIXELS", 64 * 7)  # 7 images a chunk, the last one short
    chunked = binarize(grey, 5)
    assert is_binary(chunked) and torch.equal(chunked, binarize(grey, 5))
    assert chunked.float().mean().item() == pytest.approx(whole.float().mean().item(), rel=0.1)


def test_the_seeds_are_fixed_constants() -> None:
    assert isinstance(TEST_SEED, int) and isinstance(TRAIN_SEED, int) and TEST_SEED != TRAIN_SEED


# -- the config ---------------------------------------------------------------------------


def test_data_config_refuses_an_unknown_mode_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        DataConfig(binarize="bogus")
    assert "binarize" in str(err.value) and "\n" not in str(err.value)
    assert BINARIZE_MODES == ("none", "dynamic", "static")
    assert set(BINARIZE_LABELS) == set(BINARIZE_MODES)


def test_an_old_config_without_the_field_loads_as_grey() -> None:
    old = DataConfig().to_dict()
    del old["binarize"]
    assert DataConfig.from_dict(old).binarize == "none"
    assert DataConfig.from_dict({**old, "binarize": "static"}).binarize == "static"


# -- load_dataset -------------------------------------------------------------------------


def test_the_test_split_is_one_binary_set_for_every_load_and_mode(loads) -> None:
    dynamic, static = loads(binarize="dynamic"), loads(binarize="static")
    assert is_binary(dynamic.test_images)
    assert torch.equal(dynamic.test_images, static.test_images)
    again = load_dataset(DataConfig(binarize="dynamic"))
    assert torch.equal(again.test_images, dynamic.test_images)
    grey = loads()
    assert not is_binary(grey.test_images) and not grey.binarize_train
    assert torch.equal(dynamic.test_images, binarize(grey.test_images, TEST_SEED))


def test_dynamic_leaves_the_train_split_grey_and_says_so(loads) -> None:
    dynamic = loads(binarize="dynamic")
    assert dynamic.binarize_train and not is_binary(dynamic.train_images)


def test_static_binarises_the_train_split_once(loads) -> None:
    static = loads(binarize="static")
    assert not static.binarize_train and is_binary(static.train_images)
    grey = loads()
    assert torch.equal(static.train_images, binarize(grey.train_images, TRAIN_SEED))


def test_a_limited_or_filtered_test_set_is_a_subset_of_the_full_one(loads) -> None:
    full = loads(binarize="dynamic")
    limited = loads(binarize="dynamic", limit=50)
    assert torch.equal(limited.test_images, full.test_images[:50]) and limited.binarize_train
    sevens = loads(binarize="static", classes=(7,), limit=30)
    wanted = full.test_images[full.test_labels == 7][:30]
    assert torch.equal(sevens.test_images, wanted) and not sevens.binarize_train
    assert full.only_classes((7,)).limited(5).binarize_train


# -- the engine ---------------------------------------------------------------------------


def _batches_seen(data: ImageData, steps: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(config_for_data(PRESETS["ae"].model, (1, 28, 28), 10))
    seen: list[torch.Tensor] = []
    forward = model.forward

    def spy(x, y=None):
        seen.append(x.detach().clone())
        return forward(x, y)

    model.forward = spy  # type: ignore[method-assign]
    cfg = TrainConfig(epochs=1, batch_size=data.train_images.shape[0] // steps, lr=1e-3, device="cpu",
                      log_every=1, compile="off")
    _, result = run_to_end(train(model, data, cfg))
    assert result.status == "completed"
    return seen


def test_a_dynamic_run_trains_on_binary_batches_drawn_afresh(loads) -> None:
    data = loads(binarize="dynamic", limit=96)
    seen = _batches_seen(data)
    assert len(seen) > 3  # three training steps, then the evaluation of the test split
    for xb in seen:
        assert bool(((xb == 0) | (xb == 1)).all())
    # one grey image 32 times: a fixed binarisation would give 32 equal rows, a fresh draw does not
    one = dataclasses.replace(data, train_images=data.train_images[:1].repeat(32, 1, 1, 1),
                              train_labels=data.train_labels[:1].repeat(32))
    batch = _batches_seen(one, steps=1)[0]
    assert batch.shape[0] == 32 and bool(((batch == 0) | (batch == 1)).all())
    assert not all(torch.equal(batch[0], row) for row in batch[1:])
    # and its mean follows the grey image's intensities
    grey = data.train_images[0].float() / 255
    assert batch.mean(0).sum().item() == pytest.approx(grey.sum().item(), rel=0.15)


def test_a_grey_run_is_unchanged(loads) -> None:
    seen = _batches_seen(loads(limit=96))
    assert not bool(((seen[0] == 0) | (seen[0] == 1)).all())
