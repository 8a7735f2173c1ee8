"""Opening a checkpoint is bounded at every step (issue 13, items 3 and 4).

Special files (a FIFO, a link to /dev/zero, a folder) are refused before a byte is read; a
header's claimed size is checked before it is read; JSON nesting, history length, class
count and image shape are bounded; weights must be sane and give a finite forward pass;
and what the model needs is checked against free memory. Every hostile file is made in
tmp_path, small: the 200 MB header is a sparse file, the million-step history is built as
text in well under a second, and nothing here can hang (FIFOs are unblocked by the test if
the loader ever waits on one).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import torch
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from safetensors import safe_open
from safetensors.torch import save as st_save

from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.errors import CheckpointError, UserError
from explorer.models import Autoencoder
from explorer.training import checkpoint as ckpt_mod
from explorer.training.checkpoint import (
    MAX_HEADER_BYTES,
    MAX_HISTORY_STEPS,
    json_depth,
    load_checkpoint,
    parse_checkpoint,
    save_checkpoint,
)
from explorer.training.history import History

pytestmark = pytest.mark.usefixtures("single_thread_torch")

TINY = ModelConfig(preset="vae", family="mlp", variational=True, latent_dim=2, hidden_dims=(5,),
                   image_shape=(1, 6, 6))


def tiny_model(config: ModelConfig = TINY, seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return Autoencoder(config)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "good.safetensors", tiny_model(), DataConfig(limit=50),
                           TrainConfig(epochs=1), class_names=("a", "b"))


def parts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def refused(path: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert message.splitlines() == [message] and len(message) < 700, message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


def rewritten(src: Path, dst: Path, tensors=None, **metadata: str) -> Path:
    t, m = parts(src)
    if tensors is not None:
        t = tensors(t)
    m.update(metadata)
    dst.write_bytes(st_save(t, metadata=m))
    return dst


# -- special files ------------------------------------------------------------------------------


def _load_in_thread(path: Path) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["ckpt"] = load_checkpoint(path)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_at_once_and_cannot_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    thread, outcome = _load_in_thread(fifo)
    thread.join(timeout=10)
    if thread.is_alive():  # it blocked: give it a writer that closes at once, so the thread ends
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(timeout=10)
        pytest.fail("loading a FIFO blocked")
    error = outcome.get("error")
    assert isinstance(error, CheckpointError), outcome
    assert "fifo" in str(error).lower() and "pipe.safetensors" in str(error)


def test_a_link_to_dev_zero_is_refused_without_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    monkeypatch.setattr(ckpt_mod.os, "read", lambda *a: pytest.fail("read from a device"))
    refused(link, "zero.safetensors", "device")


def test_a_link_to_dev_null_and_a_folder_and_a_broken_link_are_refused(tmp_path: Path) -> None:
    if Path("/dev/null").exists():
        (tmp_path / "null.safetensors").symlink_to("/dev/null")
        refused(tmp_path / "null.safetensors", "device")
    (tmp_path / "dir.safetensors").mkdir()
    refused(tmp_path / "dir.safetensors", "folder")
    (tmp_path / "gone.safetensors").symlink_to(tmp_path / "missing")
    refused(tmp_path / "gone.safetensors", "broken link")
    refused(tmp_path / "absent.safetensors", "does not exist")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_the_cli_refuses_a_fifo_and_dev_zero_in_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.safetensors"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero):
        start = time.monotonic()
        rc, out, err = run("evaluate", path, "--device", "cpu")
        assert time.monotonic() - start < 30
        assert rc == 2 and out == "" and len(err.splitlines()) == 1 and path.name in err, err


# -- sizes read and parsed ----------------------------------------------------------------------


def test_a_200_mb_header_claim_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claim = 200 * 1024**2
    sparse = tmp_path / "big-header.safetensors"
    with open(sparse, "wb") as fh:
        fh.write(claim.to_bytes(8, "little"))
        fh.truncate(8 + claim + 1024)  # sparse: no 200 MB written
    asked: list[int] = []
    real_read = os.read
    monkeypatch.setattr(ckpt_mod.os, "read", lambda fd, n: asked.append(n) or real_read(fd, n))
    start = time.perf_counter()
    refused(sparse, "big-header.safetensors", "header", "200.0 MiB")
    assert time.perf_counter() - start < 1 and max(asked) <= 8, asked
    # the claim alone, with nothing behind it, is a truncated file
    alone = tmp_path / "claim.safetensors"
    alone.write_bytes(claim.to_bytes(8, "little"))
    refused(alone, "truncated")
    assert MAX_HEADER_BYTES < claim


def test_tensor_data_larger_than_the_config_allows_is_refused_before_it_is_read(good: Path, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    path = rewritten(good, tmp_path / "padded.safetensors",
                     tensors=lambda t: {**t, "junk": torch.zeros(4 * 1024**2, dtype=torch.uint8)})
    monkeypatch.setattr(ckpt_mod, "st_load", lambda raw: pytest.fail("read the tensors"))
    refused(path, "tensor data")


def test_a_header_listing_a_flood_of_tensors_is_refused_before_they_are_made(good: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = rewritten(good, tmp_path / "flood.safetensors",
                     tensors=lambda t: {**t, **{f"x{i}": torch.zeros(0) for i in range(5000)}})
    monkeypatch.setattr(ckpt_mod, "st_load", lambda raw: pytest.fail("made the tensors"))
    refused(path, "5,010 tensors")


def test_json_depth_is_measured_fast_and_deep_nesting_is_refused(good: Path, tmp_path: Path) -> None:
    assert json_depth('{"a": [1, {"b": "[[[[{{"}]}') == 3  # brackets inside strings do not count
    assert json_depth('"\\"[[["') == 0
    deep = "[" * 200_000 + "]" * 200_000
    start = time.perf_counter()
    assert json_depth(deep) == 200_000
    assert time.perf_counter() - start < 1
    for key in ("history", "model_config", "class_names"):
        path = rewritten(good, tmp_path / f"deep-{key}.safetensors", **{key: deep})
        refused(path, "nested")


def test_a_deeply_nested_header_is_refused(tmp_path: Path) -> None:
    body = b'{"__metadata__": {"format": "latent-explorer/checkpoint"}, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    path = tmp_path / "nested.safetensors"
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    refused(path, "not a latent explorer checkpoint")


def test_a_million_step_history_loads_without_parsing_it(good: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """31 MB of JSON history took 1.6 s to parse, holding the interpreter (and so the window,
    though the open runs in the background). The app writes at most 4,000 step rows, in the
    tensor body: a JSON history this long is foreign, so it is left unread, with a note."""
    rows = ",".join(f"[{i},1]" for i in range(1, 1_000_001))
    epochs = ",".join(f'{{"epoch":{e},"global_step":{e * 50}}}' for e in range(1, 20_001))
    history = f'{{"part_names":["recon"],"epochs":[{epochs}],"steps":[{rows}],"stride":1}}'
    path = rewritten(good, tmp_path / "long.safetensors", history=history)
    parsed: list[int] = []
    real_loads = json.loads
    monkeypatch.setattr(ckpt_mod.json, "loads", lambda text, *a, **k: parsed.append(len(text)) or real_loads(
        text, *a, **k))
    ckpt = load_checkpoint(path)
    monkeypatch.undo()
    # The header (a JSON object holding the history as one string) is parsed once, fast; the
    # history's own JSON is not parsed at all.
    assert len(history) not in parsed and len([n for n in parsed if n > 1024**2]) == 1, parsed
    assert ckpt.history.steps == [] and ckpt.history.epochs == []
    assert ckpt.history.part_names == ckpt.build_model().part_names
    (note,) = ckpt.notes
    assert "loss history" in note and "\n" not in note


def test_step_rows_in_the_tensor_body_are_checked_and_thinned(good: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(good)
    model = ckpt.build_model()
    steps = [[float(i), 2.0, 1.5, 0.5] for i in range(1, 9001)]
    history = History(part_names=model.part_names, steps=steps, max_points=10**6)
    path = save_checkpoint(tmp_path / "rows.safetensors", model, ckpt.data_config, ckpt.train_config, history)
    back = load_checkpoint(path).history
    assert len(back.steps) <= MAX_HISTORY_STEPS
    assert back.steps[0][0] == 1 and back.steps[-1][0] == 9000 and back.to_dict()["stride"] > 1
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["history"])["steps"] == []  # an older reader still opens it
    for bad in (torch.tensor([[float("nan"), 1.0]], dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                torch.tensor([[-5.0, 1.0]], dtype=torch.float64)):
        with safe_open(str(path), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = dict(f.metadata())
        tensors[ckpt_mod.HISTORY_STEPS] = bad
        damaged = tmp_path / "damaged.safetensors"
        damaged.write_bytes(st_save(tensors, metadata=meta))
        refused(damaged, "loss history")


def test_a_history_over_the_header_cap_is_refused(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt_mod, "MAX_HEADER_BYTES", 64 * 1024)
    history = json.dumps(History(steps=[[float(i), 1.0] for i in range(1, 20_000)]).to_dict())
    refused(rewritten(good, tmp_path / "h.safetensors", history=history), "header")


def test_class_counts_are_bounded(good: Path, tmp_path: Path) -> None:
    names = json.dumps([f"c{i}" for i in range(100_001)])
    refused(rewritten(good, tmp_path / "names.safetensors", class_names=names), "100,001 classes")
    long_name = json.dumps(["x" * 5000])
    refused(rewritten(good, tmp_path / "long-name.safetensors", class_names=long_name), "class name")
    cvae = ModelConfig(preset="cvae", family="mlp", variational=True, conditional=True, num_classes=100_000,
                       latent_dim=2, hidden_dims=(), image_shape=(1, 2, 2))
    _, metadata = parts(good)
    metadata["model_config"] = cvae.to_json()
    path = tmp_path / "cvae.safetensors"
    path.write_bytes(st_save({}, metadata=metadata))  # no weights: refused from the config alone
    refused(path, "100,000 classes")
    selects = DataConfig(classes=tuple(range(20_000))).to_json()
    refused(rewritten(good, tmp_path / "selects.safetensors", data_config=selects), "20,000 classes")


def test_a_conditional_model_needs_a_name_per_class(tmp_path: Path) -> None:
    cvae = ModelConfig(preset="cvae", family="mlp", variational=True, conditional=True, num_classes=3,
                       latent_dim=2, hidden_dims=(4,), image_shape=(1, 4, 4))
    path = save_checkpoint(tmp_path / "c.safetensors", tiny_model(cvae), DataConfig(), TrainConfig(),
                           class_names=("a", "b"))
    refused(path, "names 2 classes for a model of 3 classes")
    path = save_checkpoint(tmp_path / "c.safetensors", tiny_model(cvae), DataConfig(), TrainConfig(),
                           class_names=("a", "b", "c"))
    assert load_checkpoint(path).class_names == ("a", "b", "c")


def test_a_tiny_conv_checkpoint_claiming_4096_pixel_images_is_refused(tmp_path: Path) -> None:
    """A 7 KB file whose config says 3x4096x4096 asked for 12 GB on generate --n 64."""
    config = ModelConfig(preset="conv-vae", family="conv", variational=True, latent_dim=2,
                         conv_channels=(1,) * 12, hidden_dims=(), image_shape=(3, 4096, 4096))
    path = save_checkpoint(tmp_path / "huge-images.safetensors", tiny_model(config), DataConfig(), TrainConfig())
    assert path.stat().st_size < 16 * 1024
    refused(path, "3x4096x4096", "at most")


def test_opening_a_model_too_big_for_free_memory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelConfig(preset="conv-vae", family="conv", variational=True, latent_dim=2,
                         conv_channels=(2,) * 10, hidden_dims=(), image_shape=(3, 1024, 1024))
    path = save_checkpoint(tmp_path / "big-images.safetensors", tiny_model(config), DataConfig(), TrainConfig())
    monkeypatch.setenv("LATENT_EXPLORER_FREE_MEMORY", "100M")
    message = refused(path, "big-images.safetensors", "3x1024x1024", "100 MB free")
    assert "~" in message
    monkeypatch.setenv("LATENT_EXPLORER_FREE_MEMORY", "64G")
    assert load_checkpoint(path).model_config.image_shape == (3, 1024, 1024)


# -- weights ------------------------------------------------------------------------------------


def _set(key: str, value: float):
    def change(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        t = dict(t)
        t[key] = t[key].clone()
        t[key].view(-1)[0] = value
        return t
    return change


def test_absurd_finite_weights_are_refused_naming_the_layer(good: Path, tmp_path: Path) -> None:
    path = rewritten(good, tmp_path / "absurd.safetensors", tensors=_set("model.decoder.out.weight", 3e38))
    refused(path, "absurd.safetensors", "the weights of layer decoder.out are out of range", "3e+38")
    for value in (-2e4, 1.5e4):
        refused(rewritten(good, tmp_path / "big.safetensors", tensors=_set("model.mean_head.bias", value)),
                "mean_head", "out of range")


def test_weights_in_range_that_overflow_a_forward_pass_are_refused(good: Path, tmp_path: Path) -> None:
    def overflowing(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        t = dict(t)
        for key in t:
            t[key] = torch.full_like(t[key], 9e3)  # each under the cap; together 9e3**4 * widths > 3.4e38
        return t
    path = rewritten(good, tmp_path / "overflow.safetensors", tensors=overflowing)
    message = refused(path, "out of range")
    assert "layer" in message or "not finite" in message


def test_a_huge_logvar_that_makes_the_code_infinite_is_refused(good: Path, tmp_path: Path) -> None:
    def huge_logvar(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        t = dict(t)
        t["model.logvar_head.bias"] = torch.full_like(t["model.logvar_head.bias"], 9e3)  # exp(4500) = inf
        return t
    refused(rewritten(good, tmp_path / "logvar.safetensors", tensors=huge_logvar), "out of range")


def test_the_check_leaves_the_random_state_and_the_weights_alone(good: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ckpt = load_checkpoint(good)
    assert torch.equal(torch.rand(3), expected)
    model = ckpt.build_model()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_model().state_dict().values()))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_parse_checkpoint_applies_the_same_bounds(good: Path) -> None:
    raw = good.read_bytes()
    assert parse_checkpoint(raw, good).model_config == TINY
    claim = (200 * 1024**2).to_bytes(8, "little")
    with pytest.raises(CheckpointError, match="truncated"):
        parse_checkpoint(claim + raw[8:], good)
