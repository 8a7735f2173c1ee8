"""The main window.

For now it shows what a checkpoint holds (its settings and loss history) and tells the
user how to train from the command line; the training panel, live curves and latent
views arrive with issues #3 and #4.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from explorer.errors import UserError

WELCOME = (
    "<h2>Latent Explorer</h2>"
    "<p>The training window is under construction.</p>"
    "<p>Train from a terminal meanwhile, for example:<br>"
    "<code>latent-explorer train --model vae --epochs 10 --out vae.safetensors</code></p>"
    "<p>Then open the checkpoint here (File &gt; Open, Ctrl+O) to see its settings and losses.</p>"
)


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Latent Explorer")
        self.resize(900, 600)
        self.info = QLabel(WELCOME)
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setCentralWidget(self.info)
        menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open checkpoint...", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._ask_open)
        menu.addAction(open_action)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)
        self.statusBar().showMessage("Ready")

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str) -> bool:
        from explorer.training.checkpoint import load_checkpoint

        try:
            ckpt = load_checkpoint(path)
        except UserError as exc:
            QMessageBox.warning(self, "Cannot open checkpoint", str(exc))
            return False
        cfg = ckpt.model_config
        rows = [("model", cfg.preset or "custom"), ("dataset", ckpt.data_config.dataset),
                ("latent size", str(cfg.latent_dim)), ("epochs trained", str(ckpt.history.last_epoch))]
        if ckpt.history.epochs:
            rows.append(("last test loss", f"{ckpt.history.epochs[-1]['test']['loss']:.2f}"))
        table = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
        self.info.setText(f"<h2>{path}</h2><table>{table}</table>")
        self.statusBar().showMessage(f"Opened {path}")
        return True
