"""A compact record of a run over time, for replaying it (the scrub bar) and filming it.

At every epoch end the engine yields a :class:`TimelineFrame`: where a fixed, seeded subset
of the test set (at most :data:`TIMELINE_POINTS` images, the same ones every epoch) lies on
the latent plane, the plane itself (``mean + axes @ p`` is the full code of plane point
``p``), KL per dimension, the epoch's losses and a float16 copy of the decoder's weights, so
a replay can decode at that moment (half precision is plenty for drawing).

The plane is the codes' own two dimensions when the code has at most two (the decoder reads
raw ``z``, so nothing is rotated), else their PCA. Successive PCA planes are aligned by
orthogonal Procrustes (the 2x2 rotation or reflection that best maps this epoch's points
onto the last epoch's), not just by fixing signs: two principal axes of similar variance
swap and turn freely between epochs, and a replay would spin and flip. The rotation is
applied to the coordinates and the axes alike, so the way back to codes stays exact.

Size: a frame costs ``N x 2`` float16 coordinates, the decoder in float16 and a few
``D``-vectors in float32 (:attr:`Timeline.bytes_per_frame`). For ``vae`` (784-400-20) the
decoder has 322,784 weights, 645,568 bytes; with 5,000 points (20,000 bytes) and the plane
and KL (400 bytes) a frame is about 666 KB. A :class:`Timeline` holds at most
:data:`MAX_TIMELINE_BYTES` (64 MiB), about 100 such frames: adding one past the cap thins the
record (the first frame and the newest stay, every other one in between goes), so it spans
the whole run at a coarser step rather than forgetting its start. A decoder over
:data:`MAX_DECODER_BYTES` in float16 is not recorded (the points still are), so a handful of
frames always fit. Checkpoints store the record as stacked tensors plus JSON
(:meth:`Timeline.to_tensors`, :meth:`Timeline.metadata`); :meth:`Timeline.from_parts`
checks all of it and raises ValueError, which a loader turns into "a damaged timeline,
dropped" (never "no timeline": the person must learn the record was there and lost).

Labels are classes of the data the run followed, so they are below the number of classes
the checkpoint knows (``classes``): a label of 999,999 once made the plane build a scatter
per class up to it and froze the window for minutes. The frame count is the metadata's but
every frame must be in the tensors, at most :data:`MAX_TIMELINE_FRAMES` of them.

Each frame carries the bulk of its points (``bulk``: the 0.5th and 99.5th percentiles),
computed where the frame is made or loaded, off the GUI thread; a timeline keeps the widest
of them (:attr:`Timeline.extent`) as frames come and go, so framing a replay of 10,000
frames costs the GUI nothing (the percentiles of every frame at the first scrub held it for
2-3 s).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.analysis.latents import encode_images, pick_subset
from explorer.config import ModelConfig
from explorer.data.dataset import ImageData
from explorer.models.autoencoder import Autoencoder
from explorer.models.losses import kl_per_dimension
from explorer.models.registry import build_model

TIMELINE_POINTS = 5000
MAX_TIMELINE_BYTES = 64 * 1024**2
MAX_TIMELINE_FRAMES = 10_000
# A decoder larger than this (4M weights in float16) is left out of frames: a record must
# hold at least a few frames under the cap.
MAX_DECODER_BYTES = MAX_TIMELINE_BYTES // 8
TIMELINE_VERSION = 1
PREFIX = "timeline."
DECODER_PREFIX = PREFIX + "decoder."
_MAX_LOSS_KEYS = 32
_MAX_KEY = 64
# Classes a timeline's labels may name when the checkpoint says nothing tighter (an
# unconditional model saved without class names): checkpoint.MAX_CLASSES, the most a
# checkpoint may know.
MAX_LABEL_CLASSES = 10_000
BULK_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class TimelineFrame:
    """The run at one epoch end. CPU-only and never mutated, so it crosses threads as is."""

    epoch: int
    global_step: int
    coords: np.ndarray = field(repr=False)  # float32 (N, 2): the subset's plane coordinates
    mean: np.ndarray = field(repr=False)  # float32 (D,): the plane's origin in code space
    axes: np.ndarray = field(repr=False)  # float32 (D, 2): orthonormal columns; code = mean + axes @ p
    kl_per_dim: np.ndarray | None = field(repr=False)  # float32 (D,), the VAE family only
    losses: dict[str, float]  # "train_loss", "train_recon", "test_loss", "test_kl", ...
    decoder: dict[str, torch.Tensor] = field(repr=False)  # float16 CPU copy of model.decoder's state
    # float64 (2, 2): rows low and high, the 0.5th and 99.5th percentiles of ``coords``;
    # found here (the engine's or the loader's thread) so no view computes it on the GUI's.
    bulk: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.bulk is None:
            object.__setattr__(self, "bulk", coords_bulk(self.coords))

    def lift(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) plane points to (..., D) full codes (float32) for decoding."""
        return (self.mean + np.asarray(points, dtype=np.float32) @ self.axes.T).astype(np.float32)


