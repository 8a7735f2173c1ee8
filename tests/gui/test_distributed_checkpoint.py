"""A checkpoint written by a 2-process torchrun run opens in the window like any other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="this PyTorch has no gloo backend")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_torchrun_checkpoint_opens_in_the_window(qtbot, window, tmp_path):
    out = tmp_path / "ddp.safetensors"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", LATENT_EXPLORER_CACHE=str(tmp_path / "cache"), CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(_free_port()), "-m", "explorer", "train", "--model",
                           "vae", "--epochs", "2", "--limit", "300", "--batch-size", "64", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    window.files.open_checkpoint(str(out))
    qtbot.waitUntil(lambda: window.latent.stats is not None and window.session.data is not None, timeout=60_000)
    assert window.session.history.last_epoch == 2
    assert window.plane.timeline_bar.frames == 2  # rank 0 recorded the timeline
    assert window.windowTitle().startswith("ddp.safetensors")
