"""The checkpoint loader against hostile and broken files, by property and through the CLI.

Whatever the bytes, ``load_checkpoint`` either raises a one-line :class:`CheckpointError`
or returns a checkpoint whose model builds, stays small and runs; never any other
exception, and nothing in the file is ever unpickled. ``test_checkpoint.py`` has the
hand-written cases; this file feeds it random bytes, mutated real checkpoints and fuzzed
metadata (hypothesis), pins what the fuzzing found, and runs the hostile files through
``evaluate``, ``generate`` and ``encode``.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from hostile_files import WORDS, evil_pickle, write_hostile  # tests/ is on sys.path (its conftest)
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save as st_save

from explorer.config import DataConfig, ModelConfig, TrainConfig, replace
from explorer.errors import CheckpointError, UserError
from explorer.models.autoencoder import Autoencoder
from explorer.presets import PRESETS
from explorer.training import checkpoint as ckpt_mod
from explorer.training.checkpoint import FORMAT, MAX_BYTES, Checkpoint, load_checkpoint, save_checkpoint
from explorer.training.events import EpochEnd, StepLoss
from explorer.training.history import History

# No example database: nothing is written into the working tree, and every run is a fresh search.
# FUZZ_EXAMPLES=5000 searches longer.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 400)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# Everything the safetensors parser knows, including the dtypes torch or its Python side do not.
DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL",
          "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64")


# -- the real checkpoints that get damaged -------------------------------------------------


TINY = {
    # 6x6 images keep the files around 2-3 KB, so most mutations land in the header.
    "mlp-vae": ModelConfig(preset="vae", family="mlp", variational=True, latent_dim=2, hidden_dims=(5,),
                           image_shape=(1, 6, 6)),
    "conv-cvae": ModelConfig(preset="conv-cvae", family="conv", variational=True, conditional=True, num_classes=3,
                             latent_dim=2, conv_channels=(2,), hidden_dims=(4,), image_shape=(1, 6, 6)),
}


@functools.cache
def real_bytes(name: str) -> bytes:
    """A real checkpoint (written by save_checkpoint, with a history and class names), as bytes.
    ``name`` is one of TINY, or a preset fitted to MNIST's shape."""
    config = TINY[name] if name in TINY else replace(PRESETS[name].model, image_shape=(1, 28, 28),
                                                    num_classes=10 if PRESETS[name].model.conditional else 0)
    torch.manual_seed(0)
    model = Autoencoder(config)
    history = History(part_names=model.part_names)
    for i in range(1, 4):
        history.record(StepLoss(epoch=1, step=i, global_step=i, loss=3.0 / i, parts={"recon": 2.0 / i, "kl": 1.0},
                                samples_per_s=100.0, lr=1e-3, beta=1.0))
    history.record(EpochEnd(epoch=1, train={"loss": 1.5, "recon": 1.0, "kl": 0.5}, test={"loss": 1.7},
                            seconds=0.5, samples_per_s=100.0))
    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(Path(folder) / f"{name}.safetensors", model, DataConfig(limit=50),
                               TrainConfig(epochs=1, batch_size=16), history,
                               class_names=tuple(str(k) for k in range(max(config.num_classes, 1))))
        return path.read_bytes()


