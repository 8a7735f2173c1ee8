"""File > Export: each declared view's exports, the test codes, and generating a dataset
folder. Writing a picture of what is on screen is quick; generating a folder decodes many
images, so it runs through the session's task runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from explorer.config import TrainConfig
from explorer.display import one_line, plural
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
        plane shows it. Frames stream to the file one at a time (a 10,000-frame timeline
        rendered into a list ran out of memory), and closing the window cancels between
        frames. Whatever ends the task, the status bar leaves "Rendering..."."""
        from explorer.training.checkpoint import Checkpoint
        from explorer.training.film import check_film_path, export_film

        window, session = self.window, self.window.session
        try:
            check_film_path(path)
        except UserError as exc:
            window.dialogs.message(Icon.Information, "Cannot export the training film", str(exc))
            return
        timeline, model = session.timeline, session.view_model
        if timeline is None or not timeline.frames or model is None or session.data_config is None:
            why = ("This file's training timeline was damaged and dropped on load; a new run records one."
                   if session.timeline_damaged else "This model has no training timeline; a new run records one.")
            window.dialogs.message(Icon.Information, "Cannot export the training film", why)
            return
        snapshot = Checkpoint(model.config, session.data_config, session.train_config or TrainConfig(),
                              {}, class_names=session.data.class_names if session.data is not None else (),
                              timeline=timeline.copy())
        manifold = window.plane.show_manifold.isChecked()

        def work(_) -> int:
            return export_film(snapshot, path, fps, manifold)

        def done(n: int) -> None:
            window.statusBar().showMessage(f"Exported {plural(n, 'frame')} to {one_line(path)}")

        def failed(message: str) -> None:
            window.statusBar().showMessage(f"Could not export the training film to {one_line(path)}", 10_000)
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
            on_done=lambda written: window.statusBar().showMessage(
                f"Wrote {plural(written, 'image')} to {one_line(folder)}"),
            on_failed=lambda message: window.dialogs.message(Icon.Warning, "Could not generate", message))

    # -- the model for other tools (explorer.export) ---------------------------------------------

    def ask_model_export(self) -> None:
        """File > Export > Model...: the dialog's filter says the format and the part; a
        name with another known suffix wins over the filter's format."""
        from explorer.export.web import check_web

        folder = self.window.files.last_folder()
        model = self.window.session.view_model
        stem = (model.config.preset if model is not None else "") or "model"
        web_ok = True
        try:
            if model is not None:
                check_web(model)
        except UserError:
            web_ok = False
        filters = [text for text, (fmt, _) in MODEL_FILTERS.items() if fmt != "web" or web_ok]
        path, chosen = QFileDialog.getSaveFileName(self.window, "Export the model", str(Path(folder) / f"{stem}.onnx"),
                                                   ";;".join(filters), filters[0])
        if path:
            self.export_model(*model_export_choice(path, chosen))

    def export_model(self, path: str, fmt: str, part: str) -> None:
        """Trace and write the model off the GUI thread (an ONNX export takes seconds);
        what cannot work (no model, a conv model as a web page, onnx not installed, a file
        that cannot be written) is said at once, before the task starts. The web page's
        dots are the plane's test codes."""
        from explorer.export import DEFAULT_PART
        from explorer.export import export_model as write_model
        from explorer.export.common import check_exportable, check_targets, targets
        from explorer.export.web import MAX_POINTS, check_web
        from explorer.runtime.threads import ModelCopy

        window, session = self.window, self.window.session
        model = session.view_model
        what = {"both": "encoder and decoder", "encoder": "encoder", "decoder": "decoder"}.get(part, part)
        title = "Cannot export the model"
        if model is None:
            window.dialogs.message(Icon.Information, title, "Train or open a model first.")
            return
        try:
            check_exportable(model)
            if fmt == "web":
                check_web(model)
                if part != "decoder":
                    raise UserError("the web page runs the decoder only")
            elif fmt == "onnx":
                from explorer.export.onnx import require_packages

                require_packages()
            suffix = ".htm" if fmt == "web" and path.lower().endswith(".htm") else MODEL_SUFFIXES[fmt]
            check_targets(targets(path, part or DEFAULT_PART[fmt], suffix))
        except (UserError, KeyError) as exc:
            window.dialogs.message(Icon.Information, title, str(exc))
            return
        stats = window.latent.stats
        codes = stats.codes[:MAX_POINTS].copy() if fmt == "web" and stats is not None else None
        labels = stats.labels[:MAX_POINTS].copy() if codes is not None and stats.labels is not None else None
        data = session.data
        names = tuple(data.class_names) if data is not None and data.class_names else tuple(window.latent.class_names)
        copy = ModelCopy.of(model)

        def work(_) -> list[str]:
            written = write_model(copy.build(), fmt, part, path, codes=codes, labels=labels, class_names=names)
            return [str(p) for p in written]

        def done(written: list[str]) -> None:
            window.statusBar().showMessage(f"Exported the {what} to {', '.join(one_line(p) for p in written)}")

        def failed(message: str) -> None:
            window.statusBar().showMessage(f"Could not export the model to {one_line(path)}", 10_000)
            window.dialogs.message(Icon.Warning, "Could not export the model", message)

        label = f"Exporting the {what} ({MODEL_FORMAT_NAMES[fmt]})"
        window.statusBar().showMessage(f"{label} to {one_line(path)}...")
        session.tasks.submit("model-export", work, label=label, model_bound=False, on_done=done, on_failed=failed)


# File > Export > Model...: each filter is a format and a part (a file dialog has no other
# place to ask for the part). Both parts go beside the chosen name (NAME.encoder.onnx, ...).
MODEL_FILTERS: dict[str, tuple[str, str]] = {
    "ONNX, encoder and decoder (*.onnx)": ("onnx", "both"),
    "ONNX, decoder (*.onnx)": ("onnx", "decoder"),
    "ONNX, encoder (*.onnx)": ("onnx", "encoder"),
    "PyTorch program, encoder and decoder (*.pt2)": ("pt2", "both"),
    "PyTorch program, decoder (*.pt2)": ("pt2", "decoder"),
    "PyTorch program, encoder (*.pt2)": ("pt2", "encoder"),
    "Web page, decoder (*.html)": ("web", "decoder"),
}
MODEL_SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "web": ".html"}
MODEL_FORMAT_NAMES = {"onnx": "ONNX", "pt2": "PyTorch program", "web": "web page"}


def model_export_choice(path: str, chosen_filter: str) -> tuple[str, str, str]:
    """(path, format, part) from the dialog's answer. A name without a known suffix gets
    the filter's; a name with one keeps its format (the part from the filter where that
    format has it, else the format's default)."""
    from explorer.export import DEFAULT_PART, format_for_suffix

    fmt, part = MODEL_FILTERS.get(chosen_filter, ("onnx", "both"))
    named = format_for_suffix(path)
    if named is None:
        return path + MODEL_SUFFIXES[fmt], fmt, part
    if named != fmt:
        return path, named, DEFAULT_PART[named]
    return path, fmt, part
