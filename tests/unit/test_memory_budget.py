"""explorer.memory_budget: estimates from the config alone, refusals in one line that say
what to change, with a fake amount of free memory (no test allocates what it prices)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from explorer import memory_budget as mb
from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.data.dataset import ImageData
from explorer.errors import UserError
from explorer.memory_budget import MemoryBudgetError, check_generate, check_model, check_open, check_training
from explorer.models import PRESETS, build_model, config_for_data
from explorer.training import runs

GB = 10**9
MNIST = (1, 28, 28)


def preset(name: str, shape=MNIST, classes: int = 10) -> ModelConfig:
    return config_for_data(PRESETS[name].model, shape, classes)


def one_line(exc: pytest.ExceptionInfo, *words: str) -> str:
    message = str(exc.value)
    assert isinstance(exc.value, UserError)
    assert message.splitlines() == [message], message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("shape", [MNIST, (3, 32, 32), (3, 17, 9), (1, 5, 64)])
def test_the_weight_count_is_what_torch_builds(name: str, shape) -> None:
    config = preset(name, shape)
    with torch.device("meta"):
        model = build_model(config)
    assert mb.weight_count(config) == sum(v.numel() for v in model.state_dict().values())
    assert mb.model_bytes(config) == 4 * mb.weight_count(config)


def test_odd_architectures_count_right_too() -> None:
    for config in (replace(PRESETS["conv-cvae"].model, conv_channels=(3, 5, 7), hidden_dims=(11, 13), num_classes=4),
                   replace(PRESETS["conv-ae"].model, conv_channels=(2,), hidden_dims=()),
                   replace(PRESETS["deep-ae"].model, hidden_dims=(3, 1, 9))):
        with torch.device("meta"):
            model = build_model(config)
        assert mb.weight_count(config) == sum(v.numel() for v in model.state_dict().values())


def test_ten_million_images_are_refused_saying_what_to_change() -> None:
    with pytest.raises(MemoryBudgetError) as info:
        check_generate(preset("vae"), 10_000_000, available=20 * GB)
    message = one_line(info, "generating 10,000,000 images of 1x28x28 needs ~", "this machine has 20 GB free",
                       "ask for fewer with --n")
    needed = float(message.split("~")[1].split()[0].replace(",", ""))
    assert 31 <= needed <= 120  # at least the 31 GB of float32 images themselves
    fits = int(message.split("at most about ")[1].split(")")[0].replace(",", ""))
    assert check_generate(preset("vae"), fits, available=20 * GB) <= 20 * GB  # the advice is honest
    assert check_generate(preset("vae"), 64, available=20 * GB) < 10**8


def test_generating_per_class_counts_every_class() -> None:
    cvae = preset("cvae", classes=10_000)
    with pytest.raises(MemoryBudgetError) as info:
        check_generate(cvae, 1000, per_class=True, available=4 * GB)
    one_line(info, "generating 10,000,000 images", "1,000 for each of 10,000 classes", "per class")
    check_generate(cvae, 1000, available=4 * GB)  # 1000 in all fits


def test_a_huge_model_is_refused_before_it_is_built() -> None:
    wide = replace(preset("vae"), hidden_dims=(65536, 65536, 65536))
    with pytest.raises(MemoryBudgetError) as info:
        check_model(wide, available=20 * GB)
    one_line(info, "weights", "--hidden")
    assert check_model(preset("vae"), available=20 * GB) < 10**8


def test_the_window_gets_its_own_words() -> None:
    with pytest.raises(MemoryBudgetError) as info:
        check_training(preset("conv-vae"), (60000, *MNIST), 60000, available=4 * GB, ui="window")
    message = one_line(info, "choose a smaller batch size (at most about")
    assert "--" not in message
    with pytest.raises(MemoryBudgetError) as info:
        check_generate(preset("vae"), 10**8, available=4 * GB, ui="window")
    assert "--" not in one_line(info, "ask for fewer images")
    with pytest.raises(MemoryBudgetError) as info:
        check_model(replace(preset("vae"), hidden_dims=(65536, 65536)), available=4 * GB, ui="window")
    assert "--" not in one_line(info, "hidden sizes")
    with pytest.raises(MemoryBudgetError, match="^x needs"):
        mb._check(10, "x", "do y", 1)


def test_a_huge_batch_is_refused_with_a_batch_that_fits() -> None:
    config = preset("conv-vae")
    with pytest.raises(MemoryBudgetError) as info:
        check_training(config, (60000, *MNIST), 60000, available=4 * GB)
    message = one_line(info, "batches of 60,000", "--batch-size")
    fits = int(message.split("at most about ")[1].split(")")[0].replace(",", ""))
    assert 100 < fits < 60000
    check_training(config, (60000, *MNIST), fits, available=4 * GB)


def test_training_on_an_accelerator_counts_the_images_copied_there() -> None:
    config = preset("vae")
    data = (10_000_000, *MNIST)  # 7.8 GB of uint8 images
    check_training(config, data, 128, available=4 * GB, device="cpu")  # already in host memory
    with pytest.raises(MemoryBudgetError) as info:
        check_training(config, data, 128, available=4 * GB, device="cuda")
    one_line(info, "the cuda device has 4.0 GB free", "--limit")


def test_opening_prices_the_file_the_weights_and_a_view_batch() -> None:
    config = preset("conv-vae", (3, 1024, 1024))
    with pytest.raises(MemoryBudgetError) as info:
        check_open(config, 7000, available=1 * GB)
    one_line(info, "3x1024x1024")
    assert check_open(preset("vae"), 2_000_000, available=1 * GB) > 4_000_000


def test_unknown_free_memory_refuses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mb.ENV_FREE, raising=False)
    monkeypatch.setattr(mb, "host_available", lambda: None)
    assert check_generate(preset("vae"), 10**9) > 10**12  # priced (about 3 TB), yet not refused


def test_free_memory_comes_from_the_system_or_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mb.ENV_FREE, raising=False)
    free = mb.host_available()
    assert free is None or free > 10**7
    for text, value in (("20G", 20 * GB), ("20GiB", 20 * 1024**3), ("1.5 GB", 1_500_000_000), ("123", 123),
                        ("64k", 64_000)):
        monkeypatch.setenv(mb.ENV_FREE, text)
        assert mb.host_available() == value
        assert mb.device_available("cuda") == value
    monkeypatch.setenv(mb.ENV_FREE, "lots")
    assert mb.host_available() == free or free is None or mb.host_available() > 10**7  # ignored
    monkeypatch.setenv(mb.ENV_FREE, "1M")
    with pytest.raises(MemoryBudgetError, match="this machine has 1.0 MB free"):
        check_model(preset("vae"))


def test_sizes_read_as_a_person_reads_them() -> None:
    assert mb.format_bytes(31.36e9) == "31 GB"
    assert mb.format_bytes(4.6e9) == "4.6 GB"
    assert mb.format_bytes(12e6) == "12 MB"
    assert mb.format_bytes(5e12) == "5.0 TB"
    assert mb.format_bytes(100) == "100 bytes"


def test_the_module_imports_without_torch_or_qt() -> None:
    code = ("import sys; import explorer.memory_budget; "
            "bad = [m for m in ('torch', 'PySide6', 'numpy') if m in sys.modules]; print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def _data(n: int = 40) -> ImageData:
    images = torch.zeros(n, *MNIST, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    return ImageData("fake", images, labels, images[:8].clone(), labels[:8].clone(), tuple(str(i) for i in range(10)))


def test_prepare_run_refuses_a_model_too_big_before_building_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "build_model", lambda config: pytest.fail("built a model that cannot fit"))
    monkeypatch.setenv(mb.ENV_FREE, "20G")
    wide = replace(PRESETS["vae"].model, hidden_dims=(65536, 65536, 65536))
    with pytest.raises(MemoryBudgetError) as info:
        runs.prepare_run(wide, DataConfig(), TrainConfig(device="cpu"), data=_data())
    one_line(info, "needs ~", "20 GB free")


def test_prepare_run_refuses_a_batch_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "build_model", lambda config: pytest.fail("built a model for a run that cannot fit"))
    monkeypatch.setenv(mb.ENV_FREE, "100M")
    with pytest.raises(MemoryBudgetError) as info:
        runs.prepare_run(PRESETS["conv-vae"].model, DataConfig(), TrainConfig(device="cpu", batch_size=60000),
                         data=_data(2000))
    one_line(info, "batches of 2,000", "--batch-size")
    with pytest.raises(MemoryBudgetError, match="choose a smaller batch size"):
        runs.prepare_run(PRESETS["conv-vae"].model, DataConfig(), TrainConfig(device="cpu", batch_size=60000),
                         data=_data(2000), ui="window")


def test_prepare_run_builds_what_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mb.ENV_FREE, "2G")
    run = runs.prepare_run(PRESETS["vae"].model, DataConfig(), TrainConfig(device="cpu"), data=_data())
    assert run.model.config.image_shape == MNIST
