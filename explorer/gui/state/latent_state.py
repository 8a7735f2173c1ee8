"""What the latent views share: the current code, the class to draw, the plane's axes and
the test set's codes.

The plane, the sliders, the traversal and the decoded image all show one code; each view
changes it only through this object's methods and redraws on its signals, so they never
disagree (napari's Dims model with its Qt views is the pattern). The test set is encoded
off the GUI thread, with a copy of the weights, and at most once a second while a run is
training, through the session's task runner; the principal axes are fitted in the same
background task, so nothing that grows with the test set runs on the GUI thread. Each refit
is turned to agree with the plane on screen (orthogonal Procrustes on the same test images'
codes, as the timeline aligns its frames): a principal axis's sign is arbitrary, and the
live plane once mirror-flipped from one re-encode to the next while a run trained. Decoding
single codes and grids stays on the GUI thread because it takes about a millisecond with
the session's one-thread CPU model.

For the VAE family the plane outlines posteriors: the user's own input's, and the test image
hovered or picked (its log-variance kept from the encode task), as the 2-sigma ellipse of
N(mean, diag(var)) seen on the plane (``plane_covariance``); and the prior N(0, I)'s 1- and
2-sigma contours, exact through a linear plane, through a neighbour map the highest-density
regions of pushed samples holding the same shares (fitted in a task). "Draw from this
posterior" decodes the mean and a few samples of one posterior in a task.

The neighbour map over time: while a run trains with the plane on the map, each timeline
frame that arrives is recorded with where the map placed that frame's test images
(``MapMoment``), and replaying that epoch shows the map as it stood then. The frames keep
only their epoch's 2-D PCA coordinates, not full codes, and the live map was fitted to the
live model's codes: pushing an early epoch's plane through it would place codes by a space
they were never in. An epoch without a record (the map was off, or not yet fitted, or the
run was opened from a file) replays on its own PCA plane, and ``moment_on_map`` says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QObject, QTimer, Signal

from explorer.analysis.latents import LatentStats, latent_stats
from explorer.analysis.manifold import decode_codes
from explorer.analysis.maps import EXTRAPOLATED, LatentMap, MapAxes, PushedDensity, fit_map, push_density
from explorer.analysis.projection import PlaneAxes, aligned_plane, pca_axes, raw_axes
from explorer.display import one_line
from explorer.gui.state.session import TrainingSession
from explorer.models import Autoencoder, build_model
from explorer.runtime.threads import ModelCopy
from explorer.training.timeline import coords_bulk, widest

# While training, re-encode the test set at most this often (each pass is ~0.1 s of CPU
# for the MLP VAE on 10,000 images, taken from the trainer's cores).
ENCODE_INTERVAL_S = 1.0
MAX_CODES = 10_000
ENCODE_TASK = "encode"
# While training, the neighbour map is fitted again at most this often (each fit is seconds
# of CPU); in between, new codes are placed on the last map, so the plane stays current.
MAP_REFRESH_S = 20.0
MAP_REFRESH_EPOCHS = 2  # ... and at most every this many epochs
CLASS_NAME_CHARS = 40  # a legend entry or a menu item, not a paragraph
# The user's own input (the "Your input" view): its posterior drawn as this many standard
# deviations, and on a neighbour map (no basis to project a covariance through) estimated
# from this many seeded samples pushed through the map.
INPUT_SIGMAS = 2.0
MAP_POSTERIOR_SAMPLES = 64
# The prior's contours: 1 and 2 standard deviations, and the share of a 2-D Gaussian's mass
# inside each (1 - exp(-s^2 / 2): 0.3935, 0.8647), the share a neighbour map's contour holds.
PRIOR_SIGMAS = (1.0, 2.0)
PRIOR_MASSES = tuple(1.0 - math.exp(-s * s / 2) for s in PRIOR_SIGMAS)
PRIOR_MAP_SAMPLES = 2048
PRIOR_TASK = "prior on the neighbour map"
POSTERIOR_DRAWS = 8  # "draw from this posterior": samples decoded beside the mean's decode
DRAW_TASK = "draw from a posterior"


@dataclass(frozen=True)
class Encoded:
    """The test set's codes and the plane's principal axes, both fitted off the GUI thread."""

    stats: LatentStats
    pca: PlaneAxes | None  # None for 1- and 2-D codes, which are their own plane
    map_axes: MapAxes | None = None  # the neighbour map, when the plane shows it


@dataclass(frozen=True)
class MapRequest:
    """What the encode task does about the neighbour map: fit it afresh (from ``previous``'s
    layout, so clusters keep their places), or place the new codes with ``previous``."""

    previous: MapAxes | None
    refit: bool


def map_refit_due(training: bool, seconds_since: float, epochs_since: int) -> bool:
    """Whether the neighbour map is fitted afresh at this encode: always when no run trains
    (the encode follows a new model or new data), and while one trains at most every
    MAP_REFRESH_S seconds and MAP_REFRESH_EPOCHS epochs (in between, new codes are placed on
    the last map)."""
    return not training or (seconds_since >= MAP_REFRESH_S and epochs_since >= MAP_REFRESH_EPOCHS)


def _encode_off_thread(copy: ModelCopy, images: torch.Tensor, labels: torch.Tensor | None,
                       shown: tuple[LatentStats | None, PlaneAxes | None] = (None, None),
                       map_request: MapRequest | None = None) -> Encoded:
    """The codes and their principal axes, turned to agree with the plane ``shown`` (the
    live codes and axes on screen when the encode began): a refit must not mirror the plane.
    With ``map_request`` the neighbour map too (fitted, or the new codes placed on it)."""
    stats = latent_stats(copy.build(), images, labels, limit=MAX_CODES)
    if stats.dim <= 2:
        return Encoded(stats, None)
    map_axes = None
    if map_request is not None:
        previous = map_request.previous
        if map_request.refit or previous is None or previous.dim != stats.dim:
            latent_map = fit_map(stats.codes, "umap", previous=previous.latent_map if previous is not None
                                 and previous.dim == stats.dim else None)
            map_axes = MapAxes.of(latent_map)
        else:
            map_axes = MapAxes.of(previous.latent_map, stats.codes)
    shown_stats, shown_pca = shown
    same_points = shown_stats is not None and np.array_equal(shown_stats.indices, stats.indices)
    points = shown_pca.project(shown_stats.codes) if same_points and shown_pca is not None \
        and shown_stats is not None else None
    pca = aligned_plane(pca_axes(stats.codes), stats.codes, shown_pca, points)
    return Encoded(stats, pca, map_axes)


@dataclass(frozen=True)
class InputCode:
    """An image of the user's own, encoded: its posterior mean, its log-variance (VAE
    family; None for a plain autoencoder) and the class it was encoded with (conditional
    models)."""

    mean: np.ndarray  # float64 (D,)
    logvar: np.ndarray | None  # float64 (D,)
    label: int | None = None


@dataclass(frozen=True)
class PriorOnPlane:
    """The prior N(0, I) seen on the plane: through a linear plane its exact ellipses
    (``outlines``, one (points, 2) array per sigma); through a neighbour map the density of
    pushed samples, whose levels the view draws as contours."""

    sigmas: tuple[float, ...]
    outlines: tuple[np.ndarray, ...] | None = None
    density: PushedDensity | None = None


@dataclass(frozen=True)
class PosteriorDraws:
    """One posterior decoded: its mean's decode first, then seeded samples of
    N(mean, diag(var)), as (1 + n, C, H, W) images in [0, 1]."""

    source: str  # what the posterior is of: "your input", "test image 12"
    codes: np.ndarray  # (1 + n, D)
    images: np.ndarray  # (1 + n, C, H, W)


@dataclass(frozen=True)
class MapMoment:
    """Where the neighbour map placed a timeline frame's test images and the map's grain
    then. Float32, as the timeline holds its own points in memory: a map gathers points
    closely, and in float16 neighbours can coincide (a drag onto one would decode a blend)."""

    points: np.ndarray  # float32 (N, 2), in the timeline's index order
    scale: float
    bulk: np.ndarray  # (2, 2): the points' 0.5th and 99.5th percentiles, to frame the replay


def plane_covariance(axes: PlaneAxes | MapAxes, mean: np.ndarray, logvar: np.ndarray,
                     samples: int = MAP_POSTERIOR_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """The posterior N(mean, diag(exp(logvar))) seen on the plane: (centre (2,), covariance
    (2, 2), exact). Through a linear plane (PCA or raw axes) it is exact: the basis's two
    rows B give B diag(var) B^T. A neighbour map has no basis: ``samples`` seeded draws are
    pushed through it (blending the mapped codes nearest the mean: this runs on the GUI
    thread at each hover) and their covariance is an estimate (``exact`` False)."""
    mean = np.asarray(mean, dtype=np.float64)
    var = np.exp(np.asarray(logvar, dtype=np.float64))
    if isinstance(axes, MapAxes):
        draws = mean + np.sqrt(var) * np.random.default_rng(seed).standard_normal((samples, mean.shape[0]))
        points = axes.latent_map.transform_near(draws, mean)
        return points.mean(axis=0), np.cov(points, rowvar=False), False
    rows = np.asarray(axes.basis, dtype=np.float64)[:min(2, axes.dim)]
    covariance = np.zeros((2, 2))
    covariance[:len(rows), :len(rows)] = (rows * var) @ rows.T  # a 1-D code spreads along x alone
    return np.asarray(axes.project(mean), dtype=np.float64), covariance, True


def ellipse_outline(centre: np.ndarray, covariance: np.ndarray, sigmas: float = INPUT_SIGMAS,
                    points: int = 97) -> np.ndarray:
    """(points, 2) closed outline of the ``sigmas``-sigma contour of a 2-D Gaussian."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, dtype=np.float64))
    angle = np.linspace(0.0, 2 * np.pi, points)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    return np.asarray(centre, dtype=np.float64) + (sigmas * (vectors * np.sqrt(np.clip(values, 0, None))) @ circle).T


