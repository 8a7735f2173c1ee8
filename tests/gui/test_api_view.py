"""explorer.view from a script, as a researcher would call it: their own small torch encoder
and decoder, trained a little outside the app, and MNIST test images as a NumPy array.
Dragging on the plane shows that decoder's output; the Viewer's code and image follow;
what the pair cannot do (train, save) is off and says so in one line.

The window is the real MainWindow; ``block=False`` keeps the test's own event loop in charge
(tests/unit/test_notebook.py covers the blocking and IPython cases in subprocesses).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF

import explorer
from explorer.data.mnist import load_mnist
from explorer.errors import UserError
from explorer.gui.widgets.image_pane import chw_to_display

N_IMAGES = 400


@pytest.fixture(scope="module")
def mnist_test(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_EXPLORER_CACHE", str(tmp_path_factory.mktemp("api-cache")))
        data = load_mnist()
    return data.test_images[:N_IMAGES].numpy(), data.test_labels[:N_IMAGES].numpy()


class Encoder(torch.nn.Module):
    """A user's own VAE-style encoder: flat images in, (mean, logvar) out."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU())
        self.mean = torch.nn.Linear(64, 2)
        self.logvar = torch.nn.Linear(64, 2)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), self.logvar(h)


@pytest.fixture(scope="module")
def own_pair(mnist_test):
    """Trained a little outside the app: 60 Adam steps of a 2-D VAE on the test images."""
    torch.manual_seed(0)
    enc = Encoder()
    dec = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 784), torch.nn.Sigmoid())
    x = torch.from_numpy(mnist_test[0]).float().div(255).unsqueeze(1)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    for step in range(60):
        batch = x[(step * 64) % N_IMAGES:][:64]
        mean, logvar = enc(batch)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = dec(z).view_as(batch).clamp(1e-6, 1 - 1e-6)
        loss = torch.nn.functional.binary_cross_entropy(recon, batch, reduction="sum") / len(batch) \
            - 0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc.eval(), dec.eval()


@pytest.fixture
def viewer(qtbot, own_pair, mnist_test, monkeypatch, tmp_path):
    from PySide6.QtCore import QSettings

    from explorer.gui.app import main_window

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    monkeypatch.setattr(main_window, "open_settings", lambda: (settings, None))
    enc, dec = own_pair
    images, labels = mnist_test
    v = explorer.view(encoder=enc, decoder=dec, images=images, labels=labels, block=False)
    qtbot.addWidget(v.window)
    qtbot.waitUntil(lambda: v.ready and v.window.plane.plot.isVisible(), timeout=30_000)
    yield v
    v.window.session.shutdown()
    v.close()


def to_pixels(window, x: float, y: float) -> QPoint:
    scene = window.plane.box.mapViewToScene(QPointF(x, y))
    return window.plane.plot.mapFromScene(scene)


def decoder_image(dec, code) -> np.ndarray:
    with torch.no_grad():
        return dec(torch.as_tensor(np.asarray(code, dtype=np.float32))[None]).reshape(28, 28).numpy()


def test_dragging_on_the_plane_shows_the_users_decoder(qtbot, viewer, own_pair, drag):
    _, dec = own_pair
    window, state = viewer.window, viewer.window.latent
    assert state.dim == 2 and viewer.model.config.latent_dim == 2
    assert viewer.model.is_generative, "an encoder giving (mean, logvar) has a Gaussian prior"
    assert sum(len(s.data) for s in window.plane.scatters) == N_IMAGES
    assert [s.name() for s in window.plane.scatters] == [str(d) for d in range(10)]
    (x0, x1), (y0, y1) = window.plane.visible_region()
    target = np.array([x0 + 0.75 * (x1 - x0), y0 + 0.3 * (y1 - y0)])
    start = np.array([window.plane.marker.pos().x(), window.plane.marker.pos().y()])
    drag(window.plane.plot, to_pixels(window, *start), to_pixels(window, *target), steps=10)
    code = viewer.code.numpy()
    assert np.linalg.norm(code - target) < 0.05 * (x1 - x0), "the marker did not follow the mouse"
    shown = window.code_view.decoded.array
    np.testing.assert_allclose(shown, chw_to_display(decoder_image(dec, code)[None]), atol=1e-6)
    np.testing.assert_allclose(viewer.image, decoder_image(dec, code), atol=1e-6)


