"""Checkpoints: the safetensors file format, atomic writes, refusal of bad files, History."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from explorer import __version__
from explorer.config import DataConfig, TrainConfig, replace
from explorer.data.dataset import ImageData
from explorer.errors import CheckpointError, UserError
from explorer.models import PRESETS, Autoencoder, build_model, config_for_data
from explorer.training import checkpoint as ckpt_mod
from explorer.training.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, save_checkpoint
from explorer.training.engine import train
from explorer.training.events import EpochEnd, StepLoss
from explorer.training.history import History

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "ckpt-cache"))


def make(name: str, seed: int = 0, image_shape=(1, 28, 28), classes: int = 10) -> Autoencoder:
    torch.manual_seed(seed)
    return build_model(config_for_data(PRESETS[name].model, image_shape, classes))


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def trained(name: str, data: ImageData, cfg: TrainConfig) -> tuple[Autoencoder, History]:
    """Train ``name`` for real through the engine and record its history."""
    model = make(name)
    history = History(part_names=model.part_names)
    for event in _drain(train(model, data, cfg)):
        history.record(event)
    return model, history


def _drain(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid (untrained) vae checkpoint to damage in various ways."""
    path = tmp_path_factory.mktemp("ckpt") / "good.safetensors"
    save_checkpoint(path, make("vae"), DataConfig(limit=300), TrainConfig(epochs=1),
                    class_names=tuple(str(d) for d in range(10)))
    return path


# -- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vae", "conv-cvae"])
def test_round_trip_keeps_weights_configs_history_classes_and_runtime_beta(
        name: str, mnist_300: ImageData, tmp_path: Path) -> None:
    data = mnist_300.limited(100)
    cfg = TrainConfig(epochs=1, batch_size=50, lr=1e-3, seed=3, device="cpu", log_every=1)
    model, history = trained(name, data, cfg)
    assert history.last_epoch == 1 and len(history.steps) == 2  # 100 images, batches of 50
    model.beta = 0.25  # changed at run time (the GUI's beta slider); the frozen config still says 1.0
    assert model.config.beta == 1.0
    data_config = DataConfig(dataset="mnist", limit=100)
    before = state(model)

    path = save_checkpoint(tmp_path / f"{name}.safetensors", model, data_config, cfg, history, data.class_names)
    ckpt = load_checkpoint(path)

    assert same_state(ckpt.state_dict, before)
    assert ckpt.model_config == replace(model.config, beta=0.25)
    assert ckpt.model_config.preset == name
    assert ckpt.model_config.conditional == (name == "conv-cvae")
    assert ckpt.data_config == data_config
    assert ckpt.train_config == cfg
    assert ckpt.history.to_dict() == history.to_dict()
    assert ckpt.history.part_names == model.part_names == ("recon", "kl")
    assert ckpt.history.last_epoch == 1
    assert ckpt.history.last_step == 2
    assert [e["epoch"] for e in ckpt.history.epochs] == [1]
    assert ckpt.class_names == tuple(str(d) for d in range(10))
    assert ckpt.app_version == __version__
    assert ckpt.created.startswith(("19", "20"))  # an ISO date

    rebuilt = ckpt.build_model()
    assert not rebuilt.training
    assert rebuilt.beta == 0.25
    assert same_state(state(rebuilt), before)
    z = torch.randn(4, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4) if model.is_conditional else None
    model.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt.decode(z, y), model.decode(z, y))


def test_the_file_is_plain_safetensors_with_our_metadata(small_ckpt: Path) -> None:
    with safe_open(str(small_ckpt), "pt") as f:
        metadata = f.metadata()
        keys = list(f.keys())
    assert metadata["format"] == FORMAT == "latent-explorer/checkpoint"
    assert metadata["format_version"] == FORMAT_VERSION
    assert json.loads(metadata["model_config"])["preset"] == "vae"
    assert json.loads(metadata["data_config"])["limit"] == 300
    assert json.loads(metadata["class_names"]) == [str(d) for d in range(10)]
    assert keys and all(k.startswith("model.") for k in keys)
    tensors = load_file(str(small_ckpt))
    expected = make("vae").state_dict()
    assert {k[len("model."):] for k in tensors} == set(expected)
    assert all(torch.equal(tensors["model." + k], v) for k, v in expected.items())


# -- atomic writes ----------------------------------------------------------------------


def test_saving_twice_leaves_only_the_checkpoint_in_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make("ae", seed=1), DataConfig(), TrainConfig())
    save_checkpoint(path, make("ae", seed=2), DataConfig(), TrainConfig())
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]
    assert same_state(load_checkpoint(path).state_dict, state(make("ae", seed=2)))


def _boom_replace(src, dst, *a, **kw):
    raise OSError(errno.EACCES, "Permission denied")