def frame_axes(frame) -> PlaneAxes:
    """The plane of a timeline frame (explorer.training.timeline.TimelineFrame) as PlaneAxes:
    its two (Procrustes-aligned) axes completed to an orthonormal basis of the code space."""
    dim = int(frame.mean.shape[0])
    if dim <= 2:
        return raw_axes(dim)
    plane = np.asarray(frame.axes, dtype=np.float64)
    q, _ = np.linalg.qr(np.concatenate([plane, np.eye(dim)], axis=1))
    q = q[:, :dim]
    signs = np.sign(np.sum(q[:, :2] * plane, axis=0))  # QR may flip an axis: keep the frame's
    q[:, :2] *= np.where(signs == 0, 1.0, signs)
    return PlaneAxes(origin=np.asarray(frame.mean, dtype=np.float64), basis=q.T, names=("PC1", "PC2"))


def frame_stats(frame, indices: np.ndarray, labels: np.ndarray | None) -> LatentStats:
    """A timeline frame's points as the latent views read codes: each point lifted to the
    full code it stands for on that epoch's plane."""
    codes = np.asarray(frame.lift(np.asarray(frame.coords, dtype=np.float64)), dtype=np.float32)
    kl = None if frame.kl_per_dim is None else np.asarray(frame.kl_per_dim, dtype=np.float32)
    std = codes.std(axis=0)
    order = np.argsort(-kl, kind="stable") if kl is not None else np.argsort(-std, kind="stable")
    active = kl > 0.01 if kl is not None else std > 1e-3 * max(float(std.max()), 1e-12)
    return LatentStats(codes=codes, labels=labels, indices=np.asarray(indices, dtype=np.int64),
                       mean=codes.mean(axis=0), std=std.astype(np.float32), kl=kl, order=order.astype(np.int64),
                       active=active)


