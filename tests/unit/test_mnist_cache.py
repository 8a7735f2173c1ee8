"""The unpacked MNIST cache in the user's cache folder is untrusted: a FIFO, a link to a
device or an array of the wrong shape there is rebuilt from the bundle, never read."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from explorer.data import mnist


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path))
    mnist.load_mnist()  # builds the cache
    folder = tmp_path / "mnist" / mnist._bundle_fingerprint()
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{k}.npy" for k in mnist.FILES)
    return folder


def _load_within(seconds: float):
    """load_mnist in a thread, so a hang fails the test instead of stopping the suite."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(mnist.load_mnist()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "load_mnist hung on the cache"
    return result[0]


@pytest.mark.parametrize("key", sorted(mnist.FILES))
def test_a_fifo_in_the_cache_is_rebuilt_not_read(cache, key) -> None:
    path = cache / f"{key}.npy"
    path.unlink()
    os.mkfifo(path)
    data = _load_within(60)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_labels.shape == (10000,)
    assert path.is_file() and not path.is_fifo()


def test_a_link_to_a_device_and_a_wrong_shape_are_rebuilt(cache) -> None:
    (cache / "train_labels.npy").unlink()
    os.symlink("/dev/zero", cache / "train_labels.npy")
    np.save(cache / "test_images.npy", np.zeros((5, 28, 28), dtype=np.uint8))
    data = _load_within(60)
    assert data.test_images.shape == (10000, 1, 28, 28) and int(data.train_labels.max()) == 9
    assert (cache / "train_labels.npy").is_file() and not (cache / "train_labels.npy").is_symlink()
