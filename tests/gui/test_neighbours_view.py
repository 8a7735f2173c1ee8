"""The Neighbours view: the nearest training images to the decoded image, in pixel space and
in code space, found off the GUI thread."""

from __future__ import annotations

import numpy as np
import torch

from explorer.data import to_float


def test_a_training_images_own_code_finds_that_image_first(qtbot, window, trained_checkpoint):
    assert window.files.open_checkpoint(str(trained_checkpoint("vae", latent_dim=2)))
    qtbot.waitUntil(lambda: window.latent.ready, timeout=30_000)
    view = window.neighbours_view
    dock = window.docks["neighbours_view"]
    dock.show()
    dock.raise_()
    qtbot.waitUntil(view.isVisible, timeout=5000)
    data, model = window.session.data, window.session.view_model
    index = 17
    with torch.no_grad():
        code = model.encode(to_float(data.train_images[index:index + 1])).mean[0].numpy()
    submitted = []
    window.session.tasks.submit = (lambda real: lambda key, *a, **k: (submitted.append(key), real(key, *a, **k))[1])(
        window.session.tasks.submit)
    window.latent.set_code(code, "test")
    qtbot.waitUntil(lambda: view.found is not None and view.found.code is not None
                    and np.allclose(view.found.image, window.latent.decode(code[None])[0], atol=1e-6),
                    timeout=60_000)
    assert submitted, "the search runs through the task runner, not on the GUI thread"
    found = view.found
    assert int(found.code.indices[0]) == index and float(found.code.distances[0]) < 1e-4
    assert np.all(np.diff(found.pixel.distances) >= -1e-6), "pixel neighbours come nearest first"
    assert len(found.pixel.indices) == view.k.value()
