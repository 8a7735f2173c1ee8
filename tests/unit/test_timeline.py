"""The training timeline: its planes (PCA, Procrustes-aligned), the engine's frames, the
byte cap, checkpoints (round trip, damaged records dropped, old files) and films."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from safetensors import safe_open
from safetensors.torch import save_file

from explorer.analysis.latents import encode_images
from explorer.config import DataConfig, ModelConfig, TrainConfig
from explorer.errors import ConfigError, UserError
from explorer.models.autoencoder import Autoencoder
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.engine import run_to_end, train
from explorer.training.film import export_film, film_frames, film_limits, render_frame, write_film
from explorer.training.timeline import (
    MAX_TIMELINE_FRAMES,
    Timeline,
    TimelineFrame,
    TimelineRecorder,
    pca_plane,
    pick_points,
)

CONFIG = ModelConfig(num_classes=10)  # vae: 784-400-20


@pytest.fixture(scope="module")
def run(mnist_300):
    """A 3-epoch vae run on 300 images with its timeline (about a second)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Autoencoder(CONFIG)
    events, result = run_to_end(train(model, mnist_300, TrainConfig(epochs=3, timeline=True)))
    timeline = Timeline.for_data(mnist_300)
    for event in events:
        timeline.record(event)
    yield model, events, result, timeline
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(run, tmp_path_factory) -> Path:
    model, _, _, timeline = run
    path = tmp_path_factory.mktemp("timeline") / "run.safetensors"
    save_checkpoint(path, model, DataConfig(limit=300), TrainConfig(epochs=3), class_names=tuple("0123456789"),
                    timeline=timeline)
    return path


def _projection(codes: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return mean + (codes - mean) @ axes @ axes.T


# -- planes -------------------------------------------------------------------------------

def test_pick_points_is_seeded_sorted_and_bounded():
    a, b = pick_points(10_000), pick_points(10_000)
    assert np.array_equal(a, b) and a.size == 5000 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, pick_points(10_000, seed=1))
    assert np.array_equal(pick_points(300), np.arange(300))


def test_recorder_plane_is_the_pca_of_the_codes_up_to_an_orthogonal_map(run, mnist_300):
    model = run[0]
    frame = TimelineRecorder(mnist_300).frame(model, 3, 9, {})
    codes = encode_images(model.eval(), mnist_300.test_images, mnist_300.test_labels)[0].numpy().astype(np.float64)
    centred = codes - codes.mean(0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    independent = centred @ vectors[:, ::-1][:, :2]  # the top two principal axes
    transform, *_ = np.linalg.lstsq(independent, frame.coords.astype(np.float64), rcond=None)
    assert np.allclose(transform.T @ transform, np.eye(2), atol=1e-4)
    assert np.allclose(independent @ transform, frame.coords, atol=1e-4 * np.abs(independent).max())
    # The way back: mean + axes @ p is the codes' projection onto the plane.
    assert np.allclose(frame.lift(frame.coords), _projection(codes, frame.mean, frame.axes), atol=1e-4)
    assert np.allclose(frame.axes.T @ frame.axes, np.eye(2), atol=1e-5)
    assert frame.kl_per_dim is not None and frame.kl_per_dim.shape == (20,)


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_aligns_a_rotated_code_space(reflect):
    rng = np.random.default_rng(3)
    # Two leading directions of nearly equal variance: PCA alone turns them freely.
    codes = rng.normal(size=(500, 6)) * np.array([3.0, 2.99, 1.0, 0.5, 0.2, 0.1]) + 0.7
    first, _, _ = pca_plane(codes)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    if reflect == (np.linalg.det(q) > 0):
        q[:, 0] = -q[:, 0]
    rotated = codes @ q
    coords, mean, axes = pca_plane(rotated, previous=first)
    assert np.allclose(coords, first, atol=1e-5)
    assert np.allclose(mean + coords @ axes.T, _projection(rotated, mean, axes), atol=1e-5)
    assert np.allclose(axes.T @ axes, np.eye(2), atol=1e-10)


def test_recorder_aligns_successive_frames_of_a_rotated_encoder(run, mnist_300):
    """Rotate the encoder's code space (z -> Q z, Q orthogonal with a reflection): the next
    frame's points land where the last frame's were, and its axes map back to the codes."""
    model = run[0]
    rotated = Autoencoder(CONFIG)
    rotated.load_state_dict(model.state_dict())
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(20, 20)))
    q[:, 0] *= -1
    qt = torch.from_numpy(q).float()
    with torch.no_grad():
        rotated.mean_head.weight.copy_(qt @ model.mean_head.weight)
        rotated.mean_head.bias.copy_(qt @ model.mean_head.bias)
    recorder = TimelineRecorder(mnist_300)
    before = recorder.frame(model, 1, 3, {})
    after = recorder.frame(rotated, 2, 6, {})
    assert np.allclose(after.coords, before.coords, atol=1e-5 * max(1.0, float(np.abs(before.coords).max())))
    codes = encode_images(rotated.eval(), mnist_300.test_images)[0].numpy()
    assert np.allclose(after.lift(after.coords), _projection(codes, after.mean, after.axes), atol=1e-4)


