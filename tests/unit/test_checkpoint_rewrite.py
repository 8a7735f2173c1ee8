"""Rewriting a checkpoint on disk keeps everything it does not mean to change.

`evaluate --save`, the window's "Evaluate this model" and "Add checkpoints..." all go
through one function, `rewrite_checkpoint`. Once it rebuilt the file from the model and
dropped the training timeline (a 3.96 MB file became 2.61 MB). These tests compare every
field of the Checkpoint dataclass, every tensor byte and every metadata entry (those a
later version adds included) before and after a rewrite.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run as cli
from safetensors import safe_open
from safetensors.torch import load_file

from explorer.analysis.directions import from_codes
from explorer.config import ModelConfig, TrainConfig
from explorer.errors import CheckpointError
from explorer.evaluation.files import store_evaluation
from explorer.evaluation.record import MAX_METRICS, Evaluation, records_from_json
from explorer.models.autoencoder import Autoencoder
from explorer.training import checkpoint as ckpt_mod
from explorer.training.checkpoint import Checkpoint, load_checkpoint, rewrite_checkpoint, save_checkpoint
from explorer.training.engine import run_to_end, train
from explorer.training.history import History
from explorer.training.timeline import Timeline

pytestmark = pytest.mark.usefixtures("single_thread_torch")

LATER_KEY = "sketches"  # what a later version might add: kept as it is
# Fields that say how the load went (parts left out), not what the file holds.
LOAD_OUTCOMES = {"notes", "timeline_damaged"}


@pytest.fixture(scope="module")
def full_file(mnist_300, tmp_path_factory) -> Path:
    """A checkpoint with every field filled: weights, configs, history, class names, a
    timeline of two epochs, an evaluation record and an entry a later version wrote."""
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(num_classes=10, latent_dim=2, hidden_dims=(32,)))
    cfg = TrainConfig(epochs=2, batch_size=64, timeline=True)
    history = History(part_names=model.part_names)
    timeline = Timeline.for_data(mnist_300)
    events, _ = run_to_end(train(model, mnist_300, cfg))
    for event in events:
        history.record(event)
        timeline.record(event)
    path = tmp_path_factory.mktemp("rewrite") / "full.safetensors"
    record = Evaluation(dataset="mnist", step=history.last_step, metrics={"test_loss": 123.0}, groups=("loss",))
    save_checkpoint(path, model, _data_config(), cfg,
                    history, mnist_300.class_names, evaluations=[record.to_dict()], timeline=timeline,
                    extra_metadata={LATER_KEY: json.dumps({"smile": [0.5, -1.0]})},
                    directions=[from_codes(np.array([0.0, 1.0]), np.array([2.0, -1.0]), "smile", (3, 4))])
    return path


def _data_config():
    from explorer.config import DataConfig

    return DataConfig(limit=300)


def _copy(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / path.name
    target.write_bytes(path.read_bytes())
    return target


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as fh:
        return dict(fh.metadata())


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_equal(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if hasattr(a, "__dict__") and not isinstance(a, (str, int, float)):
        return type(a) is type(b) and _equal(vars(a), vars(b))
    return a == b


def test_the_fixture_fills_every_field(full_file) -> None:
    """Guards the tests below: a field left empty here would pass them vacuously."""
    ckpt = load_checkpoint(full_file)
    for f in dataclasses.fields(Checkpoint):
        if f.name not in LOAD_OUTCOMES:
            assert getattr(ckpt, f.name) not in (None, "", (), [], {}), f.name
    assert ckpt.timeline is not None and len(ckpt.timeline.frames) == 2
    assert LATER_KEY in ckpt.extra_metadata


def test_store_evaluation_keeps_every_field_but_the_records(full_file, tmp_path) -> None:
    path = _copy(full_file, tmp_path)
    before, tensors_before, meta_before = load_checkpoint(path), load_file(str(path)), _metadata(path)
    new = Evaluation(dataset="mnist", step=before.history.last_step, metrics={"active_units": 2.0},
                     groups=("latent",))
    store_evaluation(path, new)
    after, tensors_after, meta_after = load_checkpoint(path), load_file(str(path)), _metadata(path)

    assert _equal(tensors_before, tensors_after)  # weights and timeline, byte for byte and dtype
    assert any(k.startswith("timeline.") for k in tensors_after)
    assert {k: v for k, v in meta_before.items() if k != "evaluations"} == \
        {k: v for k, v in meta_after.items() if k != "evaluations"}
    for f in dataclasses.fields(Checkpoint):  # a field added later is covered here too
        if f.name != "evaluations":
            assert _equal(getattr(before, f.name), getattr(after, f.name)), f.name
    (record,) = records_from_json(after.evaluations)
    assert record.metrics == {"test_loss": 123.0, "active_units": 2.0}


def test_cli_evaluate_save_keeps_the_timeline(full_file, tmp_path, monkeypatch) -> None:
    """The reported fault: `evaluate --save` left `timeline` saying there was none."""
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    path = _copy(full_file, tmp_path)
    size = path.stat().st_size
    rc, _, err = cli("evaluate", path, "--recon", "--save")
    assert rc == 0, err
    ckpt = load_checkpoint(path)
    assert ckpt.timeline is not None and len(ckpt.timeline.frames) == 2
    assert path.stat().st_size >= size
    assert any("recon" in k or "psnr" in k for r in records_from_json(ckpt.evaluations) for k in r.metrics)
    rc, _, err = cli("timeline", path, "--out", tmp_path / "film.gif")
    assert rc == 0, err


def test_save_of_an_opened_checkpoint_keeps_a_later_versions_entries(full_file, tmp_path) -> None:
    ckpt = load_checkpoint(full_file)
    out = tmp_path / "again.safetensors"
    save_checkpoint(out, ckpt.build_model(), ckpt.data_config, ckpt.train_config, ckpt.history, ckpt.class_names,
                    evaluations=ckpt.evaluations, timeline=ckpt.timeline, extra_metadata=ckpt.extra_metadata)
    again = load_checkpoint(out)
    assert again.extra_metadata == ckpt.extra_metadata
    # ... and an entry this version writes is never replaced by one a file carried.
    save_checkpoint(out, ckpt.build_model(), ckpt.data_config, ckpt.train_config,
                    extra_metadata={"model_config": "{}", "format": "evil"})
    assert load_checkpoint(out).model_config == ckpt.model_config


def test_a_file_replaced_during_the_rewrite_is_left_as_the_other_process_wrote_it(full_file, tmp_path) -> None:
    """An evaluation beside a `--checkpoint-every` run: the run's newer file wins."""
    path = _copy(full_file, tmp_path)
    newer = full_file.read_bytes()

    def change(ckpt: Checkpoint) -> dict[str, object]:
        # The training process renames its newer version into place while we work.
        tmp = tmp_path / "newer.tmp"
        tmp.write_bytes(newer)
        os.replace(tmp, path)
        return {"evaluations": []}

    with pytest.raises(CheckpointError, match="replaced by another process"):
        rewrite_checkpoint(path, change)
    assert path.read_bytes() == newer
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_a_damaged_file_is_not_rewritten(full_file, tmp_path) -> None:
    path = _copy(full_file, tmp_path)
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    name = next(k for k in header if k.startswith("model.") and header[k]["dtype"] == "F32")
    start = 8 + n + header[name]["data_offsets"][0]
    raw[start:start + 4] = b"\x00\x00\xc0\x7f"  # a weight becomes NaN
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        store_evaluation(path, Evaluation(dataset="mnist"))
    assert path.read_bytes() == bytes(raw)


