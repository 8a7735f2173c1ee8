"""Replaying a run's training timeline under the latent plane: the scatter, the decoded
image and the manifold follow the stored snapshot of the chosen epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from explorer.analysis.manifold import decode_codes
from explorer.config import DataConfig
from explorer.models import Autoencoder
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.engine import run_to_end, train
from explorer.training.history import History
from explorer.training.runs import model_config_for, prepare_run, train_config_for
from explorer.training.timeline import Timeline

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def timeline_checkpoints(tmp_path_factory) -> dict[int, Path]:
    """3-epoch vae runs with their timelines: a 20-D one (PCA frames) and a 2-D one (raw)."""
    folder = tmp_path_factory.mktemp("timelines")
    made = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for latent in (20, 2):
            run = prepare_run(model_config_for("vae", latent_dim=latent), DataConfig(limit=1000),
                              train_config_for("vae", epochs=3, batch_size=64, seed=2))
            history, timeline = History(run.model.part_names), Timeline.for_data(run.data)
            for event in run_to_end(train(run.model, run.data, run.train_config))[0]:
                history.record(event)
                timeline.record(event)
            path = folder / f"vae{latent}.safetensors"
            save_checkpoint(path, run.model, run.data_config, run.train_config, history, run.data.class_names,
                            timeline=timeline)
            made[latent] = path
    finally:
        torch.set_num_threads(threads)
    return made


def _open(qtbot, window, path: Path) -> None:
    window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.stats is not None and window.session.data is not None,
                    timeout=TIMEOUT_MS)


def _scatter(window) -> dict[int, tuple[float, float]]:
    """Every drawn dot's test index and plane position."""
    out = {}
    for item in window.plane.scatters:
        for x, y, index in zip(item.data["x"], item.data["y"], item.data["data"], strict=True):
            out[int(index)] = (float(x), float(y))
    return out


def _expected_image(window, frame) -> np.ndarray:
    """Decode the marker's code with an independent model holding that frame's decoder."""
    live = window.session.view_model
    model = Autoencoder(live.config).eval()
    model.load_state_dict(live.state_dict())
    model.decoder.load_state_dict({k: v.float() for k, v in frame.decoder.items()})
    return decode_codes(model, window.latent.code[None], window.latent.label)[0]


@pytest.mark.parametrize("latent", [20, 2])
def test_scrubbing_shows_each_stored_epoch_and_live_at_the_end(qtbot, window, timeline_checkpoints, latent):
    path = timeline_checkpoints[latent]
    _open(qtbot, window, path)
    bar = window.plane.timeline_bar
    timeline = load_checkpoint(path).timeline
    assert bar.isEnabled() and bar.frames == 3 == len(timeline.frames)
    assert bar.readout.text() == "Live" and window.latent.moment is None

    bar.slider.setFocus()
    qtbot.keyClick(bar.slider, Qt.Key.Key_Home)  # the first recorded epoch
    assert window.latent.moment == 0 and bar.readout.text().startswith("Epoch 1/3")
    drawn = _scatter(window)
    first = timeline.frames[0]
    assert set(drawn) == set(timeline.indices.tolist())
    for row in (0, len(timeline.indices) // 2, len(timeline.indices) - 1):
        assert np.allclose(drawn[int(timeline.indices[row])], first.coords[row], atol=1e-3)
    image_first = window.latent.decode_current()
    assert np.allclose(image_first, _expected_image(window, first), atol=1e-5)

    qtbot.keyClick(bar.slider, Qt.Key.Key_Right)
    qtbot.keyClick(bar.slider, Qt.Key.Key_Right)  # the last recorded epoch
    last = timeline.frames[2]
    assert window.latent.moment == 2
    drawn_last = _scatter(window)
    row = len(timeline.indices) // 3
    assert np.allclose(drawn_last[int(timeline.indices[row])], last.coords[row], atol=1e-3)
    assert not np.allclose(drawn_last[int(timeline.indices[row])], drawn[int(timeline.indices[row])])
    assert np.allclose(window.latent.decode_current(), _expected_image(window, last), atol=1e-5)
    assert not np.allclose(window.latent.decode_current(), image_first)

    qtbot.keyClick(bar.slider, Qt.Key.Key_End)  # live again: the whole test set, the live decoder
    assert window.latent.moment is None and bar.readout.text() == "Live"
    assert window.latent.model is window.session.view_model
    qtbot.waitUntil(lambda: len(_scatter(window)) == window.session.data.test_images.shape[0], timeout=TIMEOUT_MS)


def test_picking_a_dot_while_replaying_loads_its_code_at_that_epoch(qtbot, window, timeline_checkpoints):
    path = timeline_checkpoints[20]
    _open(qtbot, window, path)
    timeline = load_checkpoint(path).timeline
    window.plane.timeline_bar.slider.setValue(1)
    index = int(timeline.indices[7])
    window.latent.pick(index)
    expected = timeline.frames[1].coords[7]
    assert np.allclose(window.latent.plane_point(), expected, atol=1e-3)


def test_play_runs_through_the_epochs_and_stops_on_the_last(qtbot, window, timeline_checkpoints):
    _open(qtbot, window, timeline_checkpoints[2])
    bar = window.plane.timeline_bar
    bar.speed.setCurrentIndex(bar.speed.count() - 1)  # the fastest
    seen: list[object] = []
    window.latent.moment_changed.connect(seen.append)
    qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)
    assert bar.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: not bar.play_button.isChecked(), timeout=10_000)
    assert seen[:3] == [0, 1, 2] and window.latent.moment == 2
    assert bar.play_button.text() == "Play"