def test_two_dimensional_codes_are_not_rotated(mnist_300):
    for dim in (1, 2):
        model = Autoencoder(ModelConfig(latent_dim=dim, num_classes=10))
        recorder = TimelineRecorder(mnist_300, points=50)
        frame = recorder.frame(model, 1, 1, {})
        codes = encode_images(model.eval(), mnist_300.test_images[torch.from_numpy(recorder.indices)])[0].numpy()
        assert frame.coords.shape == (50, 2) and np.allclose(frame.mean, 0)
        assert np.allclose(frame.coords[:, :dim], codes) and (dim == 2 or np.all(frame.coords[:, 1] == 0))
        assert np.allclose(frame.lift(frame.coords), codes)


# -- the engine ---------------------------------------------------------------------------

def test_a_run_yields_one_frame_per_epoch_ending_on_the_final_models_plane(run, mnist_300):
    model, events, result, timeline = run
    frames = [e for e in events if isinstance(e, TimelineFrame)]
    assert result.status == "completed" and [f.epoch for f in frames] == [1, 2, 3]
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("TimelineFrame") == kinds.index("EpochEnd") + 1 == kinds.index("Snapshot") - 1
    assert frames[-1].global_step == result.global_step
    assert set(frames[-1].losses) >= {"train_loss", "train_recon", "train_kl", "test_loss", "test_kl"}
    recorder = TimelineRecorder(mnist_300)
    recorder.align_to(frames[-2])
    fresh = recorder.frame(model, 3, result.global_step, {})
    assert np.allclose(fresh.coords, frames[-1].coords, atol=1e-5)
    for name, value in model.decoder.state_dict().items():
        assert frames[-1].decoder[name].dtype == torch.float16
        assert torch.equal(frames[-1].decoder[name], value.to(torch.float16))
    assert len(timeline.frames) == 3
    assert not any(frames[0].coords is f.coords for f in frames[1:])


def test_timeline_off_yields_no_frames_and_trains_the_same(run, mnist_300):
    torch.manual_seed(0)
    model = Autoencoder(CONFIG)
    events, _ = run_to_end(train(model, mnist_300, TrainConfig(epochs=3, timeline=False)))
    assert not any(isinstance(e, TimelineFrame) for e in events)
    for name, value in model.state_dict().items():
        assert torch.equal(value, run[0].state_dict()[name]), name


def test_train_config_timeline_field():
    assert TrainConfig.from_dict({"epochs": 2}).timeline is True  # older configs
    assert TrainConfig.from_json(TrainConfig(timeline=False).to_json()).timeline is False
    with pytest.raises(ConfigError):
        TrainConfig(timeline="yes")  # type: ignore[arg-type]


# -- the cap ------------------------------------------------------------------------------

def _frame(epoch: int, n: int = 10, dim: int = 3) -> TimelineFrame:
    rng = np.random.default_rng(epoch)
    return TimelineFrame(epoch=epoch, global_step=epoch * 10, coords=rng.normal(size=(n, 2)).astype(np.float32),
                         mean=np.zeros(dim, np.float32), axes=np.eye(dim, 2, dtype=np.float32), kl_per_dim=None,
                         losses={"test_loss": float(epoch)}, decoder={"w": torch.zeros(1000, dtype=torch.float16)})


