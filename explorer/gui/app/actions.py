"""The window's commands as data: one row per action (text, shortcut, tip, what it runs,
when it is enabled) and the menus as lists of action names. The window builds QActions
and menus from these tables, so a command is added or moved in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtGui import QKeySequence

if TYPE_CHECKING:
    from explorer.gui.app.main_window import MainWindow

Key = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    name: str  # the window's attribute, e.g. window.start_action
    text: str
    run: Callable[[MainWindow], object]
    shortcut: str | QKeySequence.StandardKey | None = None
    tip: str = ""
    enabled: Callable[[MainWindow], bool] | None = None  # re-checked when the run state changes
    toolbar: bool = False


def _idle(w: MainWindow) -> bool:
    return not w.session.is_running


def _can_train(w: MainWindow) -> bool:
    """Training is refused while the window follows a run (File > Stop following first)."""
    return _idle(w) and not w.follower.following


def _can_save(w: MainWindow) -> bool:
    """A model given from Python as an encoder and decoder has no checkpoint form."""
    return w.session.has_model and getattr(w.session.view_model, "storable", True)


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_action", "&Open checkpoint...", lambda w: w.files.ask_open(), Key.Open,
               "Open a trained model", _idle),
    ActionSpec("follow_action", "&Follow run...", lambda w: w.files.ask_follow(),
               tip="Show a checkpoint another process keeps writing (a headless train, a cluster run) and update "
                   "every view with each new version; training is off while following", enabled=_idle),
    ActionSpec("stop_following_action", "Stop f&ollowing", lambda w: w.follower.stop(),
               tip="Stop updating from the followed run (the last version stays)",
               enabled=lambda w: w.follower.following),
    ActionSpec("save_action", "&Save", lambda w: w.files.save(), Key.Save, "Save the model", _can_save),
    ActionSpec("save_as_action", "Save &as...", lambda w: w.files.ask_save_as(), Key.SaveAs,
               "Save the model to a new file", _can_save),
    ActionSpec("generate_folder_action", "Generate a dataset folder...", lambda w: w.exports.ask_generate_folder(),
               tip="Write generated images (the Samples view's count, per class for conditional models) as an "
                   "image folder the app can train on, plus images.npy"),
    ActionSpec("training_film_action", "Training film (GIF/MP4)...", lambda w: w.exports.ask_training_film(),
               tip="The latent plane through the run, one frame per recorded epoch, with the epoch and loss on "
                   "each frame (and the manifold when it is shown)",
               enabled=lambda w: w.session.timeline is not None and bool(w.session.timeline.frames)),
    ActionSpec("export_model_action", "&Model...",
               lambda w: w.exports.ask_model_export(),
               tip="Write the decoder and encoder for other tools: ONNX, a torch.export program (.pt2), or one "
                   "HTML page that runs an MLP decoder in any browser",
               enabled=lambda w: w.session.has_model and getattr(w.session.view_model, "storable", True)),
    ActionSpec("quit_action", "&Quit", lambda w: w.close(), Key.Quit),
    ActionSpec("start_action", "&Start", lambda w: w.training.start(), "F5",
               "Start training a new model (off while following a run)", _can_train, toolbar=True),
    ActionSpec("continue_action", "&Continue training", lambda w: w.training.continue_training(), "Ctrl+F5",
               "Train the current model for more epochs (off while following a run, and for your own encoder "
               "and decoder given from Python)",
               lambda w: _can_train(w) and w.session.has_model and getattr(w.session.view_model, "trainable", True)),
    ActionSpec("pause_action", "&Pause", lambda w: w.training.toggle_pause(), "F6", "Pause or resume training",
               lambda w: w.session.state in ("training", "paused"), toolbar=True),
    ActionSpec("stop_action", "S&top", lambda w: w.session.stop(), "Shift+F5", "Stop training",
               lambda w: w.session.state in ("loading", "training", "paused"), toolbar=True),
    ActionSpec("restore_autosave_action", "Restore last &autosave", lambda w: w.autosave.restore(),
               tip="Open the run the app last autosaved", enabled=_idle),
    ActionSpec("zoom_in_action", "&Larger text", lambda w: w.text_size.change(+1), Key.ZoomIn,
               "Larger text for demos"),
    ActionSpec("zoom_out_action", "&Smaller text", lambda w: w.text_size.change(-1), Key.ZoomOut),
    ActionSpec("zoom_reset_action", "&Normal text size", lambda w: w.text_size.apply(0), "Ctrl+0"),
)

# Menus: action names, "-" for a separator, and "@name" for a submenu the window fills.
MENUS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("&File", ("open_action", "@recent", "follow_action", "stop_following_action", "save_action", "save_as_action",
                "-", "@export", "-", "quit_action")),
    ("&Training", ("start_action", "continue_action", "pause_action", "stop_action", "-", "@autosave")),
    ("&View", ("zoom_in_action", "zoom_out_action", "zoom_reset_action", "-", "@docks")),
)
