"""Hostile and broken checkpoint files, shared by the loader's CLI tests (tests/unit) and the
window's tests (tests/gui): one place that knows how to make each kind."""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save as st_save

# What the one-line refusal of each kind must say (compared without case).
WORDS = {"pickle": "not a latent explorer checkpoint", "torch-save": "not a latent explorer checkpoint",
         "truncated": "truncated", "png": "not a latent explorer checkpoint",
         "text": "not a latent explorer checkpoint", "mismatched": "shape", "unknown-preset": "gan-xl",
         "huge-seed": "seed", "nan-weights": "nan"}


class RunsCode:
    """Unpickling this runs ``exec``: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def evil_pickle(marker: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    return pickle.dumps({"model.mean_head.weight": RunsCode(marker)}, protocol=protocol)


def checkpoint_parts(raw: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a checkpoint's bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.safetensors"
        path.write_bytes(raw)
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def with_config(raw: bytes, section: str, **changes) -> bytes:
    """The checkpoint with some fields of one JSON config section changed."""
    tensors, metadata = checkpoint_parts(raw)
    metadata[section] = json.dumps({**json.loads(metadata[section]), **changes})
    return st_save(tensors, metadata=metadata)


def write_hostile(kind: str, folder: Path, good: bytes, marker: Path) -> Path:
    """Write ``folder/<kind>.safetensors``, made from the real checkpoint ``good`` where it
    needs one; a pickle writes ``marker`` if anything ever unpickles it."""
    path = folder / f"{kind}.safetensors"
    if kind == "pickle":
        path.write_bytes(evil_pickle(marker))
    elif kind == "torch-save":
        torch.save({"model.mean_head.weight": RunsCode(marker)}, path)
    elif kind == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif kind == "png":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="PNG")
    elif kind == "text":
        path.write_text("model: vae\nlatent_dim: 20\n")
    elif kind == "mismatched":
        path.write_bytes(with_config(good, "model_config", latent_dim=3))
    elif kind == "unknown-preset":
        path.write_bytes(with_config(good, "model_config", preset="gan-xl"))
    elif kind == "huge-seed":
        path.write_bytes(with_config(good, "train_config", seed=2**70))
    elif kind == "nan-weights":
        tensors, metadata = checkpoint_parts(good)
        tensors["model.mean_head.bias"][0] = float("nan")
        path.write_bytes(st_save(tensors, metadata=metadata))
    else:
        raise AssertionError(kind)
    return path