def test_the_cap_thins_frames_keeping_the_first_and_the_newest():
    timeline = Timeline(np.arange(10), max_bytes=10 * _frame_cost())
    for epoch in range(1, 101):
        timeline.add(_frame(epoch))
        assert timeline.nbytes <= timeline.max_bytes
        epochs = [f.epoch for f in timeline.frames]
        assert epochs[0] == 1 and epochs[-1] == epoch
    assert 5 <= len(timeline.frames) <= 10
    gaps = np.diff([f.epoch for f in timeline.frames])
    assert gaps[:-1].min() == gaps[:-1].max()  # evenly spaced but for the newest


def _frame_cost() -> int:
    return Timeline(np.arange(10), frames=[_frame(1)]).bytes_per_frame


def test_bytes_per_frame_for_vae(run):
    timeline = run[3]
    assert timeline.bytes_per_frame == 645_568 + 300 * 2 * 2 + 20 * 2 * 4 + 20 * 4 * 2


# -- checkpoints --------------------------------------------------------------------------

def test_a_save_with_cpu_autocast_left_on_still_writes_the_timeline(run, tmp_path):
    """A signal inside autocast's enter/exit (Ctrl+C mid-step) can leave CPU autocast on;
    the interrupted run's save must still work (it failed stacking the fp16 frames)."""
    model, _, _, timeline = run
    path = tmp_path / "interrupted.safetensors"
    torch.set_autocast_enabled("cpu", True)
    try:
        save_checkpoint(path, model, DataConfig(limit=300), TrainConfig(epochs=3), timeline=timeline)
    finally:
        torch.set_autocast_enabled("cpu", False)
    loaded = load_checkpoint(path).timeline
    assert loaded is not None and len(loaded.frames) == len(timeline.frames)


def test_round_trip_keeps_every_frame(run, saved):
    original = run[3]
    loaded = load_checkpoint(saved).timeline
    assert loaded is not None and len(loaded.frames) == len(original.frames) == 3
    assert np.array_equal(loaded.indices, original.indices) and np.array_equal(loaded.labels, original.labels)
    for a, b in zip(original.frames, loaded.frames):
        assert (a.epoch, a.global_step, a.losses) == (b.epoch, b.global_step, b.losses)
        assert np.array_equal(b.coords, a.coords.astype(np.float16).astype(np.float32))
        assert np.array_equal(a.axes, b.axes) and np.array_equal(a.mean, b.mean)
        assert np.array_equal(a.kl_per_dim, b.kl_per_dim)
        assert a.decoder.keys() == b.decoder.keys()
        assert all(torch.equal(a.decoder[k], b.decoder[k]) for k in a.decoder)


def _rewrite(saved: Path, out: Path, change) -> Path:
    with safe_open(str(saved), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        metadata = fh.metadata()
    change(tensors, metadata)
    save_file(tensors, str(out), metadata=metadata)
    return out


def _nan_axes(t, m):
    t["timeline.axes"][1, 0, 0] = float("nan")


def _short_coords(t, m):
    t["timeline.coords"] = t["timeline.coords"][:, :10].contiguous()


def _too_many_frames(t, m):
    meta = json.loads(m["timeline"])
    m["timeline"] = json.dumps({**meta, "epochs": list(range(MAX_TIMELINE_FRAMES + 1))})


def _wrong_decoder(t, m):
    name = next(k for k in t if k.startswith("timeline.decoder."))
    t[name] = t[name][..., :-1].contiguous()


def _bad_json(t, m):
    m["timeline"] = "{not json"


def _nan_loss(t, m):
    meta = json.loads(m["timeline"])
    meta["losses"][0]["test_loss"] = float("nan")
    m["timeline"] = json.dumps(meta)


@pytest.mark.parametrize("damage", [_nan_axes, _short_coords, _too_many_frames, _wrong_decoder, _bad_json, _nan_loss])
def test_a_damaged_timeline_is_dropped_and_the_model_loads(saved, tmp_path, damage):
    path = _rewrite(saved, tmp_path / "damaged.safetensors", damage)
    ckpt = load_checkpoint(path)
    assert ckpt.timeline is None and ckpt.timeline_damaged
    good = load_checkpoint(saved).state_dict
    assert ckpt.state_dict.keys() == good.keys() and all(torch.equal(v, good[k]) for k, v in ckpt.state_dict.items())
    ckpt.build_model()


def test_from_parts_raises_one_line_value_errors(saved):
    with safe_open(str(saved), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys() if k.startswith("timeline.")}
        meta = fh.metadata()["timeline"]
    assert len(Timeline.from_parts(tensors, meta, CONFIG).frames) == 3
    with pytest.raises(ValueError, match="shape") as info:
        Timeline.from_parts(tensors, meta, ModelConfig(latent_dim=8, num_classes=10))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError):
        Timeline.from_parts({**tensors, "timeline.extra": torch.zeros(1)}, meta, CONFIG)