@functools.cache
def real_parts(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.safetensors"
        path.write_bytes(real_bytes(name))
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def header_end(raw: bytes) -> int:
    return 8 + int.from_bytes(raw[:8], "little")


def rebuilt(name: str, tensors=None, **meta: str | None) -> bytes:
    """The real checkpoint written again with some metadata replaced (None: removed)."""
    t, m = real_parts(name)
    t, m = dict(t if tensors is None else tensors), dict(m)
    for key, value in meta.items():
        if value is None:
            m.pop(key, None)
        else:
            m[key] = value
    return st_save(t, metadata=m)


def edited_config(name: str, section: str, **changes) -> bytes:
    d = json.loads(real_parts(name)[1][section])
    d.update(changes)
    return rebuilt(name, **{section: json.dumps(d)})


# -- fixtures and the property every outcome must have --------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _guarded(tmp_path_factory: pytest.TempPathFactory):
    """One torch thread, a private cache, and an alarm on any unpickling for the whole module."""

    def forbidden(*a, **kw):
        raise AssertionError("the checkpoint loader unpickled something")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_EXPLORER_CACHE", str(tmp_path_factory.mktemp("fuzz-cache")))
        for name in ("load", "loads", "Unpickler"):
            mp.setattr(pickle, name, forbidden)
        mp.setattr(torch, "load", forbidden)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_one_line(message: str, path: Path) -> None:
    assert message.strip(), "an empty error message"
    assert message.splitlines() == [message], f"not one line: {message!r}"
    assert "Traceback" not in message and 'File "' not in message, message
    assert path.name in message, message
    assert len(message) <= 600 + len(str(path)), f"a {len(message)}-character message"


def exercise(ckpt: Checkpoint) -> None:
    """A checkpoint that loads gives a small float32 model with finite weights that runs."""
    model = ckpt.build_model()
    assert not model.training
    params = list(model.state_dict().values())
    assert sum(p.numel() for p in params) * 4 <= MAX_BYTES
    assert all(p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in params)
    cfg = ckpt.model_config
    assert cfg.preset == "" or cfg.preset in PRESETS
    x = torch.rand(2, *cfg.image_shape, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, cfg.num_classes - 1]) if cfg.conditional else None
    with torch.no_grad():
        assert model(x, y).logits.shape == x.shape
        assert model.reconstruct(x, y).shape == x.shape
        if model.is_generative:
            assert model.sample(2, y=y).shape == x.shape
    torch.Generator().manual_seed(ckpt.train_config.seed)  # evaluate and the folder split seed generators
    torch.Generator().manual_seed(ckpt.data_config.split_seed)
    assert ckpt.history.last_epoch >= 0 and ckpt.history.last_step >= 0
    json.dumps(ckpt.history.to_dict())
    assert all(isinstance(n, str) for n in ckpt.class_names)


def outcome(raw: bytes, path: Path) -> Checkpoint | None:
    """Write ``raw`` to ``path`` and load it: a refusal with a good message, or a usable model."""
    path.write_bytes(raw)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        assert isinstance(exc, UserError)
        assert_one_line(str(exc), path)
        words = str(exc).replace(path.name, "").split("'")[0].split()
        note("refused: " + " ".join(words[:6]))
        return None
    exercise(ckpt)
    note("loaded")
    return ckpt


def note(label: str) -> None:
    """Count outcomes for ``pytest --hypothesis-show-statistics`` (how many examples load)."""
    if currently_in_test_context():
        event(label)


def test_the_real_checkpoints_load_and_run(work: Path) -> None:
    for name in TINY:
        ckpt = outcome(real_bytes(name), work / f"{name}.safetensors")
        assert ckpt is not None and ckpt.model_config == TINY[name]
        assert ckpt.history.last_epoch == 1 and ckpt.history.last_step == 3


# -- (a) random bytes ---------------------------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _framed(n: int, body: bytes) -> bytes:
    return n.to_bytes(8, "little") + body


def _json_framed(value, tail: bytes) -> bytes:
    body = json.dumps(value).encode()
    return _framed(len(body), body) + tail


random_files = st.one_of(
    st.binary(max_size=3000),
    st.builds(_framed, st.integers(0, 2**64 - 1) | st.integers(0, 3000), st.binary(max_size=3000)),
    st.builds(_json_framed, json_values, st.binary(max_size=300)),
    st.builds(_json_framed, st.fixed_dictionaries({"__metadata__": json_values}), st.binary(max_size=300)),
    st.builds(_json_framed, st.fixed_dictionaries(
        {"__metadata__": st.fixed_dictionaries({"format": st.just(FORMAT), "format_version": st.just("1")})}),
        st.binary(max_size=300)),
)


@FUZZ
@given(raw=random_files)
@example(raw=b"")
@example(raw=b"\x80\x04\x95" + bytes(40))
@example(raw=_framed(2**64 - 1, b"{}"))
@example(raw=_framed(20_000, b"[" * 10_000 + b"]" * 10_000))  # nesting deeper than the recursion limit
def test_random_bytes_are_refused_with_one_line(work: Path, raw: bytes) -> None:
    outcome(raw, work / "random.safetensors")


