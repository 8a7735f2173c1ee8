"""The list of views: what the window builds its docks, its View menu and its Export menu
from. Adding a view is one module under ``gui/views`` and one row here.

A view is a QWidget whose ``__init__`` takes the state object it reads (the session, the
latent state, or nothing), listens to that object's signals and changes it only through
its methods. Its row says where its dock sits, what it exports (a method that takes a
path and raises ValueError/UserError when there is nothing to write) and whether it keeps
settings (``save_settings``/``restore_settings`` on a QSettings).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from PySide6.QtWidgets import QWidget

from explorer.gui.views.anomaly_view import AnomalyView
from explorer.gui.views.code_view import CodeView
from explorer.gui.views.compression_view import CompressionView
from explorer.gui.views.denoise_view import DenoiseView
from explorer.gui.views.directions_view import DirectionsView
from explorer.gui.views.draw_view import DrawView
from explorer.gui.views.evaluation_view import EvaluationView
from explorer.gui.views.interpolation_view import InterpolationView
from explorer.gui.views.latent_plane import LatentPlane
from explorer.gui.views.loss_plot import LossPlot
from explorer.gui.views.neighbours_view import NeighboursView
from explorer.gui.views.recon_view import ReconstructionView
from explorer.gui.views.runs_view import RunsView
from explorer.gui.views.samples_view import SamplesView
from explorer.gui.views.training_panel import TrainingPanel
from explorer.gui.views.traversal_view import TraversalView

PNG = "PNG images (*.png)"
CODES = "CSV (*.csv);;NumPy arrays (*.npy)"
TABLES = "CSV (*.csv);;Markdown (*.md)"
_KINDS = {PNG: "PNG", CODES: "CSV/NPY", TABLES: "CSV/Markdown"}


class Reads(Enum):
    """The state object a view's ``__init__`` takes."""

    NOTHING = "nothing"
    SESSION = "session"  # TrainingSession: runs, the model, data, history
    LATENT = "latent"  # LatentState: the shared code, axes and test codes
    RUNS = "runs"  # RunsState: runs side by side and their linked cursor


class Place(Enum):
    """Where a view's dock starts (users can move, float or hide it)."""

    CENTRE = "centre"  # the window's central widget, not a dock
    LEFT = "left"  # each place's views share one tab group, the first view in front
    RIGHT = "right"
    BOTTOM_LEFT = "bottom left"  # the bottom row spans the window: two groups side by side
    BOTTOM_RIGHT = "bottom right"


@dataclass(frozen=True)
class Export:
    """One File > Export entry: ``Export <what> as PNG...`` calling ``view.<method>(path)``."""

    what: str
    filename: str
    method: str = "export_png"
    file_filter: str = PNG

    @property
    def menu_text(self) -> str:
        kind = _KINDS.get(self.file_filter, "file")
        return f"Export {self.what} as {kind}..." if kind == "PNG" else f"Export {self.what} ({kind})..."


@dataclass(frozen=True)
class ViewSpec:
    name: str  # the window's attribute for the widget, e.g. window.loss_plot
    title: str  # the dock's title and its View menu entry
    widget: type[QWidget]
    reads: Reads
    place: Place
    dock_name: str = ""  # the dock's objectName (saved window layouts refer to it)
    exports: tuple[Export, ...] = ()
    keeps_settings: bool = False
    scrolls: bool = False  # tall forms sit in a scroll area


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("plane", "Latent plane", LatentPlane, Reads.LATENT, Place.CENTRE, keeps_settings=True,
             exports=(Export("latent plane", "latent-plane.png"),
                      Export("manifold grid", "manifold.png", "export_manifold_png"))),
    ViewSpec("panel", "Training settings", TrainingPanel, Reads.NOTHING, Place.LEFT, "trainingDock",
             keeps_settings=True, scrolls=True),
    ViewSpec("code_view", "Latent code", CodeView, Reads.LATENT, Place.RIGHT, "codeDock"),
    ViewSpec("loss_plot", "Loss curves", LossPlot, Reads.SESSION, Place.BOTTOM_LEFT, "lossDock",
             exports=(Export("loss curves", "losses.png"),)),
    ViewSpec("denoise_view", "Denoising", DenoiseView, Reads.SESSION, Place.BOTTOM_LEFT, "denoiseDock",
             exports=(Export("denoising", "denoising.png"),)),
    ViewSpec("anomaly_view", "Anomalies", AnomalyView, Reads.SESSION, Place.BOTTOM_LEFT, "anomalyDock",
             exports=(Export("most anomalous images", "anomalies.png"),)),
    ViewSpec("compression_view", "Compression", CompressionView, Reads.SESSION, Place.BOTTOM_LEFT,
             "compressionDock"),
    ViewSpec("evaluation_view", "Evaluation", EvaluationView, Reads.SESSION, Place.BOTTOM_LEFT, "evaluationDock",
             exports=(Export("evaluation table", "evaluation.csv", "export_table", TABLES),)),
    ViewSpec("recon_view", "Reconstructions", ReconstructionView, Reads.SESSION, Place.BOTTOM_RIGHT, "reconDock",
             exports=(Export("reconstructions", "reconstructions.png"),)),
    ViewSpec("samples_view", "Samples", SamplesView, Reads.LATENT, Place.BOTTOM_RIGHT, "samplesDock",
             exports=(Export("samples", "samples.png"),)),
    ViewSpec("interpolation_view", "Interpolation", InterpolationView, Reads.LATENT, Place.BOTTOM_RIGHT,
             "interpolationDock",
             exports=(Export("interpolation", "interpolation.png"),
                      Export("interpolation codes", "interpolation-codes.csv", "export_codes", CODES))),
    ViewSpec("traversal_view", "Traversal", TraversalView, Reads.LATENT, Place.BOTTOM_RIGHT, "traversalDock",
             exports=(Export("traversal", "traversal.png"),)),
    ViewSpec("runs_view", "Side by side", RunsView, Reads.RUNS, Place.BOTTOM_LEFT, "runsDock"),
    ViewSpec("draw_view", "Your input", DrawView, Reads.LATENT, Place.BOTTOM_RIGHT, "drawDock"),
    ViewSpec("neighbours_view", "Neighbours", NeighboursView, Reads.LATENT, Place.BOTTOM_RIGHT, "neighboursDock",
             exports=(Export("nearest neighbours", "neighbours.png"),)),
    ViewSpec("directions_view", "Directions", DirectionsView, Reads.LATENT, Place.BOTTOM_RIGHT, "directionsDock",
             exports=(Export("directions", "directions.csv", "export_directions", CODES),)),
)