def test_old_checkpoints_without_a_timeline_load(run, tmp_path):
    path = save_checkpoint(tmp_path / "old.safetensors", run[0], DataConfig(limit=300), TrainConfig(epochs=3))
    assert load_checkpoint(path).timeline is None
    with pytest.raises(UserError, match="no training timeline"):
        film_frames(load_checkpoint(path))


# -- films --------------------------------------------------------------------------------

def test_gif_has_a_frame_per_epoch_and_ends_on_the_final_plane(saved, tmp_path):
    ckpt = load_checkpoint(saved)
    out = tmp_path / "run.gif"
    assert export_film(ckpt, out, fps=5) == 3
    with Image.open(out) as gif:
        frames = [np.asarray(f.convert("RGB")).astype(np.int16) for f in ImageSequence.Iterator(gif)]
    assert len(frames) == 3
    assert all(np.abs(a - b).mean() > 0.1 for a, b in zip(frames, frames[1:]))
    timeline = ckpt.timeline
    assert timeline is not None
    last = render_frame(timeline.frames[-1], timeline.labels, ckpt.class_names, ckpt.model_config, False,
                        limits=film_limits(timeline.frames), total_epochs=3)
    assert frames[-1].shape == last.shape == (640, 640, 3)
    assert np.abs(frames[-1] - last).mean() < 1.0


def test_mp4_and_manifold(saved, tmp_path):
    ckpt = load_checkpoint(saved)
    plain = list(film_frames(ckpt, manifold=False, size=(200, 184)))
    with_manifold = list(film_frames(ckpt, manifold=True, size=(200, 184)))
    assert all(np.abs(a.astype(int) - b).mean() > 1 for a, b in zip(plain, with_manifold))
    out = write_film(with_manifold, tmp_path / "run.mp4", fps=4)
    read = iio.imread(out, plugin="FFMPEG", index=None)
    assert read.shape[0] == 3 and read.shape[1] % 16 == 0 and read.shape[2] % 16 == 0


def test_other_suffixes_are_refused(saved, tmp_path):
    with pytest.raises(UserError, match=r"\.gif or \.mp4") as info:
        write_film([np.zeros((16, 16, 3), np.uint8)], tmp_path / "run.avi")
    assert "\n" not in str(info.value) and not (tmp_path / "run.avi").exists()


# -- hostile timelines ------------------------------------------------------------------------
# Built directly as a file the app could have written (a small model, many frames of few
# points, no decoder), so each test pins one class of fault a probe found.

SMALL = ModelConfig(hidden_dims=(8,), latent_dim=2)


def synthetic_timeline(frames: int, labels=None, points: int = 4) -> Timeline:
    """``frames`` frames of random plane points; ``labels`` sets the points' classes."""
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    n = points if labels is None else len(labels)
    rng = np.random.default_rng(0)
    made = [TimelineFrame(epoch=i + 1, global_step=10 * (i + 1), coords=rng.normal(size=(n, 2)).astype(np.float32),
                          mean=np.zeros(2, np.float32), axes=np.eye(2, dtype=np.float32), kl_per_dim=None,
                          losses={"test_loss": 1.0 / (i + 1)}, decoder={})
            for i in range(frames)]
    return Timeline(np.arange(n), labels, frames=made)


