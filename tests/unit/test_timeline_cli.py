"""The training timeline through the command line: `train` records it into the checkpoint
(unless --no-timeline) and `timeline CHECKPOINT --out FILM.gif|FILM.mp4` films it."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from PIL import Image, ImageSequence

from explorer.data import load_dataset
from explorer.training.checkpoint import load_checkpoint
from explorer.training.film import film_frames, film_limits, render_frame
from explorer.training.timeline import TimelineRecorder

pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread

EPOCHS = 3


def train(out: Path, *extra: object) -> tuple[int, str, str]:
    return run("train", "--model", "vae", "--limit", 300, "--device", "cpu", "--json", "--out", out, *extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The module's checkpoints: a 3-epoch vae with its timeline, one without, and a 2-D one."""
    folder = tmp_path_factory.mktemp("timeline-cli")
    runs = {"film": ("--epochs", EPOCHS), "none": ("--epochs", 1, "--no-timeline"),
            "2d": ("--epochs", 2, "--latent-dim", 2)}
    paths = {}
    for name, extra in runs.items():
        path = folder / f"{name}.safetensors"
        rc, _, err = train(path, *extra)
        assert rc == 0, err
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def films(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 3-epoch run filmed as a plain GIF, a manifold GIF and a 2 fps MP4."""
    folder = tmp_path_factory.mktemp("films")
    made = {}
    for name, extra in (("gif", ()), ("manifold", ("--manifold",)), ("mp4", ("--fps", 2))):
        out = folder / f"{name}.{'mp4' if name == 'mp4' else 'gif'}"
        rc, _, err = run("timeline", trained["film"], "--out", out, *extra)
        assert rc == 0, err
        assert f"wrote {EPOCHS} frames to" in err
        made[name] = out
    return made


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB"), dtype=np.int16) for frame in ImageSequence.Iterator(image)]


def one_error_line(rc: int, err: str) -> str:
    """Exit 2 and exactly one line on stderr, an error, no traceback (argparse's included)."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("latent-explorer") and "error: " in lines[0], err
    return lines[0]


# -- train records the timeline ---------------------------------------------------------


def test_train_records_one_frame_per_epoch(trained):
    ckpt = load_checkpoint(trained["film"])
    timeline = ckpt.timeline
    assert timeline is not None
    assert [f.epoch for f in timeline.frames] == [1, 2, 3]
    steps = [f.global_step for f in timeline.frames]
    assert steps == sorted(steps) and steps[0] > 0 and len(set(steps)) == 3
    n = len(timeline.indices)
    assert 0 < n <= 300  # the test split of --limit 300 holds 300 images
    assert timeline.labels is not None and timeline.labels.shape == (n,)
    for frame in timeline.frames:
        assert frame.coords.shape == (n, 2)
        assert np.isfinite(frame.coords).all()
        assert "test_loss" in frame.losses
        assert frame.decoder  # the vae's decoder is small enough to keep
    assert not np.allclose(timeline.frames[0].coords, timeline.frames[-1].coords)
    # The stored epoch losses and steps are the run's history.
    assert [f.losses["test_loss"] for f in timeline.frames] == pytest.approx(
        [row["test"]["loss"] for row in ckpt.history.epochs], rel=1e-6)
    assert steps == [row["global_step"] for row in ckpt.history.epochs]


def test_no_timeline_stores_none_and_cannot_be_filmed(trained, tmp_path):
    assert load_checkpoint(trained["none"]).timeline is None
    out = tmp_path / "film.gif"
    rc, stdout, err = run("timeline", trained["none"], "--out", out)
    line = one_error_line(rc, err)
    assert "no training timeline" in line
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []  # neither the film nor a temporary file


# -- the GIF --------------------------------------------------------------------------


def test_gif_has_a_frame_per_epoch_each_different(films):
    frames = gif_frames(films["gif"])
    assert len(frames) == EPOCHS
    assert frames[0].shape == (640, 640, 3)
    for a, b in zip(frames, frames[1:]):
        assert np.abs(a - b).mean() > 0.05  # the points moved and the caption changed


def test_gif_last_frame_is_the_final_models_plane(trained, films):
    ckpt = load_checkpoint(trained["film"])
    timeline = ckpt.timeline
    last = timeline.frames[-1]
    # A fresh recorder of the same data, aligned like the run's was (to the epoch before),
    # encoding the saved final weights.
    recorder = TimelineRecorder(load_dataset(ckpt.data_config))
    assert np.array_equal(recorder.indices, timeline.indices)
    recorder.align_to(timeline.frames[-2])
    fresh = recorder.frame(ckpt.build_model(), last.epoch, last.global_step, last.losses)
    # The checkpoint keeps coordinates in float16: equal to its precision (2**-11 relative).
    np.testing.assert_allclose(last.coords, fresh.coords, rtol=1e-3, atol=1e-3)

    expected = render_frame(fresh, timeline.labels, tuple(ckpt.class_names), ckpt.model_config, False,
                            limits=film_limits(timeline.frames), total_epochs=EPOCHS).astype(np.int16)
    shown = gif_frames(films["gif"])[-1]
    assert shown.shape == expected.shape
    # GIF's palette costs a little (about 0.02 grey levels). The bound is well under what
    # another epoch's frame differs by (1 to 1.5 levels: a few hundred small dots move).
    assert np.abs(shown - expected).mean() < 0.5
    assert np.abs(gif_frames(films["gif"])[0] - expected).mean() > 0.5
    # The rendering the command filmed is the one film_frames makes.
    assert np.abs(list(film_frames(ckpt))[-1].astype(np.int16) - shown).mean() < 0.5


def test_manifold_gif_differs_from_the_plain_one(films):
    plain, manifold = gif_frames(films["gif"]), gif_frames(films["manifold"])
    assert len(manifold) == EPOCHS
    for a, b in zip(plain, manifold):
        assert a.shape == b.shape
        assert np.abs(a - b).mean() > 5  # decoded images under the points (15 to 40 levels)
    for a, b in zip(manifold, manifold[1:]):
        assert not np.array_equal(a, b)


# -- the MP4 --------------------------------------------------------------------------


def test_mp4_holds_a_frame_per_epoch_at_the_asked_rate(films):
    path = films["mp4"]
    frames = list(iio.imiter(path, plugin="FFMPEG"))
    assert len(frames) == EPOCHS
    assert frames[0].shape[:2] == (640, 640)  # already a multiple of 16
    meta = iio.immeta(path, plugin="FFMPEG")  # (improps says n_images=inf for this plugin: it streams)
    assert meta["fps"] == pytest.approx(2)
    assert meta["duration"] == pytest.approx(EPOCHS / 2, abs=0.1)
    assert np.abs(frames[0].astype(np.int16) - frames[-1].astype(np.int16)).mean() > 0.05


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["avi", "fps0", "fps100", "missing-checkpoint", "missing-folder"])
def test_refusals_write_nothing(case, trained, tmp_path):
    source = trained["film"]
    out = tmp_path / "film.gif"
    extra: tuple[object, ...] = ()
    if case == "avi":
        out = tmp_path / "film.avi"
    elif case == "fps0":
        extra = ("--fps", 0)
    elif case == "fps100":
        extra = ("--fps", 100)
    elif case == "missing-checkpoint":
        source = tmp_path / "nothing.safetensors"
    else:
        out = tmp_path / "absent" / "film.gif"
    rc, stdout, err = run("timeline", source, "--out", out, *extra)
    line = one_error_line(rc, err)
    assert stdout == ""
    if case == "avi":
        assert ".avi" in line
    elif case.startswith("fps"):
        assert "--fps" in line
    elif case == "missing-checkpoint":
        assert "nothing.safetensors" in line
    else:
        assert "absent" in line
    assert list(tmp_path.iterdir()) == []


# -- a 2-D model ------------------------------------------------------------------------


def test_two_dimensional_model_films(trained, tmp_path):
    ckpt = load_checkpoint(trained["2d"])
    assert ckpt.model_config.latent_dim == 2
    assert [f.epoch for f in ckpt.timeline.frames] == [1, 2]
    # Its plane is the code itself (no rotation), so the axes are the identity.
    assert np.array_equal(ckpt.timeline.frames[-1].axes, np.eye(2, dtype=np.float32))
    out = tmp_path / "film.gif"
    rc, _, err = run("timeline", trained["2d"], "--out", out, "--manifold")
    assert rc == 0, err
    frames = gif_frames(out)
    assert len(frames) == 2
    assert not np.array_equal(frames[0], frames[1])


# -- hostile inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("manifold", [False, True])
def test_out_of_memory_advice_names_only_what_was_used(trained, tmp_path, monkeypatch, manifold):
    """Advice to film "without --manifold" when --manifold was not given sends a person
    looking for a switch they never used."""
    from explorer.training import film

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(film, "render_frame", exhausted)
    out = tmp_path / "film.gif"
    rc, stdout, err = run("timeline", trained["film"], "--out", out, *(("--manifold",) if manifold else ()))
    line = one_error_line(rc, err)
    assert "out of memory" in line
    assert ("--manifold" in line) is manifold
    assert stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["films", "films.gif"])
def test_a_folder_given_as_out_is_called_a_folder(trained, tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    rc, _, err = run("timeline", trained["film"], "--out", folder)
    line = one_error_line(rc, err)
    assert "folder" in line and "suffix" not in line, line
    assert list(folder.iterdir()) == []


def test_a_damaged_timeline_is_called_damaged(trained, tmp_path):
    """A timeline dropped on load as damaged is not one "trained before timelines existed"."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(trained["film"]), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        metadata = fh.metadata()
    tensors["timeline.axes"][0, 0, 0] = float("nan")
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged), metadata=metadata)
    rc, _, err = run("timeline", damaged, "--out", tmp_path / "film.gif")
    line = one_error_line(rc, err)
    assert "damaged" in line and "before timelines existed" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.safetensors"]