@st.composite
def tensor_tables(draw) -> bytes:
    """Our real metadata over a random tensor table: the safetensors parser and the weight checks."""
    _, meta = real_parts("mlp-vae")
    expected = {k: list(v.shape) for k, v in real_parts("mlp-vae")[0].items()}
    names = draw(st.lists(st.sampled_from(sorted(expected)) | st.text(max_size=12), min_size=0, max_size=4,
                          unique=True))
    table, offset = {}, 0
    for name in names:
        shape = draw(st.just(expected.get(name, [1])) | st.lists(st.integers(0, 6), max_size=3))
        dtype = draw(st.sampled_from(DTYPES) | st.text(max_size=6))
        size = draw(st.integers(0, 64))
        table[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps({"__metadata__": meta, **table}).encode()
    return _framed(len(header), header) + draw(st.binary(min_size=offset, max_size=offset + 4))


@FUZZ
@given(raw=tensor_tables())
def test_random_tensor_tables_under_real_metadata(work: Path, raw: bytes) -> None:
    outcome(raw, work / "table.safetensors")


# -- (b) mutated real checkpoints ----------------------------------------------------------------

REGIONS = ("prefix", "header", "data", "any")
positions = st.integers(0, 2**16)
some_bytes = st.binary(min_size=1, max_size=16)

mutations = st.one_of(
    st.tuples(st.just("xor"), st.sampled_from(REGIONS), positions, st.integers(1, 255)),
    st.tuples(st.just("set"), st.sampled_from(REGIONS), positions, some_bytes),
    st.tuples(st.just("digit"), positions, st.sampled_from("0123456789")),  # numbers in the header, same length
    st.tuples(st.just("char"), positions, st.sampled_from(' "{}[],:-.0123456789eEaAnNfFtT\\\x00\n')),
    st.tuples(st.just("truncate"), st.sampled_from(REGIONS), positions),
    st.tuples(st.just("insert"), st.sampled_from(REGIONS), positions, some_bytes),
    st.tuples(st.just("delete"), st.sampled_from(REGIONS), positions, st.integers(1, 64)),
    st.tuples(st.just("duplicate"), st.sampled_from(REGIONS), positions, st.integers(1, 256), positions),
    # edits inside the header that keep the 8-byte length in step with it
    st.tuples(st.just("header-insert"), positions, some_bytes),
    st.tuples(st.just("header-delete"), positions, st.integers(1, 32)),
    st.tuples(st.just("header-length"), st.integers(-64, 64) | st.integers(0, 2**64 - 1)),
)


def _span(raw: bytes, region: str) -> tuple[int, int]:
    end = min(header_end(raw), len(raw)) if len(raw) >= 8 else len(raw)
    start, stop = {"prefix": (0, min(8, len(raw))), "header": (min(8, len(raw)), end),
                   "data": (end, len(raw)), "any": (0, len(raw))}[region]
    return (start, stop) if stop > start else (0, len(raw))


def _at(raw: bytes, region: str, pos: int) -> int:
    start, stop = _span(raw, region)
    return start + pos % max(stop - start, 1)


def mutate(raw: bytes, ops) -> bytes:
    for op in ops:
        kind = op[0]
        if not raw and kind not in ("insert", "header-insert"):
            continue
        if kind == "xor":
            i = _at(raw, op[1], op[2])
            raw = raw[:i] + bytes([raw[i] ^ op[3]]) + raw[i + 1:]
        elif kind == "set":
            i = _at(raw, op[1], op[2])
            raw = raw[:i] + op[3] + raw[i + len(op[3]):]
        elif kind in ("digit", "char"):
            start, stop = _span(raw, "header")
            spots = [i for i in range(start, stop) if kind == "char" or chr(raw[i]).isdigit()]
            if spots:
                i = spots[op[1] % len(spots)]
                raw = raw[:i] + op[2].encode() + raw[i + 1:]
        elif kind == "truncate":
            raw = raw[:_at(raw, op[1], op[2])]
        elif kind == "insert":
            i = _at(raw, op[1], op[2]) if raw else 0
            raw = raw[:i] + op[3] + raw[i:]
        elif kind == "delete":
            i = _at(raw, op[1], op[2])
            raw = raw[:i] + raw[i + op[3]:]
        elif kind == "duplicate":
            i = _at(raw, op[1], op[2])
            chunk = raw[i:i + op[3]]
            j = op[4] % (len(raw) + 1)
            raw = raw[:j] + chunk + raw[j:]
        elif kind in ("header-insert", "header-delete", "header-length") and len(raw) >= 8:
            n = int.from_bytes(raw[:8], "little")
            if kind == "header-length":
                new_n = (n + op[1]) % 2**64 if -64 <= op[1] <= 64 else op[1]
                raw = new_n.to_bytes(8, "little") + raw[8:]
                continue
            start, stop = _span(raw, "header")
            i = start + op[1] % max(stop - start, 1)
            if kind == "header-insert":
                raw, n = raw[:i] + op[2] + raw[i:], (n + len(op[2])) % 2**64  # the field is 8 bytes
            else:
                cut = min(op[2], stop - i)
                raw, n = raw[:i] + raw[i + cut:], max(n - cut, 0)
            raw = n.to_bytes(8, "little") + raw[8:]
    return raw


@FUZZ
@given(name=st.sampled_from(sorted(TINY)), ops=st.lists(mutations, min_size=1, max_size=4))
@example(name="mlp-vae", ops=[("truncate", "data", 7)])
@example(name="conv-cvae", ops=[("header-length", 1)])
@example(name="mlp-vae", ops=[("digit", 3, "9")])
def test_mutated_real_checkpoints_are_refused_or_run(work: Path, name: str, ops) -> None:
    outcome(mutate(real_bytes(name), ops), work / "mutated.safetensors")


def test_the_mutations_do_what_they_say() -> None:
    raw = real_bytes("mlp-vae")
    n = header_end(raw)
    assert mutate(raw, [("truncate", "data", 0)]) == raw[:n]
    assert mutate(raw, [("xor", "prefix", 0, 1)])[0] == raw[0] ^ 1
    grown = mutate(raw, [("header-insert", 0, b"  ")])
    assert header_end(grown) == n + 2 and grown[n + 2:] == raw[n:]
    assert json.loads(mutate(raw, [("header-insert", 0, b" ")])[8:n + 1]) == json.loads(raw[8:n])
    assert mutate(raw, [("header-length", -1)])[:8] == (n - 9).to_bytes(8, "little")


# -- (c) fuzzed metadata -------------------------------------------------------------------------


def _preset_values(key: str) -> list:
    return [p.model.to_dict()[key] for p in PRESETS.values()]


PLAUSIBLE: dict[str, dict[str, list]] = {
    "model_config": {
        **{key: _preset_values(key) for key in ModelConfig().to_dict()},
        "preset": ["", "vae", "conv-cvae", "gan-xl", "VAE", " vae"],
        "image_shape": [[1, 6, 6], [3, 6, 6], [1, 5, 5], [1, 6, 5], [1, 7, 7], [1, 28, 28], [2, 6, 6], [1, 6]],
        "latent_dim": [1, 2, 3, 0, -1, 65536, 65537, 2.0, True],
        "hidden_dims": [[], [5], [4], [5, 5], [0], [65537], [2.5]],
        "conv_channels": [[], [2], [2, 2], [4097]],
        "num_classes": [0, 1, 2, 3, 10, -1, 100001],
        "beta": [0, 0.5, 4.0, -1.0, 1e6, float("nan"), float("inf"), "1"],
    },
    "data_config": {
        "dataset": ["mnist", "fashion-mnist", "", "/no/such/folder", 3],
        "limit": [None, 1, 50, 0, -1, 2**31, 10**30, 1.5],
        "image_size": [None, 4, 3, 512, 513],
        "channels": [None, 1, 2, 3],
        "test_fraction": [0.1, 0.0, 1.0, 0.5, float("nan")],
        "split_seed": [0, -1, 2**63, 2**70],
        "classes": [None, [], [0, 1], [-1], [1.5]],
    },
    "train_config": {
        "epochs": [1, 0, 100000, 100001],
        "batch_size": [16, 0, 10**6, 10**6 + 1],
        "lr": [1e-3, 0.0, 10.0, -1.0, float("nan"), float("inf")],
        "seed": [0, -1, 2**31, 2**63, 2**64, 2**70],
        "device": ["auto", "cpu", "cuda", "mps", "tpu"],
        "log_every": [1, 0],
        "snapshot_interval_s": [None, 0, 0.5, -1],
        "eval_batch_size": [1, 0],
        "precision": ["auto", "fp32", "bf16", "fp16"],
    },
}


@st.composite
def config_edits(draw, section: str) -> str:
    """A config section with a few keys removed, set to random JSON or to near-valid values."""
    d = json.loads(real_parts("mlp-vae")[1][section])
    keys = sorted(PLAUSIBLE[section]) + ["wings", "", "a\nb"]
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(keys))
        how = draw(st.sampled_from(("remove", "json", "plausible", "plausible")))
        if how == "remove":
            d.pop(key, None)
        elif how == "json" or key not in PLAUSIBLE[section]:
            d[key] = draw(json_values)
        else:
            d[key] = draw(st.sampled_from(PLAUSIBLE[section][key]))
    return json.dumps(d)