def save_small(path: Path, timeline: Timeline, class_names: tuple[str, ...] = (),
               config: ModelConfig = SMALL) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(path, Autoencoder(config), DataConfig(limit=300), TrainConfig(epochs=1),
                           class_names=class_names, timeline=timeline)


TEN = tuple("0123456789")
CONDITIONAL = ModelConfig(hidden_dims=(8,), latent_dim=2, conditional=True, num_classes=10)


@pytest.mark.parametrize(("labels", "names", "config", "kept"), [
    ([0, 9], TEN, SMALL, True),
    ([0, 999_999], TEN, SMALL, False),  # the probe's label: 10 named classes, one dot of class 999,999
    ([0, 10], TEN, SMALL, False),  # one past the named classes
    ([0, 9], (), CONDITIONAL, True),
    ([0, 10], (), CONDITIONAL, False),  # a conditional model knows num_classes classes
    ([0, 9_999], (), SMALL, True),  # no names, unconditional: at most MAX_CLASSES classes
    ([0, 10_000], (), SMALL, False),
])
def test_labels_beyond_the_classes_the_checkpoint_knows_are_damaged(tmp_path, labels, names, config, kept):
    """A label is a class of the data the model was trained on, so it is below the number of
    classes the checkpoint knows; one beyond that made the plane draw a scatter per class up
    to it (a window frozen for minutes), so such a timeline is dropped as damaged."""
    path = save_small(tmp_path / "labels.safetensors", synthetic_timeline(2, labels), names, config)
    ckpt = load_checkpoint(path)
    assert (ckpt.timeline is not None) is kept
    assert ckpt.timeline_damaged is not kept
    ckpt.build_model()  # the model loads either way


def test_from_parts_bounds_labels_by_the_classes_given(tmp_path):
    path = save_small(tmp_path / "t.safetensors", synthetic_timeline(2, [0, 3]))
    with safe_open(str(path), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys() if k.startswith("timeline.")}
        meta = fh.metadata()["timeline"]
    assert Timeline.from_parts(tensors, meta, SMALL, classes=4).labels.tolist() == [0, 3]
    with pytest.raises(ValueError, match="labels") as info:
        Timeline.from_parts(tensors, meta, SMALL, classes=3)
    assert "\n" not in str(info.value)


def test_damaged_and_absent_timelines_are_told_apart(saved, run, tmp_path):
    """Both load without a timeline, but a film (and the window) must say which: "trained
    before timelines existed" about a damaged one sends a person hunting the wrong cause."""
    damaged = load_checkpoint(_rewrite(saved, tmp_path / "damaged.safetensors", _nan_axes))
    assert damaged.timeline is None and damaged.timeline_damaged
    assert [n for n in damaged.notes if "timeline" in n] == [
        "its training timeline is damaged (the timeline's axes holds NaN or infinite values) and was dropped; "
        "the model is fine"]  # what the CLI's commands and the window say on open
    with pytest.raises(UserError, match="damaged") as info:
        film_frames(damaged)
    assert "before timelines existed" not in str(info.value) and "\n" not in str(info.value)
    absent = load_checkpoint(save_checkpoint(tmp_path / "old.safetensors", run[0], DataConfig(limit=300),
                                             TrainConfig(epochs=3)))
    assert absent.timeline is None and not absent.timeline_damaged and not absent.notes
    assert not load_checkpoint(saved).timeline_damaged


def test_a_timeline_claiming_more_frames_than_its_tensors_hold_is_damaged(tmp_path):
    """The frame count is the metadata's, but every frame must be there in the tensors: a
    short file cannot claim a long film."""
    path = save_small(tmp_path / "t.safetensors", synthetic_timeline(3))

    def claim_more(t, m):
        meta = json.loads(m["timeline"])
        m["timeline"] = json.dumps({**meta, "epochs": list(range(1, 1001)), "steps": list(range(1000)),
                                    "losses": [{}] * 1000})

    ckpt = load_checkpoint(_rewrite(path, tmp_path / "claims.safetensors", claim_more))
    assert ckpt.timeline is None and ckpt.timeline_damaged


