"""Named directions in checkpoints: saved, read back, and checked entry by entry on load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import explorer
from explorer.analysis import directions as dirs
from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.errors import CheckpointError, UserError
from explorer.models.autoencoder import Autoencoder
from explorer.training.checkpoint import DIRECTIONS_KEY, DIRECTIONS_TENSOR, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread_torch")
DIM = 16


def small_model(dim: int = DIM, variational: bool = True) -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(num_classes=10, latent_dim=dim, hidden_dims=(16,), variational=variational))


def some_directions(dim: int = DIM) -> list[dirs.Direction]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    codes = rng.standard_normal((3, dim))[labels] * 3 + rng.standard_normal((labels.size, dim))
    return [dirs.from_class_means(codes, labels, 0, 2, name="0 to 2"), dirs.from_probe(codes, labels, 1),
            dirs.from_codes(codes[0], codes[5], "picks", (0, 5))]


def saved(tmp_path: Path, directions=(), name: str = "m.safetensors", dim: int = DIM) -> Path:
    path = tmp_path / name
    save_checkpoint(path, small_model(dim), DataConfig(limit=100), TrainConfig(), directions=directions)
    return path


def tampered(path: Path, vectors=None, records=None, drop_tensor: bool = False, drop_key: bool = False) -> Path:
    """The file at ``path`` with its directions' tensor and/or JSON replaced."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as fh:
        metadata = dict(fh.metadata())
    if vectors is not None:
        tensors[DIRECTIONS_TENSOR] = vectors
    if records is not None:
        metadata[DIRECTIONS_KEY] = records if isinstance(records, str) else json.dumps(records)
    if drop_tensor:
        tensors.pop(DIRECTIONS_TENSOR)
    if drop_key:
        metadata.pop(DIRECTIONS_KEY)
    out = path.with_name("tampered-" + path.name)
    save_file(tensors, str(out), metadata=metadata)
    return out


def test_directions_round_trip_through_a_checkpoint(tmp_path):
    listed = some_directions()
    ckpt = load_checkpoint(saved(tmp_path, listed))
    assert ckpt.notes == ()
    assert [d.name for d in ckpt.directions] == ["0 to 2", "probe: 1", "picks"]
    for before, after in zip(listed, ckpt.directions):
        np.testing.assert_allclose(after.vector, before.vector, atol=1e-6)
        assert (after.made, after.defined_by, after.accuracy, after.start, after.end) == \
            (before.made, before.defined_by, before.accuracy, before.start, before.end)
    assert ckpt.directions[1].accuracy is not None and ckpt.directions[2].accuracy is None


def test_a_checkpoint_without_directions_loads_unchanged(tmp_path):
    path = saved(tmp_path)
    with safe_open(str(path), "pt") as fh:
        assert DIRECTIONS_KEY not in fh.metadata() and DIRECTIONS_TENSOR not in fh.keys()
    ckpt = load_checkpoint(path)
    assert ckpt.directions == () and ckpt.notes == () and ckpt.extra_metadata == {}


def test_a_damaged_direction_is_dropped_with_one_line_and_the_rest_load(tmp_path):
    path = saved(tmp_path, some_directions())
    vectors = load_file(str(path))[DIRECTIONS_TENSOR].clone()
    vectors[1, 3] = float("nan")
    with safe_open(str(path), "pt") as fh:
        records = json.loads(fh.metadata()[DIRECTIONS_KEY])
    records[2]["name"] = {"not": "text"}
    ckpt = load_checkpoint(tampered(path, vectors=vectors, records=records))
    assert [d.name for d in ckpt.directions] == ["0 to 2"]
    assert len(ckpt.notes) == 2 and all("\n" not in n and "dropped" in n for n in ckpt.notes)
    assert "direction 2" in ckpt.notes[0] and "direction 3" in ckpt.notes[1]
    assert ckpt.build_model() is not None, "the model itself is fine"


@pytest.mark.parametrize("damage", ["wrong size", "too many", "not a list", "not json", "no tensor", "no names",
                                    "integer tensor", "count mismatch", "deep json", "infinite end"])
def test_hostile_directions_never_stop_the_model_loading(tmp_path, damage):
    path = saved(tmp_path, some_directions())
    good = load_file(str(path))[DIRECTIONS_TENSOR]
    with safe_open(str(path), "pt") as fh:
        records = json.loads(fh.metadata()[DIRECTIONS_KEY])
    changes = {
        "wrong size": dict(vectors=torch.ones(3, DIM + 1)),
        "too many": dict(vectors=torch.ones(dirs.MAX_DIRECTIONS + 1, DIM),
                         records=[records[0]] * (dirs.MAX_DIRECTIONS + 1)),
        "not a list": dict(records={"a": 1}),
        "not json": dict(records="[{"),
        "no tensor": dict(drop_tensor=True),
        "no names": dict(drop_key=True),
        "integer tensor": dict(vectors=torch.ones(3, DIM, dtype=torch.int64)),
        "count mismatch": dict(vectors=good[:2].clone()),
        "deep json": dict(records="[" * 200 + "]" * 200),
        # json.dumps writes Infinity, which Python's parser reads back as inf
        "infinite end": dict(records=[records[0], records[1], {**records[2], "end": float("inf")}]),
    }[damage]
    ckpt = load_checkpoint(tampered(path, **changes))
    expected = 2 if damage == "infinite end" else 0
    assert len(ckpt.directions) == expected
    assert ckpt.notes and all("\n" not in n and len(n) < 300 for n in ckpt.notes)


def test_save_refuses_directions_of_another_code_space(tmp_path):
    with pytest.raises(CheckpointError, match="16-D"):
        save_checkpoint(tmp_path / "x.safetensors", small_model(), DataConfig(), TrainConfig(),
                        directions=some_directions(dim=20))
    assert not (tmp_path / "x.safetensors").exists()


def test_the_api_makes_keeps_and_saves_directions(tmp_path):
    model = explorer.load(saved(tmp_path, some_directions()))
    assert [d.name for d in model.record.directions] == ["0 to 2", "probe: 1", "picks"]
    rng = np.random.default_rng(1)
    images = (rng.random((60, 1, 28, 28)) * 255).astype(np.uint8)
    images[30:] //= 4  # two kinds of image: bright and dark
    labels = np.repeat([0, 1], 30)
    made = explorer.direction(model, images, labels, from_class=0, to_class=1)
    assert made.name == "0 to 1" and made.dim == DIM and made.accuracy is not None
    pair = explorer.direction(model, images, from_image=0, to_image=45, name="bright to dark")
    assert pair.defined_by == (0, 45)
    assert model.record.directions[-2:] == [made, pair]
    out = explorer.save(model, tmp_path / "again.safetensors")
    assert [d.name for d in load_checkpoint(out).directions] == ["0 to 2", "probe: 1", "picks", "0 to 1",
                                                                 "bright to dark"]
    with pytest.raises(UserError, match="labels"):
        explorer.direction(model, images, probe=1)
    with pytest.raises(UserError, match="one of"):
        explorer.direction(model, images, labels, probe=1, from_class=0, to_class=1)