def test_a_checkpoint_without_a_timeline_disables_the_bar(qtbot, window, trained_checkpoint):
    _open(qtbot, window, trained_checkpoint("vae"))  # saved without a timeline
    bar = window.plane.timeline_bar
    assert not bar.isEnabled() and bar.readout.text() == "not recorded"


def test_a_run_in_the_window_records_its_timeline_and_saves_it(qtbot, window, tmp_path):
    window.panel.epochs.setValue(2)
    window.start_training()
    qtbot.waitUntil(lambda: not window.session.is_running and window.session.history.last_epoch == 2,
                    timeout=TIMEOUT_MS)
    bar = window.plane.timeline_bar
    assert bar.frames == 2 and bar.readout.text() == "Live"
    out = tmp_path / "run.safetensors"
    window.files.save_to(str(out))
    saved = load_checkpoint(out).timeline
    assert saved is not None and [f.epoch for f in saved.frames] == [1, 2]


def test_file_export_training_film_writes_a_gif_of_every_epoch(qtbot, window, timeline_checkpoints, tmp_path,
                                                                 monkeypatch):
    from PIL import Image, ImageSequence
    from PySide6.QtWidgets import QFileDialog

    _open(qtbot, window, timeline_checkpoints[20])
    action = window.training_film_action
    assert action.isEnabled()
    out = tmp_path / "film.gif"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "GIF (*.gif)"))
    action.trigger()
    qtbot.waitUntil(lambda: "Exported 3 frames" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    with Image.open(out) as film:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(film)]
    assert len(frames) == 3 and not np.array_equal(frames[0], frames[-1])


def test_the_film_action_is_off_without_a_timeline(qtbot, window, trained_checkpoint):
    _open(qtbot, window, trained_checkpoint("vae"))
    assert not window.training_film_action.isEnabled()


# -- hostile timelines ------------------------------------------------------------------------


def _small_checkpoint(path: Path, frames: int, labels: list[int], class_names: tuple[str, ...] = ()) -> Path:
    """A small vae on MNIST (300 images) whose timeline is ``frames`` frames of random
    points with ``labels``, no decoder: what a long run of a big model stores."""
    from explorer.config import ModelConfig, TrainConfig
    from explorer.training.timeline import TimelineFrame

    rng = np.random.default_rng(0)
    n = len(labels)
    made = [TimelineFrame(epoch=i + 1, global_step=10 * (i + 1), coords=rng.normal(size=(n, 2)).astype(np.float32),
                          mean=np.zeros(2, np.float32), axes=np.eye(2, dtype=np.float32), kl_per_dim=None,
                          losses={"test_loss": 1.0}, decoder={})
            for i in range(frames)]
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(hidden_dims=(8,), latent_dim=2))
    return save_checkpoint(path, model, DataConfig(limit=300), TrainConfig(epochs=1), class_names=class_names,
                           timeline=Timeline(np.arange(n), np.asarray(labels, np.int64), frames=made))


