"""Shared fixtures for the unit tests (no Qt here).

The bundled MNIST is loaded once per session, with the cache pointed at a temporary
folder so tests never write into the user's real cache directory.
"""

from __future__ import annotations

import pytest

from explorer.data.dataset import ImageData


@pytest.fixture(scope="session")
def bundled_mnist(tmp_path_factory: pytest.TempPathFactory) -> ImageData:
    """The whole bundled MNIST (60000 + 10000), loaded once. Treat it as read-only."""
    from explorer.data.mnist import load_mnist

    cache = tmp_path_factory.mktemp("mnist-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_EXPLORER_CACHE", str(cache))
        return load_mnist()


@pytest.fixture(scope="session")
def mnist_300(bundled_mnist: ImageData) -> ImageData:
    """300 train and 300 test images: enough for a one- or two-epoch run in well under a second."""
    return bundled_mnist.limited(300)


@pytest.fixture
def single_thread_torch():
    """Run torch on one thread for the test. These models are tiny, and on a small shared
    machine two OpenMP threads competing with other processes can be 5-10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cli_module_env(tmp_path_factory: pytest.TempPathFactory):
    """For a module of CLI runs: a private cache, and one torch thread (tiny models, small
    machine). Modules use it with ``pytestmark = pytest.mark.usefixtures("cli_module_env")``."""
    import torch

    cache = tmp_path_factory.mktemp("cli-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_EXPLORER_CACHE", str(cache))
        yield
    torch.set_num_threads(threads)