history_values = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        "part_names": json_values | st.lists(st.text(max_size=6), max_size=3),
        "epochs": json_values | st.lists(st.fixed_dictionaries(
            {"epoch": st.integers(-2, 10**20) | json_values},
            optional={"global_step": st.floats() | st.integers(-2, 10**20), "train": json_values,
                      "test": st.dictionaries(st.text(max_size=5), st.floats()) | json_values,
                      "extra": json_values}), max_size=3),
        "steps": json_values | st.lists(st.lists(st.floats() | st.integers(), max_size=5), max_size=4),
        "stride": json_values,
    }),
)

METADATA_KEYS = ("model_config", "data_config", "train_config", "history", "class_names", "format",
                 "format_version", "created", "app_version", "something-else")


@st.composite
def metadata_edits(draw) -> dict[str, str | None]:
    edits: dict[str, str | None] = {}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(METADATA_KEYS))
        how = draw(st.sampled_from(("remove", "json", "text", "edit", "edit")))
        if how == "remove":
            edits[key] = None
        elif how == "text":
            edits[key] = draw(st.text(max_size=30))
        elif how == "edit" and key in PLAUSIBLE:
            edits[key] = draw(config_edits(key))
        elif how == "edit" and key == "history":
            edits[key] = json.dumps(draw(history_values))
        elif how == "edit" and key == "class_names":
            edits[key] = json.dumps(draw(st.lists(st.text(max_size=8) | json_values, max_size=12)))
        else:
            edits[key] = json.dumps(draw(json_values))
    return edits