def test_the_extent_is_known_without_looking_at_every_frame(tmp_path):
    """What frames a replay (each frame's 0.5-99.5 percentiles, the widest) is kept as frames
    are added and thinned, and computed once on load (off the GUI thread), so a scrub never
    scans every frame (2-3 s for 10,000 frames on the GUI thread)."""

    def expected(frames):
        lows = [np.percentile(f.coords, 0.5, axis=0) for f in frames]
        highs = [np.percentile(f.coords, 99.5, axis=0) for f in frames]
        return np.stack([np.min(lows, axis=0), np.max(highs, axis=0)])

    timeline = Timeline(np.arange(10), max_bytes=10 * _frame_cost())
    assert timeline.extent is None
    for epoch in range(1, 60):
        timeline.add(_frame(epoch))
        np.testing.assert_allclose(timeline.extent, expected(timeline.frames), rtol=1e-6)
    copy = timeline.copy()
    np.testing.assert_allclose(copy.extent, timeline.extent)
    loaded = load_checkpoint(save_small(tmp_path / "t.safetensors", synthetic_timeline(40, points=50))).timeline
    np.testing.assert_allclose(loaded.extent, expected(loaded.frames), rtol=1e-6)


def _weakly_counted(frames, held: list[int]):
    """``frames`` passed on one by one, noting before each how many earlier ones are still
    alive: a film that keeps every frame shows a count that grows with the film."""
    refs: list[weakref.ref] = []
    for frame in frames:
        gc.collect()
        held.append(sum(r() is not None for r in refs))
        refs.append(weakref.ref(frame))
        yield frame
        del frame


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_films_are_written_frame_by_frame(tmp_path, suffix):
    """A 10,000-frame timeline rendered into RAM took 5.3 GB before failing: the writers
    take an iterable and hold one frame at a time, whatever the film's length."""
    held: list[int] = []
    frames = (np.full((32, 48, 3), 10 * i, dtype=np.uint8) for i in range(20))
    out = write_film(_weakly_counted(frames, held), tmp_path / f"film{suffix}", fps=10)
    assert len(held) == 20 and max(held) <= 1, held
    if suffix == ".gif":
        with Image.open(out) as gif:
            read = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
        assert len(read) == 20 and read[0].shape == (32, 48, 3)
        assert [int(f[0, 0, 0]) for f in read] == [10 * i for i in range(20)]  # every frame, in order
    else:
        read = list(iio.imiter(out, plugin="FFMPEG"))
        assert len(read) == 20 and read[0].shape == (32, 48, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"film{suffix}"]  # no temporary file left


def test_a_gif_is_on_disk_as_its_frames_arrive(tmp_path):
    """Pillow's ``save_all`` keeps every appended frame (as palette images) until the end;
    the GIF writer encodes each frame as it comes, so the file grows with the film and the
    memory does not."""
    rng = np.random.default_rng(0)
    on_disk: list[int] = []

    def frames():
        for _ in range(40):
            on_disk.append(sum(p.stat().st_size for p in tmp_path.iterdir()))
            yield rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)  # noise: about 5 KB a frame

    out = write_film(frames(), tmp_path / "noise.gif", fps=10)
    assert on_disk[-1] >= out.stat().st_size // 2, (on_disk, out.stat().st_size)


def test_export_film_renders_one_frame_at_a_time(tmp_path, monkeypatch):
    from explorer.training import film

    held: list[int] = []
    rendered = film.render_frame
    alive: list[weakref.ref] = []

    def counting(*args, **kwargs):
        gc.collect()
        held.append(sum(r() is not None for r in alive))
        frame = rendered(*args, **kwargs)
        alive.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(film, "render_frame", counting)
    ckpt = load_checkpoint(save_small(tmp_path / "long.safetensors", synthetic_timeline(30, [0, 1, 2, 3])))
    assert export_film(ckpt, tmp_path / "long.gif", size=(64, 64)) == 30
    assert len(held) == 30 and max(held) <= 1, held


def test_a_failed_film_leaves_no_file(tmp_path):
    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        raise MemoryError

    for suffix in (".gif", ".mp4"):
        with pytest.raises(MemoryError):
            write_film(frames(), tmp_path / f"film{suffix}")
    assert list(tmp_path.iterdir()) == []
