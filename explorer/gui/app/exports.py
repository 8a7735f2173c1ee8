"""File > Export: each declared view's exports, the test codes, and generating a dataset
folder. Writing a picture of what is on screen is quick; generating a folder decodes many
images, so it runs through the session's task runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

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