def coords_bulk(coords: np.ndarray) -> np.ndarray:
    """(2, 2) float64: the 0.5th and 99.5th percentiles of (N, 2) plane points (zeros for
    none), so a few far outliers do not decide how a view is framed."""
    coords = np.asarray(coords)
    if coords.shape[0] == 0:
        return np.zeros((2, 2))
    return np.percentile(coords, BULK_PERCENTILES, axis=0).astype(np.float64)


def widest(bulks: np.ndarray) -> np.ndarray:
    """(2, 2): the lowest low and the highest high of (F, 2, 2) frame bulks."""
    return np.stack([bulks[:, 0].min(axis=0), bulks[:, 1].max(axis=0)])


def epoch_losses(train: dict[str, float], test: dict[str, float]) -> dict[str, float]:
    """An EpochEnd's two dicts flattened: {"train_loss", "train_recon", ..., "test_loss", ...}."""
    return {**{f"train_{k}": float(v) for k, v in train.items()}, **{f"test_{k}": float(v) for k, v in test.items()}}


def pick_points(n_test: int, seed: int = 0) -> np.ndarray:
    """The sorted test indices a timeline follows: at most TIMELINE_POINTS, the same for the
    same test size and seed (a continued run follows the same points)."""
    return pick_subset(n_test, TIMELINE_POINTS, seed)