class LatentState(QObject):
    stats_changed = Signal()  # new test-set codes, and the axes refitted to them
    axes_changed = Signal()  # the plane's axes changed (PCA refit, or the user picked dimensions)
    code_changed = Signal(str)  # the current code moved; the argument says who moved it
    label_changed = Signal(object)  # the class a conditional model draws (int) or None
    picked_changed = Signal(object)  # the test image whose code was loaded (index) or None
    decoder_changed = Signal()  # new weights: every decoded picture is out of date
    moment_changed = Signal(object)  # the timeline frame shown (index) or None for the live model
    input_changed = Signal()  # the user's own input was encoded afresh, or cleared (``input``)
    focus_changed = Signal()  # the test image whose posterior the plane outlines (hovered or picked)
    prior_changed = Signal()  # the prior's contours on the neighbour map arrived
    draws_changed = Signal()  # new decodes of a posterior (``posterior_draws``)
    selection_changed = Signal()  # the test images the lasso selected changed (``selection``)

    def __init__(self, session: TrainingSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.stats: LatentStats | None = None
        self.axes: PlaneAxes | None = None
        self.axes_mode = "pca"  # or "raw"
        self.raw_dims = (0, 1)
        self.code: np.ndarray | None = None
        self.label: int | None = None
        self.picked: int | None = None
        self.input: InputCode | None = None  # the user's own image, encoded (the "Your input" view)
        self.hovered: int | None = None  # the test image under the pointer on the plane
        self._picked_code: InputCode | None = None  # the picked image's posterior, as pick encoded it
        self._prior_on_map: tuple[LatentMap, PushedDensity] | None = None
        self._prior_asked: LatentMap | None = None
        self.posterior_draws: PosteriorDraws | None = None
        self.selection = np.zeros(0, dtype=np.int64)  # test-image numbers the lasso selected, sorted
        self._draws_made = 0  # seeds the next draws: each click shows new samples, the same in every session
        self._map_moments: dict[int, MapMoment] = {}  # timeline epoch -> where the map put its points
        self._map_fitted_epoch = 0
        self.generation = 0  # bumps when data or model changes; stale encodes are dropped
        self._pca: PlaneAxes | None = None  # fitted with the stats, in the background
        self._map: MapAxes | None = None  # the neighbour map (axes_mode "map"), likewise
        self._map_fitted_at = -float("inf")
        self._dragged: tuple[object, np.ndarray, np.ndarray] | None = None  # (axes, point, code) of the last drag
        self._encode_again = False
        self._encoding_generation = -1
        self._last_encode = 0.0
        self._last_model: Autoencoder | None = None
        self._closed = False
        # Replaying the training timeline: the frame shown (None: the live model), a copy of
        # the model whose decoder holds that frame's weights, and the live codes kept aside.
        self.moment: int | None = None
        self._replay_model: Autoencoder | None = None
        self._live: tuple[LatentStats | None, PlaneAxes | None] = (None, None)
        self._encode_timer = QTimer(self)
        self._encode_timer.setSingleShot(True)
        self._encode_timer.timeout.connect(self._encode)
        session.model_changed.connect(self._on_model_changed)
        session.data_changed.connect(self._on_data_changed)
        session.timeline_changed.connect(self._record_map_moment)

    # -- queries --------------------------------------------------------------------------

    @property
    def model(self) -> Autoencoder | None:
        """The model the views decode with: the live one, or while replaying the timeline a
        copy whose decoder has the chosen epoch's weights."""
        if self.moment is not None and self._replay_model is not None:
            return self._replay_model
        return self.session.view_model

    @property
    def ready(self) -> bool:
        return self.model is not None and self.stats is not None and self.code is not None \
            and self.axes is not None

    @property
    def dim(self) -> int:
        if self.stats is not None:
            return self.stats.dim
        return 0 if self.code is None else int(self.code.shape[0])

    @property
    def is_variational(self) -> bool:
        """Whether the model has a posterior and a prior to draw (the VAE family)."""
        return self.model is not None and bool(self.model.config.variational)

    @property
    def is_conditional(self) -> bool:
        return self.model is not None and self.model.is_conditional

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names to show: from the data (a folder's sub-folders, a checkpoint's metadata),
        each on one line with control characters escaped."""
        data = self.session.data
        if data is not None and data.class_names:
            return tuple(one_line(name, limit=CLASS_NAME_CHARS) for name in data.class_names)
        model = self.model
        return tuple(str(i) for i in range(model.config.num_classes)) if model is not None else ()

    def plane_point(self) -> np.ndarray | None:
        """The current code's position on the plane. On a neighbour map, a point dragged to
        stays where it was put: the map's inverse and its placing of codes are not exact
        opposites, and far from the data they are far apart."""
        if self.code is None or self.axes is None:
            return None
        if isinstance(self.axes, MapAxes) and self._dragged is not None and self._dragged[0] is self.axes \
                and np.array_equal(self._dragged[2], self.code):
            return self._dragged[1].copy()
        return self.axes.project(self.code)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, D) codes to (N, C, H, W) images with the chosen class."""
        assert self.model is not None
        return decode_codes(self.model, codes, self.label)

    def decode_current(self) -> np.ndarray | None:
        if self.model is None or self.code is None:
            return None
        return self.decode(self.code[None])[0]

    # -- changing the code ----------------------------------------------------------------

    def set_code(self, code: np.ndarray, source: str) -> None:
        self.code = np.asarray(code, dtype=np.float32).copy()
        self.code_changed.emit(source)

    def set_plane_point(self, x: float, y: float) -> None:
        """Move along the plane; coordinates off the plane stay as the sliders set them."""
        if self.code is None or self.axes is None:
            return
        point = np.array([x, y], dtype=np.float64)
        code = self.axes.lift(point, self.code)
        self._dragged = (self.axes, point, np.asarray(code, dtype=np.float32).copy())
        self.set_code(code, "plane")

    def set_dim(self, d: int, value: float) -> None:
        if self.code is None:
            return
        code = self.code.copy()
        code[d] = value
        self.set_code(code, "slider")

    def reset_code(self) -> None:
        """Back to the mean of the test set's codes."""
        if self.stats is not None:
            self._unpick()
            self.set_code(self.stats.mean, "reset")

    def randomise(self, seed: int | None = None) -> None:
        """A code drawn from the spread of the test set's codes (each dimension independent)."""
        if self.stats is None:
            return
        rng = np.random.default_rng(seed)
        self._unpick()
        self.set_code(self.stats.mean + self.stats.std * rng.standard_normal(self.stats.dim).astype(np.float32),
                      "random")

    def pick(self, index: int) -> None:
        """Load the code of test image ``index`` (a conditional model also takes its class)."""
        data, model = self.session.data, self.model
        if data is None or model is None or not 0 <= index < data.test_images.shape[0]:
            return
        if self.moment is not None and self.stats is not None:
            # Replaying: the image's code is where that epoch's plane put it.
            rows = np.flatnonzero(self.stats.indices == index)
            if rows.size:
                self.picked = int(index)
                if model.is_conditional and data.test_labels is not None:
                    self.set_label(int(data.test_labels[index]))
                self.set_code(self.stats.codes[rows[0]], "pick")
                self.picked_changed.emit(self.picked)
                self.focus_changed.emit()
            return
        from explorer.analysis.latents import encode_images

        labels = data.test_labels[index:index + 1] if data.test_labels is not None else None
        mean, logvar = encode_images(model, data.test_images[index:index + 1], labels)
        self._picked_code = InputCode(mean[0].numpy().astype(np.float64),
                                      None if logvar is None else logvar[0].numpy().astype(np.float64),
                                      None if labels is None else int(labels[0]))
        self.picked = int(index)
        if model.is_conditional and labels is not None:
            self.set_label(int(labels[0]))
        self.set_code(mean[0].numpy(), "pick")
        self.picked_changed.emit(self.picked)
        self.focus_changed.emit()

    def set_label(self, label: int | None) -> None:
        if label != self.label:
            self.label = label
            self.label_changed.emit(label)

    # -- the lasso's selection ----------------------------------------------------------------

    def set_selection(self, indices: np.ndarray) -> None:
        """Select these test images (their numbers, as ``stats.indices`` holds them)."""
        chosen = np.unique(np.asarray(indices, dtype=np.int64).reshape(-1))
        if not np.array_equal(chosen, self.selection):
            self.selection = chosen
            self.selection_changed.emit()

    def clear_selection(self) -> None:
        self.set_selection(np.zeros(0, dtype=np.int64))

    # -- the user's own input ---------------------------------------------------------------

    def set_input(self, mean: np.ndarray, logvar: np.ndarray | None = None, label: int | None = None) -> None:
        """The user's own image was encoded: its posterior mean (and log-variance) under ``label``."""
        self.input = InputCode(np.asarray(mean, dtype=np.float64).copy(),
                               None if logvar is None else np.asarray(logvar, dtype=np.float64).copy(), label)
        self.input_changed.emit()

    def clear_input(self) -> None:
        if self.input is not None:
            self.input = None
            self.input_changed.emit()

    def input_point(self) -> np.ndarray | None:
        """Where the input's posterior mean lies on the plane."""
        if self.input is None or self.axes is None or self.input.mean.shape[0] != self.axes.dim:
            return None
        return np.asarray(self.axes.project(self.input.mean), dtype=np.float64)

    def input_posterior(self) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """The input's posterior on the plane, (centre, 2x2 covariance, exact), for the VAE family."""
        return self._on_plane(self.input)

    def _on_plane(self, code: InputCode | None) -> tuple[np.ndarray, np.ndarray, bool] | None:
        if code is None or code.logvar is None or self.axes is None or code.mean.shape[0] != self.axes.dim:
            return None
        return plane_covariance(self.axes, code.mean, code.logvar)

    # -- test images' posteriors, the prior, and draws from a posterior -----------------------

    def set_hovered(self, index: int | None) -> None:
        """The pointer is over test image ``index``'s dot (None: over none)."""
        index = None if index is None else int(index)
        if index != self.hovered:
            self.hovered = index
            self.focus_changed.emit()

    @property
    def focus(self) -> int | None:
        """The test image whose posterior the plane outlines: the hovered one, else the picked one."""
        return self.hovered if self.hovered is not None else self.picked

    def test_posterior(self, index: int) -> InputCode | None:
        """Test image ``index``'s posterior as the last encode found it (its row of the
        codes and log-variances), or as picking it encoded it; None for a plain autoencoder,
        while replaying (frames keep no posteriors) or for an image not encoded."""
        stats = self.stats
        if stats is not None and stats.logvar is not None and self.moment is None:
            row = int(np.searchsorted(stats.indices, index))  # the encoded subset is sorted
            if row < len(stats.indices) and stats.indices[row] == index:
                label = None if stats.labels is None else int(stats.labels[row])
                return InputCode(stats.codes[row].astype(np.float64), stats.logvar[row].astype(np.float64), label)
        code = self._picked_code
        if index == self.picked and code is not None and code.logvar is not None and self.moment is None:
            return code
        return None

    def focus_posterior(self) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """The focused test image's posterior on the plane, (centre, 2x2 covariance, exact)."""
        index = self.focus
        return None if index is None else self._on_plane(self.test_posterior(index))

    def posterior_note(self) -> str:
        """Why a test image shows no posterior ellipse, or what the ellipse is."""
        if self.model is not None and not self.is_variational:
            return "a plain autoencoder gives each image one code, with no posterior to outline"
        if self.moment is not None:
            return "a replayed epoch keeps its codes, not their posteriors: no ellipse"
        return "its posterior's 2-sigma ellipse is outlined"

    def prior_on_plane(self) -> PriorOnPlane | None:
        """The prior's 1- and 2-sigma contours on the plane, for the VAE family: exact through
        a linear plane (PCA, raw axes, a replayed epoch's plane); through the neighbour map
        the pushed density once :meth:`want_prior` has had it estimated (else None)."""
        axes = self.axes
        if axes is None or not self.is_variational:
            return None
        if isinstance(axes, MapAxes):
            if self.moment is not None:
                return None  # a replayed map is of that epoch's plane: no prior to push through it
            held = self._prior_on_map
            if held is None or held[0] is not axes.latent_map:
                return None
            return PriorOnPlane(PRIOR_SIGMAS, density=held[1])
        zeros = np.zeros(axes.dim)
        centre, covariance, _ = plane_covariance(axes, zeros, zeros)
        return PriorOnPlane(PRIOR_SIGMAS, outlines=tuple(ellipse_outline(centre, covariance, s) for s in PRIOR_SIGMAS))

    def want_prior(self) -> None:
        """Have the prior's contours on the shown neighbour map estimated, in the background
        (``prior_changed`` when they are in); nothing to do on a linear plane."""
        axes = self.axes
        if not isinstance(axes, MapAxes) or self.moment is not None or not self.is_variational:
            return
        latent_map = axes.latent_map
        if (self._prior_on_map is not None and self._prior_on_map[0] is latent_map) or self._prior_asked is latent_map:
            return
        self._prior_asked = latent_map
        samples = np.random.default_rng(0).standard_normal((PRIOR_MAP_SAMPLES, latent_map.dim))
        self.session.tasks.submit(PRIOR_TASK, lambda _: push_density(latent_map, samples, PRIOR_MASSES),
                                  label="Pushing the prior through the neighbour map",
                                  on_done=lambda density: self._on_prior(latent_map, density),
                                  on_failed=self._on_prior_failed)

    def _on_prior(self, latent_map: LatentMap, density: PushedDensity) -> None:
        if self._prior_asked is latent_map:
            self._prior_asked = None
        self._prior_on_map = (latent_map, density)
        self.prior_changed.emit()

    def _on_prior_failed(self, message: str) -> None:
        self._prior_asked = None
        self.session.warning.emit(f"Could not place the prior on the neighbour map: {message}")

    def draw_from_posterior(self, index: int | None = None, n: int = POSTERIOR_DRAWS) -> bool:
        """Decode test image ``index``'s posterior (None: the user's input's): its mean and
        ``n`` seeded samples of N(mean, diag(var)), in the background (``draws_changed``).
        False when there is no posterior to draw from."""
        code = self.input if index is None else self.test_posterior(index)
        model = self.model
        if code is None or code.logvar is None or model is None or code.mean.shape[0] != model.config.latent_dim:
            return False
        rng = np.random.default_rng(self._draws_made)
        self._draws_made += 1
        std = np.exp(0.5 * code.logvar)
        codes = np.concatenate([code.mean[None], code.mean + std * rng.standard_normal((n, code.mean.shape[0]))])
        codes = codes.astype(np.float32)
        label = code.label if model.is_conditional else None
        if model.is_conditional and label is None:
            label = self.label
        source = "your input" if index is None else f"test image {index}"
        copy = ModelCopy.of(model)
        self.session.tasks.submit(DRAW_TASK, lambda _: decode_codes(copy.build(), codes, label),
                                  label="Decoding draws from a posterior",
                                  on_done=lambda images: self._on_draws(PosteriorDraws(source, codes, images)),
                                  on_failed=lambda message: self.session.warning.emit(
                                      f"Could not decode the posterior's draws: {message}"))
        return True

    def _on_draws(self, draws: PosteriorDraws) -> None:
        self.posterior_draws = draws
        self.draws_changed.emit()

    def use_input_code(self) -> None:
        """Move the current code to the input's posterior mean (and a conditional model's
        class to the one it was encoded with)."""
        code = self.input
        if code is None or self.code is None or code.mean.shape[0] != self.code.shape[0]:
            return
        self._unpick()
        if code.label is not None and self.is_conditional:
            self.set_label(code.label)
        self.set_code(code.mean, "input")

    # -- the plane's axes -----------------------------------------------------------------

    def use_pca_axes(self) -> None:
        self.axes_mode = "pca"
        self._refit_axes()

    def use_map_axes(self) -> None:
        """A UMAP-style neighbour map (explorer.analysis.maps), fitted in the background:
        PCA shows until it is in."""
        self.axes_mode = "map"
        self._refit_axes()
        if self._map is None:
            self._schedule_encode(now=True)

    def extrapolation(self) -> float | None:
        """With the neighbour map shown: how far the current point is from every test code,
        in the map's neighbour distances (above EXTRAPOLATED the decode is an extrapolation)."""
        point = self.plane_point()
        if not isinstance(self.axes, MapAxes) or point is None:
            return None
        return self.axes.extrapolation(point)

    def is_extrapolated(self) -> bool:
        distance = self.extrapolation()
        return distance is not None and distance > EXTRAPOLATED

    def use_raw_axes(self, first: int, second: int) -> None:
        self.axes_mode = "raw"
        self.raw_dims = (first, second)
        self._refit_axes()

    def _refit_axes(self, emit: bool = True) -> None:
        if self.stats is None:
            return
        dim = self.stats.dim
        if dim <= 2:
            self.axes = raw_axes(dim)  # a 1- or 2-D code is its own plane: no rotation to explain
        elif self.moment is not None:
            self.axes = self._moment_axes(self.moment)
        elif self.axes_mode == "map" and self._map is not None:
            self.axes = self._map
        elif self.axes_mode in ("pca", "map") and self._pca is not None:
            self.axes = self._pca
        else:
            first, second = self.raw_dims
            if not (first < dim and second < dim and first != second):
                first, second = sorted((int(self.stats.order[0]), int(self.stats.order[1])))
                self.raw_dims = (first, second)
            self.axes = raw_axes(dim, first, second)
        if emit:
            self.axes_changed.emit()

    # -- keeping up with the session --------------------------------------------------------

    def _on_data_changed(self) -> None:
        self.generation += 1
        self._unpick()
        self.clear_selection()  # other test images: the numbers name other pictures
        self.stats = None
        self._schedule_encode(now=True)

    def _on_model_changed(self) -> None:
        model = self.session.view_model
        if model is not self._last_model and self.moment is not None:
            self._leave_replay(emit=False)  # another model: its own timeline, from the live end
        if model is not self._last_model:
            # Another model (opened, or a new run): the codes, axes, picked image, the code
            # and the raw-axis choice belonged to the old one. The first encode of this one
            # puts the code at its mean and the raw axes on its two busiest dimensions.
            self._last_model = model
            self.generation += 1
            self.stats, self.axes, self._pca, self.code = None, None, None, None
            self._map, self._map_fitted_at, self._map_fitted_epoch = None, -float("inf"), 0
            self._prior_on_map, self._prior_asked, self._map_moments = None, None, {}
            self.hovered = None
            self._unpick()
            self.clear_selection()
            if self.posterior_draws is not None:
                self.posterior_draws = None
                self.draws_changed.emit()
        if model is not None and not model.is_conditional:
            self.set_label(None)
        elif model is not None and (self.label is None or self.label >= model.config.num_classes):
            self.set_label(0)
        self.decoder_changed.emit()
        self._schedule_encode(now=self.stats is None or not self.session.is_running)

    def _unpick(self) -> None:
        self._picked_code = None
        if self.picked is not None:
            self.picked = None
            self.picked_changed.emit(None)
            self.focus_changed.emit()

    def shutdown(self) -> None:
        """The window is closing: start no more encodes."""
        self._closed = True
        self._encode_timer.stop()
        self.session.tasks.cancel(ENCODE_TASK)

    def _schedule_encode(self, now: bool) -> None:
        if self._closed:
            return
        wait = 0.0 if now else max(0.0, ENCODE_INTERVAL_S - (time.monotonic() - self._last_encode))
        if not self._encode_timer.isActive() or wait == 0.0:
            self._encode_timer.start(int(wait * 1000))

    def _encode(self) -> None:
        data, model = self.session.data, self.session.view_model
        if self._closed or data is None or model is None or data.image_shape != model.config.image_shape:
            return
        if model.is_conditional and data.test_labels is None:
            self.session.warning.emit("This conditional model needs class labels, and its data has none: "
                                      "the latent views cannot encode it.")
            return
        if self.session.tasks.runner.is_busy(ENCODE_TASK) and self.generation == self._encoding_generation:
            # One encode of this model at a time: a newer request would only drop the running
            # one's result (and, with slow encodes, starve the views). Encode again after it.
            self._encode_again = True
            return
        copy, generation = ModelCopy.of(model), self.generation
        images, labels = data.test_images, data.test_labels
        shown = self._live_plane()
        self._encoding_generation = generation
        self._last_encode = time.monotonic()
        map_request = None
        if self.axes_mode == "map":
            due = map_refit_due(self.session.is_running, time.monotonic() - self._map_fitted_at,
                                self.session.history.last_epoch - self._map_fitted_epoch)
            map_request = MapRequest(self._map, refit=self._map is None or due)
        label = "Fitting the neighbour map" if map_request is not None and map_request.refit \
            else "Encoding the test images"
        self.session.tasks.submit(ENCODE_TASK, lambda _: _encode_off_thread(copy, images, labels, shown, map_request),
                                  label=label,
                                  on_done=lambda encoded: self._on_encoded(generation, encoded, shown[1]),
                                  on_failed=self._on_encode_failed)

    def _live_plane(self) -> tuple[LatentStats | None, PlaneAxes | None]:
        """The live model's codes and principal axes (kept aside while the timeline replays)."""
        return self._live if self.moment is not None else (self.stats, self._pca)

    def _on_encoded(self, generation: int, encoded: Encoded, aligned_to: PlaneAxes | None = None) -> None:
        stats, pca = encoded.stats, encoded.pca
        live_model = self.session.view_model
        current = self._live_plane()[1]
        if pca is not None and current is not None and current is not aligned_to:
            pca = aligned_plane(pca, None, current)  # the plane changed meanwhile: turn to the one shown now
        current_model = generation == self.generation and live_model is not None \
            and stats.dim == live_model.config.latent_dim
        if current_model and encoded.map_axes is not None:
            if self._map is None or encoded.map_axes.latent_map is not self._map.latent_map:
                self._map_fitted_at = time.monotonic()
                self._map_fitted_epoch = self.session.history.last_epoch
            self._map = encoded.map_axes
        if self.moment is not None:  # replaying: keep the live codes for when the replay ends
            if current_model:
                self._live = (stats, pca)
            self._encode_done()
            return
        if current_model:
            first = self.stats is None
            self.stats, self._pca = stats, pca
            if first and stats.dim > 2:
                self.raw_dims = tuple(sorted((int(stats.order[0]), int(stats.order[1]))))
            self._refit_axes(emit=False)  # stats_changed tells the views about both
            self.stats_changed.emit()
            if self.code is None:
                self.set_code(stats.mean, "stats")
        self._encode_done()

    # -- replaying the training timeline ------------------------------------------------------

    def show_moment(self, index: int | None) -> None:
        """Show the timeline's frame ``index`` (the scatter, the axes and every decoded image
        follow that epoch's stored plane and decoder), or the live model for ``None``. The
        marker keeps its place on the plane."""
        timeline, live = self.session.timeline, self.session.view_model
        if index is None or timeline is None or live is None or not 0 <= index < len(timeline.frames):
            if self.moment is not None:
                self._leave_replay(emit=True)
            return
        frame = timeline.frames[index]
        if frame.coords.shape[0] == 0 or frame.mean.shape[0] != live.config.latent_dim:
            return
        point = self.plane_point()
        if self.moment is None:
            self._live = (self.stats, self._pca)
            self._replay_model = build_model(live.config, check=False).eval()
            self._replay_model.load_state_dict(live.state_dict())
        assert self._replay_model is not None
        if frame.decoder:
            with torch.no_grad():
                self._replay_model.decoder.load_state_dict({k: v.float() for k, v in frame.decoder.items()})
        self.moment = index
        self.stats = frame_stats(frame, timeline.indices, timeline.labels)
        self._refit_axes(emit=False)
        self.stats_changed.emit()
        self.decoder_changed.emit()
        if point is not None and self.code is not None:
            self.set_code(self.axes.lift(point, self.code), "moment")
        else:
            self.set_code(self.stats.mean, "moment")
        self.moment_changed.emit(index)

    def _moment_axes(self, index: int) -> PlaneAxes | MapAxes:
        """A replayed epoch's plane: with the plane on the neighbour map and that epoch's map
        recorded, the map as it placed the epoch's points (its inverse blends the epoch's
        codes, so dragging decodes that epoch's codes); else the epoch's stored PCA plane."""
        timeline = self.session.timeline
        assert timeline is not None and self.stats is not None
        frame = timeline.frames[index]
        moment = self._map_moments.get(frame.epoch) if self.axes_mode == "map" else None
        if moment is not None and moment.points.shape[0] == self.stats.codes.shape[0]:
            latent_map = LatentMap("umap", self.stats.codes, moment.points, scale=moment.scale)
            return MapAxes.of(latent_map)
        return frame_axes(frame)

    def map_moment(self, epoch: int) -> MapMoment | None:
        """Where the neighbour map placed timeline epoch ``epoch``'s test images, if recorded."""
        return self._map_moments.get(epoch)

    @property
    def moment_on_map(self) -> bool | None:
        """While replaying with the plane on the neighbour map: whether the epoch shows its
        recorded map (False: its PCA plane, as no map was recorded then); None otherwise."""
        if self.moment is None or self.axes_mode != "map":
            return None
        return isinstance(self.axes, MapAxes)

    def _record_map_moment(self) -> None:
        """A frame arrived while a run trains: note where the neighbour map (if it is shown)
        puts that frame's test images, so replaying the epoch shows the map of the time.
        Records of frames the timeline thinned away go with them."""
        timeline = self.session.timeline
        if timeline is None or not timeline.frames:
            self._map_moments = {}
            return
        epochs = {frame.epoch for frame in timeline.frames}
        self._map_moments = {e: m for e, m in self._map_moments.items() if e in epochs}
        epoch = timeline.frames[-1].epoch
        stats = self._live_plane()[0]
        latent_map = self._map
        if not self.session.is_running or epoch in self._map_moments or self.axes_mode != "map" \
                or latent_map is None or stats is None or latent_map.known_points.shape[0] != len(stats.indices):
            return
        wanted = np.asarray(timeline.indices, dtype=np.int64)
        rows = np.minimum(np.searchsorted(stats.indices, wanted), len(stats.indices) - 1)
        if not np.array_equal(stats.indices[rows], wanted):
            return  # the timeline follows images the encode did not take
        points = latent_map.known_points[rows].astype(np.float32)
        self._map_moments[epoch] = MapMoment(points, float(latent_map.latent_map.scale), coords_bulk(points))

    def replay_points(self) -> np.ndarray:
        """Two corner points spanning the bulk of every recorded epoch's points (each
        frame's 0.5-99.5 percentiles, then the widest): what frames the whole replay. The
        timeline keeps them as frames arrive and finds them on load, in the background: at
        the first scrub, percentiles of 10,000 frames held the GUI thread for 2-3 s."""
        if self.moment_on_map and self._map_moments:
            return widest(np.stack([m.bulk for m in self._map_moments.values()]))
        timeline = self.session.timeline
        extent = timeline.extent if timeline is not None else None
        return np.zeros((2, 2)) if extent is None else extent

    def _leave_replay(self, emit: bool) -> None:
        point = self.plane_point()
        self.moment, self._replay_model = None, None
        self.stats, self._pca = self._live
        self._live = (None, None)
        self.axes = None
        self._refit_axes(emit=False)
        if not emit:
            return
        self.stats_changed.emit()
        self.focus_changed.emit()  # the live codes have posteriors again
        self.decoder_changed.emit()
        if point is not None and self.code is not None and self.axes is not None:
            self.set_code(self.axes.lift(point, self.code), "moment")
        self.moment_changed.emit(None)
        self._schedule_encode(now=True)

    def _on_encode_failed(self, message: str) -> None:
        self.session.warning.emit(f"Could not encode the test images: {message}")
        self._encode_done()

    def _encode_done(self) -> None:
        if self._encode_again:
            self._encode_again = False
            self._schedule_encode(now=not self.session.is_running)