@FUZZ
@given(name=st.sampled_from(sorted(TINY)), edits=metadata_edits())
@example(name="mlp-vae", edits={"model_config": json.dumps({**TINY["mlp-vae"].to_dict(), "beta": 0.5})})
def test_fuzzed_metadata_is_refused_or_loads_and_saves_again(work: Path, name: str, edits) -> None:
    ckpt = outcome(rebuilt(name, **edits), work / "meta.safetensors")
    if ckpt is not None:  # what loads can be saved and loaded again, unchanged
        again = save_checkpoint(work / "again.safetensors", ckpt.build_model(), ckpt.data_config,
                                ckpt.train_config, ckpt.history, ckpt.class_names)
        back = load_checkpoint(again)
        assert (back.model_config, back.data_config, back.train_config, back.class_names) == (
            ckpt.model_config, ckpt.data_config, ckpt.train_config, ckpt.class_names)
        assert all(torch.equal(back.state_dict[k], v) for k, v in ckpt.state_dict.items())


# -- what the fuzzing found, pinned ----------------------------------------------------------------


def refused(raw: bytes, path: Path, *words: str) -> str:
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert_one_line(message, path)
    for word in words:
        assert word.lower() in message.lower(), message
    return message


@pytest.mark.parametrize("field", ["preset", "family", "code_activation", "recon_loss", "noise"])
def test_an_unknown_preset_or_architecture_is_named(work: Path, field: str) -> None:
    refused(edited_config("mlp-vae", "model_config", **{field: "gan-xl"}), work / "gan.safetensors", "gan-xl")


def _table(dtype: str, shape: list[int], data: bytes) -> bytes:
    _, meta = real_parts("mlp-vae")
    header = json.dumps({"__metadata__": meta,
                         "model.mean_head.bias": {"dtype": dtype, "shape": shape,
                                                  "data_offsets": [0, len(data)]}}).encode()
    return _framed(len(header), header) + data