def test_setting_the_code_moves_the_marker_the_sliders_and_the_image(qtbot, viewer, own_pair):
    _, dec = own_pair
    window = viewer.window
    viewer.code = torch.tensor([0.7, -1.2])
    np.testing.assert_allclose([window.plane.marker.pos().x(), window.plane.marker.pos().y()], [0.7, -1.2],
                               atol=1e-6)
    values = [row.to_value(row.slider.value()) for row in window.code_view.rows]
    np.testing.assert_allclose(values, [0.7, -1.2], atol=0.05)
    np.testing.assert_allclose(viewer.image, decoder_image(dec, [0.7, -1.2]), atol=1e-6)
    with pytest.raises(UserError, match="2 numbers"):
        viewer.code = [1.0, 2.0, 3.0]


def test_what_the_pair_cannot_do_is_off_and_said_in_one_line(qtbot, viewer):
    window = viewer.window
    assert "encoder and decoder from Python" in window.statusBar().currentMessage()
    assert not window.continue_action.isEnabled()
    assert not window.save_action.isEnabled() and not window.save_as_action.isEnabled()
    assert window.start_action.isEnabled(), "a new run of the app's own models is still possible"
    with pytest.raises(UserError, match="cannot be saved"):
        window.session.save(str(window.settings.fileName()) + ".safetensors")
    assert not window.isWindowModified(), "nothing unsaved: the model is the caller's"
    assert "From Python" in window.windowTitle()
    # The views that need only the contract work: samples from the Gaussian prior.
    samples = viewer.model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 28, 28) and 0 <= float(samples.min()) <= float(samples.max()) <= 1


def test_a_model_from_explorer_train_opens_with_its_record(qtbot, tmp_path, monkeypatch, mnist_test):
    from PySide6.QtCore import QSettings

    from explorer.gui.app import main_window

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    monkeypatch.setattr(main_window, "open_settings", lambda: (settings, None))
    torch.set_num_threads(1)
    model = explorer.train("vae", data={"images": mnist_test[0], "labels": mnist_test[1]}, epochs=1,
                           latent_dim=3, batch_size=64)
    v = explorer.view(model, block=False)
    qtbot.addWidget(v.window)
    qtbot.waitUntil(lambda: v.ready, timeout=30_000)
    assert v.window.loss_plot.point_count() > 0, "the run's curves come with the model"
    assert v.window.panel.latent.value() == 3, "the training settings show the model's"
    assert v.window.continue_action.isEnabled() and v.window.save_action.isEnabled()
    out = tmp_path / "kept.safetensors"
    v.window.session.save(out)
    back = explorer.load(out)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    v.window.session.shutdown()
    v.close()


@pytest.mark.parametrize("kwargs, words", [
    (dict(images=None), "images="),
    (dict(decoder=lambda z: torch.full((len(z), 784), 3.0)), "[0, 1]"),
    (dict(decoder=lambda z: torch.zeros(len(z), 5)), "shape"),
    (dict(encoder=lambda x: "codes"), "encoder"),
    (dict(images=np.zeros((3, 2, 28, 28))), "channels"),
])
def test_bad_arguments_are_one_line_before_any_window(qtbot, own_pair, mnist_test, kwargs, words):
    from PySide6.QtWidgets import QApplication

    enc, dec = own_pair
    args = dict(encoder=enc, decoder=dec, images=mnist_test[0][:20])
    args.update(kwargs)
    before = len(QApplication.topLevelWidgets())
    with pytest.raises(UserError) as info:
        explorer.view(block=False, **args)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert len(QApplication.topLevelWidgets()) == before