def test_sparse_labels_draw_one_scatter_per_class_present(qtbot, window, tmp_path):
    """The plane made a scatter and a legend entry for every class up to the largest label:
    a dot of class 9,999 meant 10,000 items (999,999 froze the window for minutes). It draws
    the named classes and the classes present, whatever their numbers."""
    labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9_999]
    _open(qtbot, window, _small_checkpoint(tmp_path / "sparse.safetensors", 2, labels))
    window.plane.timeline_bar.slider.setValue(0)
    assert window.latent.moment == 0
    names = [s.name() for s in window.plane.scatters]
    assert names == [str(k) for k in range(10)] + ["9999"]
    assert len(window.plane.legend.items) == 11
    assert sorted(_scatter(window)) == list(range(len(labels)))  # every dot is drawn once


def test_the_first_scrub_does_no_work_per_recorded_frame(qtbot, window, tmp_path, monkeypatch):
    """Framing the replay took percentiles of every frame on the GUI thread at the first
    scrub (2-3 s for 10,000 frames); the extent is found on load, in the background."""
    _open(qtbot, window, _small_checkpoint(tmp_path / "long.safetensors", 400, [0, 1, 2, 3]))
    calls = []
    percentile = np.percentile

    def counted(*args, **kwargs):
        calls.append(1)
        return percentile(*args, **kwargs)

    monkeypatch.setattr(np, "percentile", counted)
    window.plane.timeline_bar.slider.setValue(0)
    assert window.latent.moment == 0
    assert len(calls) <= 4, f"{len(calls)} percentiles for a scrub of a 400-frame timeline"
    extent = window.session.timeline.extent
    (x0, x1), (y0, y1) = window.plane.visible_region()
    assert x0 <= extent[0, 0] and x1 >= extent[1, 0] and y0 <= extent[0, 1] and y1 >= extent[1, 1]


def test_a_damaged_timeline_is_called_damaged_in_the_window(qtbot, window, tmp_path):
    """Not "trained before timelines existed": it was stored and dropped on load."""
    path = _small_checkpoint(tmp_path / "damaged.safetensors", 2, [0, 1])
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        metadata = fh.metadata()
    tensors["timeline.coords"][0, 0, 0] = float("nan")
    save_file(tensors, str(path), metadata=metadata)
    _open(qtbot, window, path)
    bar = window.plane.timeline_bar
    assert not bar.isEnabled() and bar.readout.text() == "damaged"
    assert "damaged" in bar.readout.toolTip() and "before timelines existed" not in bar.readout.toolTip()


def test_a_failed_film_leaves_the_rendering_state(qtbot, window, timeline_checkpoints, tmp_path, monkeypatch):
    """The status bar said "Rendering..." for good after a film failed (out of memory)."""
    from explorer.training import film

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(film, "render_frame", exhausted)
    _open(qtbot, window, timeline_checkpoints[2])
    folder = tmp_path / "films"
    folder.mkdir()
    window.exports.export_training_film(str(folder / "film.gif"))
    assert "Rendering" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.dialogs.current is not None, timeout=TIMEOUT_MS)
    assert "memory" in window.dialogs.current.text().lower()
    assert "Rendering" not in window.statusBar().currentMessage()
    assert "Rendering the training film" not in window.session.tasks.busy_labels
    assert list(folder.iterdir()) == []  # neither a film nor a temporary file


def test_class_groups_grow_with_the_points_not_the_labels():
    """The plane's scatters, found without building one per number up to the largest label;
    past MAX_CLASS_GROUPS classes the rest share one scatter, every dot still drawn once."""
    from explorer.gui.views.latent_plane import MAX_CLASS_GROUPS, class_groups

    groups = class_groups(np.array([0, 999_999, 5, 999_999]), tuple("0123456789"))
    assert [name for name, _ in groups] == [*"0123456789", "999999"]
    assert groups[-1][1].tolist() == [1, 3] and groups[5][1].tolist() == [2] and groups[1][1].size == 0
    many = class_groups(np.arange(500) * 1000, ("a",))
    assert len(many) == MAX_CLASS_GROUPS and many[-1][0] == "other classes"
    assert sorted(np.concatenate([rows for _, rows in many]).tolist()) == list(range(500))
    assert [name for name, _ in class_groups(np.array([1, 2]), ())] == ["test images"]