def _boom_fsync(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("target,boom", [("replace", _boom_replace), ("fsync", _boom_fsync)],
                         ids=["rename-fails", "disk-full"])
def test_a_failed_write_keeps_the_earlier_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     target: str, boom) -> None:
    path = tmp_path / "m.safetensors"
    first = make("ae", seed=1)
    save_checkpoint(path, first, DataConfig(), TrainConfig())
    monkeypatch.setattr(os, target, boom)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, make("ae", seed=2), DataConfig(), TrainConfig())
    monkeypatch.undo()
    message = str(info.value)
    assert "\n" not in message and "m.safetensors" in message
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # the temp file was removed
    assert same_state(load_checkpoint(path).state_dict, state(first))


def test_saving_into_a_missing_folder_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "m.safetensors", make("ae"), DataConfig(), TrainConfig())
    assert not (tmp_path / "nope").exists()


_SAVE_LOOP = textwrap.dedent("""
    import sys, torch
    from explorer.config import DataConfig, TrainConfig
    from explorer.models import PRESETS, build_model, config_for_data
    from explorer.training.checkpoint import save_checkpoint
    torch.set_num_threads(1)
    model = build_model(config_for_data(PRESETS["vae"].model, (1, 28, 28), 10))
    k = 0
    while True:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(k * 2.0**-20)  # small and exact: the loader runs a forward pass on them
        model.beta = float(k)
        save_checkpoint(sys.argv[1], model, DataConfig(), TrainConfig())
        print(k, flush=True)
        k += 1
""")


def test_a_process_killed_while_saving_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        saved = -1
        while saved < 3:  # it is now saving over an existing checkpoint again and again
            line = proc.stdout.readline()
            assert line, f"the save loop died: {proc.stderr.read()}"
            saved = int(line)
            assert time.monotonic() < deadline
        time.sleep(0.15)
        proc.kill()  # SIGKILL: no finally blocks run
    finally:
        proc.kill()
        proc.wait(timeout=30)
    ckpt = load_checkpoint(path)
    k = ckpt.model_config.beta
    assert k >= 3 and k == int(k)
    # the weights belong to the same save as the metadata: never half of one, half of another
    assert all(bool((v == k * 2.0**-20).all()) for v in ckpt.state_dict.values())


# -- bad files --------------------------------------------------------------------------


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def _rewrite(src: Path, dst: Path, tensors=None, **meta_changes) -> Path:
    t, m = _read(src)
    if tensors is not None:
        t = tensors(t)
    for key, value in meta_changes.items():
        if value is None:
            m.pop(key, None)
        else:
            m[key] = value if isinstance(value, str) else value(m[key])
    dst.write_bytes(st_save(t, metadata=m))
    return dst


def _edit_json(**changes):
    def edit(text: str) -> str:
        d = json.loads(text)
        d.update(changes)
        return json.dumps(d)
    return edit


def assert_refused(path: Path, *expect: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, UserError)
    message = str(info.value)
    assert message and "\n" not in message, message
    assert path.name in message, message
    for word in expect:
        assert word.lower() in message.lower(), message
    return info.value


def test_a_missing_path_a_folder_and_an_empty_file_are_refused(tmp_path: Path) -> None:
    assert_refused(tmp_path / "missing.safetensors", "does not exist")
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    assert_refused(folder, "folder")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert_refused(empty, "not a latent explorer checkpoint")


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_are_refused(tmp_path: Path, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (int(torch.randint(1, 5000, (1,), generator=g)),), generator=g,
                        dtype=torch.uint8).numpy().tobytes()
    path = tmp_path / "random.safetensors"
    path.write_bytes(raw)
    assert_refused(path)


def test_a_small_header_length_followed_by_junk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes((20).to_bytes(8, "little") + b"\xff\xfe not json at all, no...." + b"\0" * 50)
    assert_refused(path, "not a latent explorer checkpoint")
    path.write_bytes((7).to_bytes(8, "little") + b"[1,2,3]" + b"\0" * 50)  # JSON, but not an object
    assert_refused(path, "not a latent explorer checkpoint")