def test_rewrite_changes_only_what_it_may(full_file, tmp_path) -> None:
    path = _copy(full_file, tmp_path)
    with pytest.raises(ValueError, match="cannot change"):
        rewrite_checkpoint(path, lambda ckpt: {"model_config": {}})
    assert path.read_bytes() == full_file.read_bytes()


def test_every_metadata_key_is_known_or_kept(tmp_path) -> None:
    """A key the saver writes must be one the loader knows, or it would turn into an
    'extra' entry on the next open and be written twice."""
    model = Autoencoder(ModelConfig(num_classes=10, latent_dim=2, hidden_dims=(8,)))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, _data_config(), TrainConfig(), evaluations=[{"dataset": "x"}])
    assert set(_metadata(path)) <= ckpt_mod.KNOWN_KEYS
    assert load_checkpoint(path).extra_metadata == {}


def test_a_merged_record_stays_readable_at_the_metric_limit(full_file, tmp_path) -> None:
    """Merging into a record of 64 metrics once wrote 67, and the reader dropped the record."""
    path = _copy(full_file, tmp_path)
    step = load_checkpoint(path).history.last_step
    full = Evaluation(dataset="mnist", step=step, metrics={f"m{i}": float(i) for i in range(MAX_METRICS)})
    store_evaluation(path, full)
    store_evaluation(path, Evaluation(dataset="mnist", step=step, metrics={"a": 1.0, "b": 2.0, "test_loss": 3.0}))
    (record,) = records_from_json(load_checkpoint(path).evaluations)
    assert len(record.metrics) == MAX_METRICS
    assert {"a": 1.0, "b": 2.0, "test_loss": 3.0}.items() <= record.metrics.items()
