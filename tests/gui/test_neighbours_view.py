"""The Neighbours view: the nearest training images to the decoded image, in pixel space and
in code space, found off the GUI thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from explorer.analysis.neighbours import encode_training, nearest_codes, nearest_images
from explorer.data import to_float
from explorer.gui.views import neighbours_view as module


def show_neighbours(qtbot, window, path):
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready, timeout=30_000)
    view = window.neighbours_view
    dock = window.docks["neighbours_view"]
    dock.show()
    dock.raise_()
    qtbot.waitUntil(view.isVisible, timeout=5000)
    return view


def spy_submits(window) -> list[str]:
    submitted: list[str] = []
    real = window.session.tasks.submit

    def submit(key, *args, **kwargs):
        submitted.append(key)
        return real(key, *args, **kwargs)

    window.session.tasks.submit = submit
    return submitted


def brute_force(images: torch.Tensor, image: np.ndarray) -> np.ndarray:
    x = to_float(images).reshape(images.shape[0], -1).double()
    return (x - torch.from_numpy(image.reshape(-1)).double()).norm(dim=1).numpy()


def test_a_training_images_own_code_finds_that_image_first(qtbot, window, trained_checkpoint):
    view = show_neighbours(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    data, model = window.session.data, window.session.view_model
    index = 17
    with torch.no_grad():
        code = model.encode(to_float(data.train_images[index:index + 1])).mean[0].numpy()
    submitted = spy_submits(window)
    window.latent.set_code(code, "test")
    qtbot.waitUntil(lambda: view.found is not None and view.found.code is not None
                    and np.allclose(view.found.image, window.latent.decode(code[None])[0], atol=1e-6),
                    timeout=60_000)
    assert module.SEARCH_TASK in submitted, "the search runs through the task runner, not on the GUI thread"
    found = view.found
    assert int(found.code.indices[0]) == index and float(found.code.distances[0]) < 1e-4
    assert len(found.pixel.indices) == len(found.code.indices) == view.k.value() == module.DEFAULT_K
    # The distances drawn under the images are the ones found, nearest first.
    assert [text for _, _, text in view.labels][:2] == ["decoded", f"{found.pixel.distances[0]:.2f}"]
    assert "training image" in view.caption.text()


def test_pixel_neighbours_of_the_decoded_image_are_the_nearest_sorted_by_distance(qtbot, window, trained_checkpoint):
    view = show_neighbours(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    view.k.setValue(12)
    qtbot.waitUntil(lambda: view.found is not None and len(view.found.pixel.indices) == 12, timeout=60_000)
    found = view.found
    np.testing.assert_allclose(found.image, window.latent.decode_current(), atol=1e-6)
    assert np.all(np.diff(found.pixel.distances) >= 0), "nearest first"
    exact = brute_force(window.session.data.train_images, found.image)
    np.testing.assert_allclose(found.pixel.distances, np.sort(exact)[:12], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(exact[found.pixel.indices], found.pixel.distances, rtol=1e-4, atol=1e-4)


def test_nothing_that_grows_with_the_data_runs_on_the_gui_thread(qtbot, window, trained_checkpoint, monkeypatch):
    view = show_neighbours(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    qtbot.waitUntil(lambda: view.found is not None and view.found.code is not None, timeout=60_000)
    threads: list[str] = []

    def on_which_thread(fn):
        def wrapped(*args, **kwargs):
            threads.append(threading.current_thread().name)
            return fn(*args, **kwargs)
        return wrapped

    for name in ("nearest_images", "nearest_codes", "encode_training"):
        monkeypatch.setattr(module, name, on_which_thread(getattr(module, name)))
    submitted = spy_submits(window)
    before = view.found
    window.latent.randomise(seed=5)
    # The handler itself: a decode of one code and a submit, whatever the training split's size.
    start = time.perf_counter()
    view.redraw()
    handler_ms = (time.perf_counter() - start) * 1e3
    assert submitted == [module.SEARCH_TASK]
    assert handler_ms < 50, f"the view's handler took {handler_ms:.0f} ms"
    qtbot.waitUntil(lambda: view.found is not before, timeout=60_000)
    assert threads and threading.main_thread().name not in threads, threads


def test_a_burst_of_code_changes_costs_one_or_two_searches_and_a_hidden_view_none(qtbot, window, trained_checkpoint):
    view = show_neighbours(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    qtbot.waitUntil(lambda: view.found is not None and view.found.code is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=60_000)
    submitted = spy_submits(window)
    for i in range(30):  # a drag: a new code every few milliseconds
        window.latent.set_code(window.latent.stats.mean + 0.01 * i, "plane")
    qtbot.wait(module.THROTTLE_MS + 150)
    qtbot.waitUntil(lambda: window.session.tasks.idle, timeout=60_000)
    assert 1 <= submitted.count(module.SEARCH_TASK) <= 2, submitted
    np.testing.assert_allclose(view.found.image, window.latent.decode_current(), atol=1e-6)  # the last code

    window.docks["neighbours_view"].hide()
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=5000)
    submitted.clear()
    window.latent.randomise(seed=1)
    qtbot.wait(module.THROTTLE_MS + 150)
    assert module.SEARCH_TASK not in submitted, "a hidden view searches nothing"
    window.docks["neighbours_view"].show()  # shown again: the search it missed runs
    qtbot.waitUntil(lambda: module.SEARCH_TASK in submitted, timeout=5000)


def test_the_export_writes_the_picture_with_its_distances(qtbot, window, trained_checkpoint, tmp_path):
    from PIL import Image

    view = show_neighbours(qtbot, window, trained_checkpoint("vae", latent_dim=2))
    qtbot.waitUntil(lambda: view.grid is not None, timeout=60_000)
    view.export_png(str(tmp_path / "neighbours.png"))
    with Image.open(tmp_path / "neighbours.png") as image:
        assert image.width == view.grid.shape[2] * 3 and image.height == view.grid.shape[1] * 3


# -- the search itself (explorer.analysis.neighbours) ---------------------------------------------

@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (500, 1, 8, 8), dtype=torch.uint8, generator=generator)


def test_blocked_pixel_search_equals_brute_force_over_a_subset(images) -> None:
    query = to_float(images[40]).numpy() + 0.01
    subset = np.arange(3, 500, 2)
    found = nearest_images(images, query, 7, indices=subset, block=37)
    exact = brute_force(images, query)
    best = subset[np.argsort(exact[subset], kind="stable")[:7]]
    np.testing.assert_array_equal(found.indices, best)
    np.testing.assert_allclose(found.distances, exact[best], rtol=1e-5)
    whole = nearest_images(images, to_float(images[40]).numpy(), 3, block=64)
    assert whole.indices[0] == 40 and whole.distances[0] < 1e-5


def test_code_search_and_the_typical_distances(images) -> None:
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 5)).astype(np.float32)
    ids = np.arange(1000, 1300)
    found = nearest_codes(codes, codes[7], 4, ids)
    assert found.indices[0] == 1007 and found.distances[0] == 0 and np.all(np.diff(found.distances) >= 0)

    class Encoder:  # a stand-in model: the code of an image is its first four pixels
        is_conditional = False

        def encode(self, x, y=None):
            return type("Dist", (), {"mean": x.flatten(1)[:, :4], "logvar": None})()

        def parameters(self):
            return iter([torch.zeros(1)])

    codes = encode_training(Encoder(), images, None, limit=200)
    assert len(codes.indices) == 200 and codes.codes.shape == (200, 4)
    assert codes.typical_code > 0 and codes.typical_pixel > 0
    np.testing.assert_allclose(codes.codes, to_float(images[torch.from_numpy(codes.indices)]).flatten(1)[:, :4])