@pytest.mark.parametrize("dtype,shape,nbytes", [
    ("F4", [2], 1), ("F6_E2M3", [4], 3), ("F6_E3M2", [4], 3), ("F8_E8M0", [2], 2), ("C64", [2], 16),
    ("U64", [2], 16), ("BOOL", [2], 2),
])
def test_tensor_dtypes_torch_cannot_use_are_refused(work: Path, dtype: str, shape, nbytes: int) -> None:
    """safetensors parses F4, F6 and F8_E8M0 but its torch side has no dtype for them (a KeyError)."""
    refused(_table(dtype, shape, bytes(range(1, nbytes + 1))), work / "dtype.safetensors")


def _weights(name: str, convert) -> dict[str, torch.Tensor]:
    return {k: convert(v) if k.startswith("model.") else v for k, v in real_parts(name)[0].items()}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.float8_e4m3fn,
                                   torch.float8_e5m2])
def test_weights_in_other_float_formats_load_as_float32(work: Path, dtype: torch.dtype) -> None:
    """float8 weights raised NotImplementedError from the finiteness check (torch.isfinite has no float8)."""
    raw = rebuilt("conv-cvae", tensors=_weights("conv-cvae", lambda v: v.to(dtype)))
    ckpt = outcome(raw, work / "f.safetensors")
    assert ckpt is not None
    original = real_parts("conv-cvae")[0]
    for key, value in ckpt.state_dict.items():
        assert value.dtype == torch.float32
        assert torch.equal(value, original["model." + key].to(dtype).to(torch.float32))


def test_float64_weights_beyond_float32_are_refused(work: Path) -> None:
    """1e300 is finite in float64 but infinite in the float32 model: it loaded, and the model gave NaN."""
    def huge(v: torch.Tensor) -> torch.Tensor:
        v = v.to(torch.float64)
        v.view(-1)[0] = 1e300
        return v

    t = real_parts("mlp-vae")[0]
    raw = rebuilt("mlp-vae", tensors={**t, "model.mean_head.weight": huge(t["model.mean_head.weight"])})
    refused(raw, work / "f64.safetensors", "infinite", "mean_head.weight")


def test_float8_nan_weights_are_refused(work: Path) -> None:
    t = real_parts("mlp-vae")[0]
    bad = t["model.mean_head.bias"].to(torch.float8_e4m3fn)
    bad.view(torch.uint8)[0] = 0x7F  # NaN in e4m3fn
    refused(rebuilt("mlp-vae", tensors={**t, "model.mean_head.bias": bad}), work / "f8.safetensors", "nan")


@pytest.mark.parametrize("section", ["model_config", "data_config", "history", "class_names"])
def test_metadata_nested_deeper_than_the_recursion_limit_is_refused(work: Path, section: str) -> None:
    """json.loads raises RecursionError (not a ValueError) for very deep nesting."""
    refused(rebuilt("mlp-vae", **{section: "[" * 100_000 + "]" * 100_000}), work / "deep.safetensors")


@pytest.mark.parametrize("depth", [300, 900, 990])
def test_a_deeply_nested_config_value_is_refused(work: Path, depth: int) -> None:
    """Nesting that json.loads may still accept, in a value the config repr()s into its message."""
    text = '{"hidden_dims": ' + "[" * depth + "]" * depth + "}"
    refused(rebuilt("mlp-vae", model_config=text), work / "nested.safetensors")


@pytest.mark.parametrize("section,field,seed", [
    ("train_config", "seed", 2**31), ("train_config", "seed", -1), ("train_config", "seed", 2**70),
    ("data_config", "split_seed", 2**70)])
def test_seeds_out_of_range_are_refused(work: Path, section: str, field: str, seed: int) -> None:
    """A train seed of 2**70 loaded, and then evaluate died in torch.manual_seed with a ValueError;
    seeds are now bounded by the config to what a 32-bit spin box, numpy and torch all take."""
    refused(edited_config("mlp-vae", section, **{field: seed}), work / "seed.safetensors", "seed", "2147483647")
    for edge in (2**31 - 1, 0):
        assert outcome(edited_config("mlp-vae", section, **{field: edge}), work / "seed.safetensors") is not None


@pytest.mark.parametrize("where", ["config-field", "tensor-name", "format-version"])
def test_line_breaks_from_the_file_never_reach_the_message(work: Path, where: str) -> None:
    evil = "x\nsecond line\r\n\tthird\u2028fourth\x85fifth\x1esixth\x0bseventh"
    if where == "config-field":
        raw = edited_config("mlp-vae", "model_config", **{evil: 1})
    elif where == "tensor-name":
        raw = rebuilt("mlp-vae", tensors={**real_parts("mlp-vae")[0], "model." + evil: torch.zeros(1)})
    else:
        raw = rebuilt("mlp-vae", format_version=evil)
    refused(raw, work / "lines.safetensors")