def procrustes(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The orthogonal 2x2 ``R`` (rotation or reflection) minimising ``|current @ R - previous|``:
    ``U V^T`` from the SVD of ``current^T previous``. Both are (N, 2) and centred."""
    u, _, vt = np.linalg.svd(np.asarray(current, np.float64).T @ np.asarray(previous, np.float64))
    return u @ vt


def raw_plane(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and axes of a code of at most two dimensions: its own, unrotated (a 1-D
    code lies on y = 0)."""
    axes = np.zeros((dim, 2), dtype=np.float64)
    axes[np.arange(dim), np.arange(dim)] = 1.0
    return np.zeros(dim), axes


def pca_plane(codes: np.ndarray, previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plane coordinates, mean and axes of ``codes`` (N, D), D > 2: the first two
    principal axes, aligned to ``previous`` (N, 2) coordinates of the same points by
    Procrustes when given, else with fixed signs (each axis's largest loading positive)."""
    codes = np.asarray(codes, dtype=np.float64)
    mean = codes.mean(axis=0)
    centred = codes - mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2].T  # (D, 2)
    if axes.shape[1] < 2:  # a single code: any plane through it
        axes = np.eye(codes.shape[1], 2)
    coords = centred @ axes
    if previous is not None:
        rotation = procrustes(previous - previous.mean(axis=0), coords)
        axes, coords = axes @ rotation, coords @ rotation
    else:
        signs = np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
        signs = np.where(signs == 0, 1.0, signs)
        axes, coords = axes * signs, coords * signs
    return coords, mean, axes


class TimelineRecorder:
    """Encodes the same test subset at every epoch end and turns it into a frame."""

    def __init__(self, data: ImageData, points: int = TIMELINE_POINTS, seed: int = 0) -> None:
        self.indices = pick_subset(int(data.test_images.shape[0]), points, seed)
        idx = torch.from_numpy(self.indices)
        self.images = data.test_images[idx]
        self.labels = data.test_labels[idx] if data.test_labels is not None else None
        self._previous: np.ndarray | None = None

    def align_to(self, frame: TimelineFrame | None) -> None:
        """Align the next frame to ``frame`` (the last one of an earlier part of the run)."""
        self._previous = None if frame is None else frame.coords.astype(np.float64)

    @torch.no_grad()
    def frame(self, model: Autoencoder, epoch: int, global_step: int, losses: dict[str, float]) -> TimelineFrame:
        was_training = model.training
        model.eval()
        try:
            means, logvars = encode_images(model, self.images, self.labels)
        finally:
            model.train(was_training)
        codes = means.numpy().astype(np.float64)
        dim = codes.shape[1]
        if dim <= 2:
            mean, axes = raw_plane(dim)
            coords = codes @ axes
        else:
            previous = self._previous if self._previous is not None and self._previous.shape == (
                codes.shape[0], 2) else None
            coords, mean, axes = pca_plane(codes, previous)
        self._previous = coords
        kl = kl_per_dimension(means, logvars).numpy().astype(np.float32) if logvars is not None else None
        return TimelineFrame(epoch=int(epoch), global_step=int(global_step), coords=coords.astype(np.float32),
                             mean=mean.astype(np.float32), axes=axes.astype(np.float32), kl_per_dim=kl,
                             losses={str(k): float(v) for k, v in losses.items()}, decoder=decoder_copy(model))


def decoder_copy(model: Autoencoder) -> dict[str, torch.Tensor]:
    """The decoder's weights in float16 on the CPU, or none when they are over
    MAX_DECODER_BYTES (a timeline of such a model keeps its points only)."""
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, torch.nn.Module):  # a plugin's model without one: the points only
        return {}
    state = decoder.state_dict()
    if sum(v.numel() for v in state.values()) * 2 > MAX_DECODER_BYTES:
        return {}
    return {k: v.detach().to("cpu", torch.float16, copy=True) for k, v in state.items()}


def _frame_bytes(frame: TimelineFrame) -> int:
    n, dim = frame.coords.shape[0], frame.mean.shape[0]
    small = dim * 2 * 4 + dim * 4 + (dim * 4 if frame.kl_per_dim is not None else 0)
    return n * 2 * 2 + sum(v.numel() * 2 for v in frame.decoder.values()) + small


class Timeline:
    """The frames of one run, bounded by ``max_bytes`` (thinned, never cut off)."""

    def __init__(self, indices: np.ndarray, labels: np.ndarray | None = None,
                 frames: list[TimelineFrame] | None = None, max_bytes: int = MAX_TIMELINE_BYTES) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.frames: list[TimelineFrame] = []
        self.max_bytes = max_bytes
        # Kept frames are every ``_stride``-th one added, plus always the newest.
        self._stride = 1
        self._ordinals: list[int] = []
        self._added = 0
        self._extent: np.ndarray | None = None
        for frame in frames or []:
            self.add(frame)

    @classmethod
    def for_data(cls, data: ImageData, points: int = TIMELINE_POINTS, seed: int = 0,
                 previous: Timeline | None = None) -> Timeline:
        """An empty timeline following the points a TimelineRecorder of ``data`` encodes, or a
        copy of ``previous`` (a run being continued) when it follows those same points."""
        indices = pick_subset(int(data.test_images.shape[0]), points, seed)
        if previous is not None and np.array_equal(previous.indices, indices):
            return previous.copy()
        labels = data.test_labels[torch.from_numpy(indices)].numpy() if data.test_labels is not None else None
        return cls(indices, labels)

    @property
    def last(self) -> TimelineFrame | None:
        return self.frames[-1] if self.frames else None

    def copy(self) -> Timeline:
        """Another timeline with the same frames (frames are immutable and shared)."""
        out = Timeline(self.indices, self.labels, max_bytes=self.max_bytes)
        out.frames, out._ordinals = list(self.frames), list(self._ordinals)
        out._stride, out._added, out._extent = self._stride, self._added, self._extent
        return out

    @property
    def extent(self) -> np.ndarray | None:
        """(2, 2) float64, rows low and high: the widest of the frames' bulks, which frames
        the whole replay (None without frames). Kept up to date as frames are added and
        thinned, so reading it costs nothing however many frames there are."""
        return None if self._extent is None else self._extent.copy()

    def _fit_extent(self) -> None:
        # One vectorised pass over (F, 2, 2) numbers, at an epoch end or a load, never a scrub.
        self._extent = widest(np.stack([f.bulk for f in self.frames])) if self.frames else None

    def record(self, event: object) -> None:
        """Add ``event`` if it is a TimelineFrame (so a run's listener can hand it every event)."""
        if isinstance(event, TimelineFrame):
            self.add(event)

    @property
    def fixed_bytes(self) -> int:
        return self.indices.size * 8 + (self.labels.size * 8 if self.labels is not None else 0)

    @property
    def bytes_per_frame(self) -> int:
        """What one stored frame costs in a checkpoint (the largest frame so far)."""
        return max((_frame_bytes(f) for f in self.frames), default=0)

    @property
    def nbytes(self) -> int:
        return self.fixed_bytes + sum(_frame_bytes(f) for f in self.frames)

    def add(self, frame: TimelineFrame) -> None:
        if frame.coords.shape != (self.indices.size, 2):
            raise ValueError(f"a frame of {frame.coords.shape[0]} points for a timeline of {self.indices.size}")
        removed = False
        if self.frames and self._ordinals[-1] % self._stride != 0:
            self.frames.pop()  # the newest so far was kept only for being the newest
            self._ordinals.pop()
            removed = True
        self.frames.append(frame)
        self._ordinals.append(self._added)
        self._added += 1
        while len(self.frames) > 2 and (self.nbytes > self.max_bytes or len(self.frames) > MAX_TIMELINE_FRAMES):
            self._stride *= 2
            keep = [i for i, k in enumerate(self._ordinals) if k % self._stride == 0 or i == len(self.frames) - 1]
            self.frames = [self.frames[i] for i in keep]
            self._ordinals = [self._ordinals[i] for i in keep]
            removed = True
        if removed or self._extent is None:
            self._fit_extent()  # a frame left: the extent may shrink
        else:
            self._extent = widest(np.stack([self._extent, frame.bulk]))

    # -- checkpoints ----------------------------------------------------------------------

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The frames stacked, under "timeline." names (safetensors needs contiguous tensors)."""
        if not self.frames:
            raise ValueError("an empty timeline is not stored")
        frames = self.frames
        out = {
            PREFIX + "coords": torch.from_numpy(np.stack([f.coords for f in frames])).to(torch.float16),
            PREFIX + "axes": torch.from_numpy(np.stack([f.axes for f in frames]).astype(np.float32)),
            PREFIX + "mean": torch.from_numpy(np.stack([f.mean for f in frames]).astype(np.float32)),
            PREFIX + "indices": torch.from_numpy(self.indices.copy()),
        }
        if all(f.kl_per_dim is not None for f in frames):
            out[PREFIX + "kl"] = torch.from_numpy(np.stack([f.kl_per_dim for f in frames]).astype(np.float32))
        if self.labels is not None:
            out[PREFIX + "labels"] = torch.from_numpy(self.labels.copy())
        names = set(frames[0].decoder)
        if names and all(set(f.decoder) == names for f in frames):
            for name in sorted(names):
                out[DECODER_PREFIX + name] = torch.stack([f.decoder[name] for f in frames]).to(torch.float16)
        return {k: v.contiguous() for k, v in out.items()}

    def metadata(self) -> str:
        return json.dumps({"version": TIMELINE_VERSION, "epochs": [f.epoch for f in self.frames],
                           "steps": [f.global_step for f in self.frames],
                           "losses": [f.losses for f in self.frames]})

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], metadata_json: str, model_config: ModelConfig,
                   classes: int = MAX_LABEL_CLASSES) -> Timeline:
        """A timeline from a checkpoint's "timeline." tensors and JSON, every shape, dtype and
        value checked against the model config and each other; ValueError (one line) if not.
        ``classes``: how many classes the checkpoint knows (labels must be below it)."""
        try:
            meta = json.loads(metadata_json)
        except (TypeError, ValueError, RecursionError):
            raise ValueError("the timeline's metadata is not JSON") from None
        if not isinstance(meta, dict) or meta.get("version") != TIMELINE_VERSION:
            raise ValueError("the timeline's metadata has an unknown version")
        epochs, steps, losses = meta.get("epochs"), meta.get("steps"), meta.get("losses")
        if not (isinstance(epochs, list) and isinstance(steps, list) and isinstance(losses, list)):
            raise ValueError("the timeline's metadata lacks epochs, steps or losses")
        count = len(epochs)
        if not 1 <= count <= MAX_TIMELINE_FRAMES:
            raise ValueError(f"the timeline has {count:,} frames (1 to {MAX_TIMELINE_FRAMES:,} are allowed)")
        if len(steps) != count or len(losses) != count:
            raise ValueError("the timeline's epochs, steps and losses differ in length")
        for values in (epochs, steps):
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 for v in values):
                raise ValueError("the timeline's epochs or steps are not whole numbers")
        for row in losses:
            if not (isinstance(row, dict) and len(row) <= _MAX_LOSS_KEYS
                    and all(isinstance(k, str) and len(k) <= _MAX_KEY for k in row)
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                            for v in row.values())):
                raise ValueError("the timeline's losses are damaged")

        known = {PREFIX + n for n in ("coords", "axes", "mean", "kl", "indices", "labels")}
        unknown = [k for k in tensors if k not in known and not k.startswith(DECODER_PREFIX)]
        if unknown:
            raise ValueError(f"the timeline holds an unknown tensor {unknown[0][:80]!r}")
        dim = model_config.latent_dim

        def floats(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            t = tensors.get(PREFIX + name)
            if t is None:
                raise ValueError(f"the timeline lacks its {name}")
            if not t.is_floating_point() or tuple(t.shape) != shape:
                raise ValueError(f"the timeline's {name} has shape {tuple(t.shape)}, not {shape}")
            t = t.to(torch.float32)
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"the timeline's {name} holds NaN or infinite values")
            return t

        def whole(name: str) -> np.ndarray | None:
            t = tensors.get(PREFIX + name)
            if t is None:
                return None
            if t.dtype != torch.int64 or t.dim() != 1:
                raise ValueError(f"the timeline's {name} are not a vector of whole numbers")
            return t.numpy().copy()

        indices = whole("indices")
        if indices is None:
            raise ValueError("the timeline lacks its indices")
        n = int(indices.shape[0])
        if not 1 <= n <= TIMELINE_POINTS:
            raise ValueError(f"the timeline follows {n:,} points (1 to {TIMELINE_POINTS:,} are allowed)")
        if indices[0] < 0 or (n > 1 and not bool(np.all(np.diff(indices) > 0))):
            raise ValueError("the timeline's indices are not sorted distinct test indices")
        labels = whole("labels")
        if labels is not None and (labels.shape != (n,) or labels.min() < 0):
            raise ValueError("the timeline's labels do not match its points")
        if labels is not None and labels.max() >= min(classes, MAX_LABEL_CLASSES):
            raise ValueError(f"the timeline's labels name class {int(labels.max()):,}; the checkpoint knows "
                             f"{min(classes, MAX_LABEL_CLASSES):,} classes")
        coords = floats("coords", (count, n, 2)).numpy()
        axes = floats("axes", (count, dim, 2)).numpy()
        mean = floats("mean", (count, dim)).numpy()
        kl = floats("kl", (count, dim)).numpy() if PREFIX + "kl" in tensors else None
        if bool(np.abs(coords).max() > 6e4) or bool(np.abs(mean).max() > 1e6) or bool(np.abs(axes).max() > 1.01):
            raise ValueError("the timeline's plane is out of range")

        decoder_names = sorted(k for k in tensors if k.startswith(DECODER_PREFIX))
        decoder: dict[str, torch.Tensor] = {}
        if decoder_names:
            with torch.device("meta"):
                decoder_module = getattr(build_model(model_config, check=False), "decoder", None)
            expected = {DECODER_PREFIX + k: tuple(v.shape) for k, v in decoder_module.state_dict().items()} \
                if isinstance(decoder_module, torch.nn.Module) else {}
            if set(decoder_names) != set(expected):
                raise ValueError("the timeline's decoder weights do not match the model's decoder")
            for name in decoder_names:
                t = tensors[name]
                if not t.is_floating_point() or tuple(t.shape) != (count, *expected[name]):
                    raise ValueError(f"the timeline's {name[len(PREFIX):]} has shape {tuple(t.shape)}")
                t = t.to(torch.float16)
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"the timeline's {name[len(PREFIX):]} holds NaN or infinite values")
                decoder[name[len(DECODER_PREFIX):]] = t

        # Every frame's bulk in one vectorised call: (2, count, 2) -> (count, 2, 2).
        bulks = np.percentile(coords, BULK_PERCENTILES, axis=1).astype(np.float64).transpose(1, 0, 2)
        timeline = cls(indices, labels)
        for i in range(count):
            timeline.frames.append(TimelineFrame(
                epoch=epochs[i], global_step=steps[i], coords=coords[i].copy(), mean=mean[i].copy(),
                axes=axes[i].copy(), kl_per_dim=None if kl is None else kl[i].copy(),
                losses={k: float(v) for k, v in losses[i].items()},
                decoder={k: v[i] for k, v in decoder.items()}, bulk=bulks[i].copy()))
            timeline._ordinals.append(i)
        timeline._added = count
        timeline._fit_extent()
        if timeline.nbytes > MAX_TIMELINE_BYTES:
            raise ValueError(f"the timeline holds {timeline.nbytes:,} bytes, over the cap of {MAX_TIMELINE_BYTES:,}")
        return timeline
