"""File > Export: each declared view's exports, the test codes, and generating a dataset
folder. Writing a picture of what is on screen is quick; generating a folder decodes many
images, so it runs through the session's task runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from explorer.config import TrainConfig
from explorer.display import one_line
from explorer.errors import UserError
from explorer.gui.app.dialogs import Icon
from explorer.gui.views.registry import CODES, Export

if TYPE_CHECKING:
    from explorer.gui.app.main_window import MainWindow

TEST_CODES = Export("test codes", "codes.csv", "export_test_codes", CODES)


class ExportCommands:
    def __init__(self, window: MainWindow) -> None:
        self.window = window

    def ask(self, export: Export, write: Callable[[str], None]) -> None:
        folder = self.window.files.last_folder()
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export {export.what}", str(Path(folder) / export.filename),
                                              export.file_filter)
        if path:
            self.export_to(path, export.what, write)

    def export_to(self, path: str, what: str, write: Callable[[str], None]) -> bool:
        try:
            write(path)
        except (ValueError, UserError, OSError) as exc:
            self.window.dialogs.message(Icon.Information, f"Cannot export the {what}", str(exc))
            return False
        self.window.statusBar().showMessage(f"Exported {one_line(path)}")
        return True

    def export_test_codes(self, path: str) -> None:
        from explorer.analysis.export import save_codes

        stats = self.window.latent.stats
        if stats is None:
            raise ValueError("there are no test codes yet: train a model or open one")
        if not path.lower().endswith((".csv", ".npy")):
            raise ValueError("codes are written as .csv or .npy")
        save_codes(path, stats.codes, stats.labels)

    # -- the training film -------------------------------------------------------------------

    def ask_training_film(self) -> None:
        folder = self.window.files.last_folder()
        path, _ = QFileDialog.getSaveFileName(self.window, "Export the training film",
                                              str(Path(folder) / "training.gif"), "GIF (*.gif);;MP4 video (*.mp4)")
        if path:
            self.export_training_film(path)

    def export_training_film(self, path: str, fps: int = 4) -> None:
        """Render and write the film off the GUI thread (a long run with the manifold takes
        seconds); the status bar says when it is written. The manifold is drawn when the
        plane shows it."""
        from explorer.training.checkpoint import Checkpoint
        from explorer.training.film import check_film_path, film_frames, write_film

        window, session = self.window, self.window.session
        try:
            check_film_path(path)
        except UserError as exc:
            window.dialogs.message(Icon.Information, "Cannot export the training film", str(exc))
            return
        timeline, model = session.timeline, session.view_model
        if timeline is None or not timeline.frames or model is None or session.data_config is None:
            window.dialogs.message(Icon.Information, "Cannot export the training film",
                                   "This model has no training timeline; a new run records one.")
            return
        snapshot = Checkpoint(model.config, session.data_config, session.train_config or TrainConfig(),
                              {}, class_names=session.data.class_names if session.data is not None else (),
                              timeline=timeline.copy())
        manifold = window.plane.show_manifold.isChecked()

        def work(_) -> int:
            frames = film_frames(snapshot, manifold)
            write_film(frames, path, fps)
            return len(frames)

        def done(n: int) -> None:
            window.statusBar().showMessage(f"Exported {n} frames to {one_line(path)}")

        def failed(message: str) -> None:
            window.dialogs.message(Icon.Warning, "Could not export the film", message)

        window.statusBar().showMessage(f"Rendering the training film into {one_line(path)}...")
        session.tasks.submit("training-film", work, label="Rendering the training film", model_bound=False,
                             on_done=done, on_failed=failed)

    # -- a dataset folder -------------------------------------------------------------------

    def ask_generate_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Generate into a new or empty folder",
                                                  self.window.files.last_folder())
        if folder:
            self.generate_folder(folder)

    def generate_folder(self, folder: str) -> None:
        """Generate images off the GUI thread and write them as an image folder."""
        import numpy as np

        from explorer.analysis.dataset_export import write_image_folder
        from explorer.analysis.latents import sample_codes
        from explorer.analysis.manifold import decode_codes
        from explorer.runtime.threads import ModelCopy

        window = self.window
        model, stats = window.session.view_model, window.latent.stats
        if model is None or (not model.is_generative and stats is None):
            window.dialogs.message(Icon.Information, "Nothing to generate", "Train or open a model first.")
            return
        copy, config = ModelCopy.of(model), model.config
        n, seed = window.samples_view.side.value() ** 2, window.samples_view.seed.value()
        data = window.session.data
        # The data's own names (folders are named as the user's were), not the escaped ones shown.
        names = data.class_names if data is not None and data.class_names else window.latent.class_names

        def work(_) -> int:
            from explorer.memory_budget import check_generate

            check_generate(config, n, per_class=True, ui="window")
            decoder = copy.build()
            labels = np.repeat(np.arange(config.num_classes), n) if config.conditional else None
            codes = sample_codes(config, stats, n * (config.num_classes if config.conditional else 1), seed)
            return len(write_image_folder(folder, decode_codes(decoder, codes, labels), labels, names))

        window.statusBar().showMessage(f"Generating images into {one_line(folder)}...")
        window.session.tasks.submit(
            "generate-folder", work, label="Generating a dataset folder", model_bound=False,
            on_done=lambda written: window.statusBar().showMessage(f"Wrote {written} images to {one_line(folder)}"),
            on_failed=lambda message: window.dialogs.message(Icon.Warning, "Could not generate", message))