def test_a_huge_bad_value_gives_a_short_message(work: Path) -> None:
    raw = edited_config("mlp-vae", "model_config", hidden_dims=[-1] * 200_000, **{"w" * 100_000: 1})
    message = refused(raw, work / "long.safetensors")
    assert len(message) < 600


def test_a_config_with_a_hundred_thousand_layers_is_refused_quickly(work: Path) -> None:
    """Building 100000 layers, even on the meta device, took about a minute: a 1.3 MB file froze the app."""
    raw = edited_config("mlp-vae", "model_config", hidden_dims=[5] * 100_000)
    start = time.perf_counter()
    refused(raw, work / "deep-model.safetensors", "layers")
    assert time.perf_counter() - start < 3


def test_a_model_too_big_in_float32_is_refused_before_its_weights_are_read(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half-precision weights make a file half the size of the float32 model it becomes."""
    raw = rebuilt("ae", tensors=_weights("ae", lambda v: v.to(torch.float16)))
    model_bytes = sum(v.numel() for k, v in real_parts("ae")[0].items() if k.startswith("model.")) * 4
    limit = model_bytes - 1
    assert len(raw) <= limit  # the file itself is under the limit
    monkeypatch.setattr(ckpt_mod, "MAX_BYTES", limit)
    monkeypatch.setattr(ckpt_mod, "st_load", lambda raw: pytest.fail("read the weights of a model too big"))
    refused(raw, work / "big.safetensors", "larger")
    monkeypatch.undo()
    assert outcome(raw, work / "big.safetensors") is not None


# -- the command line -------------------------------------------------------------------------


def test_the_evil_pickle_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The control: the hostile files below would run code if anything unpickled them. (The
    module fixture replaced pickle.loads; pickle._loads is the same unpickler in pure Python.)"""
    marker = tmp_path / "control-marker"
    pickle._loads(evil_pickle(marker))
    assert marker.read_text() == "pwned"


def hostile_file(kind: str, folder: Path, marker: Path) -> Path:
    return write_hostile(kind, folder, real_bytes("mlp-vae"), marker)


HOSTILE = ["pickle", "torch-save", "truncated", "png", "text", "mismatched", "unknown-preset", "huge-seed"]


def assert_cli_user_error(rc: int, out: str, err: str, *words: str) -> None:
    assert rc == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), repr(err)
    assert lines[0].startswith("latent-explorer: error: "), err
    for word in words:
        assert word.lower() in lines[0].lower(), err


@pytest.mark.parametrize("command", ["evaluate", "generate", "encode"])
@pytest.mark.parametrize("kind", HOSTILE)
def test_the_cli_refuses_hostile_checkpoints_with_one_line(tmp_path: Path, kind: str, command: str) -> None:
    marker = tmp_path / "MARKER"
    path = hostile_file(kind, tmp_path, marker)
    assert not marker.exists()
    before = sorted(os.listdir(tmp_path))
    argv = {"evaluate": ["evaluate", path, "--device", "cpu"],
            "generate": ["generate", path, "--out", tmp_path / "samples.png"],
            "encode": ["encode", path, "--out", tmp_path / "codes.npy"]}[command]
    rc, out, err = run(*argv)
    assert_cli_user_error(rc, out, err, path.name, WORDS[kind])
    assert not marker.exists(), "the pickle's code ran"
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


@pytest.mark.parametrize("kind", ["pickle", "torch-save"])
def test_python_dash_m_explorer_refuses_a_pickle_without_running_it(tmp_path: Path, kind: str) -> None:
    """The same, in a fresh interpreter where nothing is patched to catch unpickling."""
    marker = tmp_path / "MARKER"
    path = hostile_file(kind, tmp_path, marker)
    done = subprocess.run([sys.executable, "-m", "explorer", "generate", str(path), "--out",
                           str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert_cli_user_error(done.returncode, done.stdout, done.stderr, path.name, "not a latent explorer checkpoint")
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "x.png").exists()