def test_a_truncated_checkpoint_is_refused_at_every_cut(small_ckpt: Path, tmp_path: Path) -> None:
    raw = small_ckpt.read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    cuts = [1, 7, 8, 9, 100, header_end - 1, header_end, header_end + 1, header_end + 1000,
            len(raw) // 2, len(raw) - 4, len(raw) - 1]
    path = tmp_path / "cut.safetensors"
    for cut in cuts:
        path.write_bytes(raw[:cut])
        assert_refused(path)


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if loading ever reaches pickle or torch.load."""
    def forbidden(*a, **kw):
        raise AssertionError("the checkpoint loader unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_is_refused_without_running_its_code(tmp_path: Path, protocol: int, no_unpickling) -> None:
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"model.mean_head.weight": _Evil(f"touch '{sentinel}'")}, protocol=protocol))
    assert_refused(path, "not a latent explorer checkpoint")
    assert not sentinel.exists()


def test_a_torch_save_file_is_refused(tmp_path: Path, no_unpickling) -> None:
    path = tmp_path / "model.pt"
    torch.save(make("vae").state_dict(), path)
    assert_refused(path, "not a latent explorer checkpoint")
    legacy = tmp_path / "legacy.pt"
    torch.save(make("vae").state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert_refused(legacy, "not a latent explorer checkpoint")


def test_a_safetensors_file_that_is_not_ours_is_refused(small_ckpt: Path, tmp_path: Path) -> None:
    tensors, _ = _read(small_ckpt)
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(st_save(tensors))
    assert_refused(plain, "not a latent explorer checkpoint")
    other = tmp_path / "other.safetensors"
    other.write_bytes(st_save(tensors, metadata={"format": "pt"}))
    assert_refused(other, "not a latent explorer checkpoint")


def test_a_wrong_or_missing_format_version_is_refused(small_ckpt: Path, tmp_path: Path) -> None:
    assert_refused(_rewrite(small_ckpt, tmp_path / "v2.safetensors", format_version="2"), "'2'", "format 1")
    assert_refused(_rewrite(small_ckpt, tmp_path / "v0.safetensors", format_version=None), "format")


@pytest.mark.parametrize("key,value,words", [
    ("model_config", "{not json", ("model config", "not json")),
    ("model_config", None, ("missing", "model config")),
    ("model_config", _edit_json(preset="nope"), ("unknown model preset", "nope")),
    ("model_config", _edit_json(latent_dim=-3), ("invalid config", "latent")),
    ("model_config", _edit_json(wings=2), ("invalid config", "wings")),
    ("model_config", "[1, 2]", ("invalid config",)),
    ("data_config", _edit_json(limit="lots"), ("invalid config", "limit")),
    ("train_config", _edit_json(lr=-1), ("invalid config", "learning rate")),
    ("history", "[]", ("history",)),
    ("history", '{"epochs": 5}', ("history",)),
    ("history", '{"steps": [["x"]]}', ("history",)),
    ("history", "nope", ("history",)),
    ("class_names", '"0123"', ("class names",)),
    ("class_names", "[1, 2]", ("class names",)),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_damaged_metadata_is_refused(small_ckpt: Path, tmp_path: Path, key: str, value, words) -> None:
    assert_refused(_rewrite(small_ckpt, tmp_path / "bad.safetensors", **{key: value}), *words)




@pytest.mark.parametrize("history", [
    '{"epochs": [{}]}',
    '{"epochs": [{"epoch": "x"}]}',
    '{"steps": [[]]}',
    '{"epochs": [{"epoch": 1, "global_step": Infinity}]}',
])
def test_a_history_with_junk_rows_is_refused(small_ckpt: Path, tmp_path: Path, history: str) -> None:
    assert_refused(_rewrite(small_ckpt, tmp_path / "bad.safetensors", history=history), "history")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    src = save_checkpoint(tmp_path / "z20.safetensors", make("vae"), DataConfig(), TrainConfig())
    assert load_checkpoint(src).model_config.latent_dim == 20
    bad = _rewrite(src, tmp_path / "z10.safetensors", model_config=_edit_json(latent_dim=10))
    assert_refused(bad, "shape", "(400, 20)", "needs (400, 10)")


def _drop(key):
    return lambda t: {k: v for k, v in t.items() if k != key}


def _put(key, value):
    return lambda t: {**t, key: value(t[key]) if callable(value) else value}


def _nan(v: torch.Tensor) -> torch.Tensor:
    v = v.clone()
    v.view(-1)[7] = float("nan")
    return v


def _inf(v: torch.Tensor) -> torch.Tensor:
    v = v.clone()
    v.view(-1)[0] = -float("inf")
    return v


@pytest.mark.parametrize("edit,words", [
    (_drop("model.mean_head.bias"), ("missing", "mean_head.bias")),
    (lambda t: {k[len("model."):]: v for k, v in t.items()}, ("missing",)),  # no prefix
    (_put("model.extra.weight", torch.zeros(3)), ("unexpected", "extra.weight")),
    (_put("model.mean_head.weight", _nan), ("nan", "mean_head.weight")),
    (_put("model.mean_head.bias", _inf), ("infinite", "mean_head.bias")),
    (_put("model.mean_head.weight", lambda v: torch.ones_like(v, dtype=torch.int32)),
     ("not floating point", "mean_head.weight")),
    (_put("model.mean_head.weight", lambda v: torch.ones_like(v, dtype=torch.bool)), ("not floating point",)),
    (_put("model.mean_head.weight", lambda v: v.t().contiguous()), ("shape",)),
], ids=["missing", "unprefixed", "extra", "nan", "inf", "int", "bool", "transposed"])
def test_bad_weights_are_refused(small_ckpt: Path, tmp_path: Path, edit, words) -> None:
    assert_refused(_rewrite(small_ckpt, tmp_path / "bad.safetensors", tensors=edit), *words)


def test_an_unedited_rewrite_still_loads(small_ckpt: Path, tmp_path: Path) -> None:
    """The helper the refusal tests use produces loadable files when it changes nothing."""
    ckpt = load_checkpoint(_rewrite(small_ckpt, tmp_path / "same.safetensors"))
    assert same_state(ckpt.state_dict, state(make("vae")))


def test_a_huge_file_is_refused_before_it_is_read(small_ckpt: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt_mod, "MAX_BYTES", small_ckpt.stat().st_size - 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read a file that is too large"))
    assert_refused(small_ckpt, "larger")


# -- History ----------------------------------------------------------------------------


def _step(i: int) -> StepLoss:
    return StepLoss(epoch=1, step=i, global_step=i, loss=float(i), parts={"recon": i / 2, "kl": i / 4},
                    samples_per_s=1.0, lr=1e-3, beta=1.0)


@pytest.mark.parametrize("n,max_points", [(1000, 10), (37, 8), (4001, 4000), (5, 10)])
def test_history_downsampling_is_bounded_and_keeps_the_outline(n: int, max_points: int) -> None:
    h = History(part_names=("recon", "kl"), max_points=max_points)
    for i in range(1, n + 1):
        h.record(_step(i))
        assert len(h.steps) <= max_points
    rows = h.steps
    steps = [r[0] for r in rows]
    if n <= max_points:
        assert steps == [float(i) for i in range(1, n + 1)]
    assert len(rows) >= min(n, max_points // 2)
    assert steps == sorted(set(steps))
    spread = 2 * n / max_points
    assert steps[0] <= max(1, spread)  # the start of the run
    assert steps[-1] >= n - spread  # and its end
    assert all(b - a <= spread for a, b in zip(steps, steps[1:]))  # with no holes in between
    # rows are kept whole, never mixed or averaged: [step, loss, recon, kl] in part order
    assert all(r == [s, s, s / 2, s / 4] for r, s in zip(rows, steps))
    assert int(steps[-1]) <= h.last_step <= n


def test_history_records_epochs_and_missing_parts_as_nan() -> None:
    h = History(part_names=("recon", "kl"))
    assert h.last_epoch == 0 and h.last_step == 0
    h.record(StepLoss(epoch=1, step=1, global_step=1, loss=2.0, parts={"recon": 1.5}, samples_per_s=1.0,
                      lr=1e-3, beta=1.0))
    h.record(EpochEnd(epoch=1, train={"loss": 2.0}, test={"loss": 3.0}, seconds=1.0, samples_per_s=5.0))
    h.record("not an event")
    assert h.steps[0][:3] == [1.0, 2.0, 1.5] and math.isnan(h.steps[0][3])
    assert len(h.epochs) == 1
    assert {k: h.epochs[0][k] for k in ("epoch", "train", "test", "seconds", "samples_per_s")} == {
        "epoch": 1, "train": {"loss": 2.0}, "test": {"loss": 3.0}, "seconds": 1.0, "samples_per_s": 5.0}
    assert h.last_epoch == 1


def test_history_round_trips_through_json_with_its_stride() -> None:
    h = History(part_names=("recon", "kl"), max_points=10)
    for i in range(1, 200):
        h.record(_step(i))
    back = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.to_dict() == h.to_dict()
    assert back.to_dict()["stride"] > 1
    assert back.part_names == ("recon", "kl")


@pytest.mark.parametrize("junk", [
    [], "history", None, 3,
    {"epochs": {}}, {"epochs": [1, 2]}, {"epochs": "abc"},
    {"steps": {}}, {"steps": [1.0, 2.0]}, {"steps": [["1"]]}, {"steps": [[1.0, None]]}, {"steps": "abc"},
])
def test_history_from_dict_rejects_junk(junk) -> None:
    with pytest.raises(ValueError):
        History.from_dict(junk)


@pytest.mark.parametrize("stride", [0, -4, "8", 2.5, None])
def test_history_from_dict_ignores_a_bad_stride(stride) -> None:
    assert History.from_dict({"stride": stride}).to_dict()["stride"] == 1
    assert History.from_dict({"stride": 8}).to_dict()["stride"] == 8
