"""The training settings form: dataset, model and optimisation settings.

It turns its fields into the same frozen configs the CLI builds, so a run started here is
the run `latent-explorer train` would start with the same settings. While a run is going,
only the learning rate and beta stay editable; their changes go to the session live.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.config import BINARIZE_LABELS, MAX_MIN_STEPS, NOISE_LABELS, DataConfig, ModelConfig, TrainConfig, replace
from explorer.gui.state.settings import read_text
from explorer.presets import PRESETS, get_preset

DATASETS = [("MNIST (bundled)", "mnist"), ("Fashion-MNIST (downloads once)", "fashion-mnist"),
            ("KMNIST (downloads once)", "kmnist"), ("CIFAR-10 (downloads once)", "cifar10")]
FOLDER_ITEM = "Image folder..."
ARRAY_FILE_ITEM = "NumPy file (.npz, .npy)..."
CHOSEN_PREFIXES = ("Folder: ", "File: ")  # the item that shows the folder or file chosen
DEFAULT_PRESET = "vae"
DEFAULT_LATENT = 2  # a 2-D latent makes the latent plane exact on first launch
# A floor on the steps of a run started here: ten epochs of a 400-image folder are 40 steps,
# which leave grey blobs, so small data trains more epochs (the engine says how many).
# The CLI keeps 0: there epochs mean epochs. The form's "At least (steps)" field starts here.
MIN_STEPS = 1000


class TrainingPanel(QWidget):
    preset_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._folder: str | None = None

        self.dataset = QComboBox(objectName="dataset")
        for label, key in DATASETS:
            self.dataset.addItem(label, key)
        self.dataset.addItem(FOLDER_ITEM, "")
        self.dataset.addItem(ARRAY_FILE_ITEM, "")
        self.dataset.setToolTip("MNIST ships with the app; the others download on first use. "
                                "A folder of images: class sub-folders give labels. A NumPy file: an images "
                                "array (N x H x W, N x C x H x W or N x H x W x C), optional labels and class_names.")
        self.dataset.activated.connect(self._on_dataset_activated)
        self.limit = QSpinBox(objectName="limit", minimum=0, maximum=10_000_000, singleStep=1000)
        self.limit.setSpecialValueText("All")
        self.limit.setToolTip("Train and test on only the first N images of each split (quick runs); All uses all")
        self.classes = QLineEdit(objectName="classes")
        self.classes.setPlaceholderText("All")
        self.classes.setToolTip("Train on these classes only, e.g. 1 or 0,1 (the 'normal' classes for "
                                "anomaly detection); empty trains on all")
        self.binarize = QComboBox(objectName="binarize")
        for key, label in BINARIZE_LABELS.items():
            self.binarize.addItem(label, key)
        self.binarize.setToolTip(
            "Make every pixel black or white, drawn with its grey level as the probability, so the "
            "binary cross-entropy is a true likelihood. Dynamic draws the training images afresh every "
            "batch; static draws them once. Either way the test split is binarised once with a fixed "
            "seed, so every model is tested on the same images.")

        self.preset = QComboBox(objectName="preset")
        for name, preset in PRESETS.items():
            self.preset.addItem(name, name)
            self.preset.setItemData(self.preset.count() - 1, preset.description, 3)  # ToolTipRole
        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        self.latent = QSpinBox(objectName="latent", minimum=1, maximum=4096)
        self.latent.setToolTip("Size of the code; 2 makes the latent plane exact")
        self.recon_loss = QComboBox(objectName="reconLoss")
        self.recon_loss.addItem("Binary cross-entropy", "bce")
        self.recon_loss.addItem("Squared error", "mse")
        self.beta = QDoubleSpinBox(objectName="beta", minimum=0.0, maximum=1000.0, singleStep=0.5, decimals=2)
        self.beta.setToolTip("Weight of the KL term (VAE family); can change during training")
        self.noise = QComboBox(objectName="noise")
        for key, label in NOISE_LABELS.items():
            self.noise.addItem(label, key)
        self.noise_level = QDoubleSpinBox(objectName="noiseLevel", minimum=0.0, maximum=1.0, singleStep=0.05,
                                          decimals=2)
        self.noise_level.setToolTip("Gaussian: noise strength; salt and pepper, masking: fraction of pixels")
        self.noise.currentIndexChanged.connect(self._sync_enabled)
        self.sparsity = QDoubleSpinBox(objectName="sparsity", minimum=0.0, maximum=100.0, singleStep=0.001,
                                       decimals=4)
        self.sparsity.setToolTip("L1 penalty on the code's activity (sparse autoencoder)")

        self.epochs = QSpinBox(objectName="epochs", minimum=1, maximum=100000)
        self.batch_size = QSpinBox(objectName="batchSize", minimum=1, maximum=65536, singleStep=32)
        self.min_steps = QSpinBox(objectName="minSteps", minimum=0, maximum=MAX_MIN_STEPS, singleStep=500)
        self.min_steps.setSpecialValueText("Off")
        self.min_steps.setValue(MIN_STEPS)
        self.min_steps.setToolTip("Small datasets train more epochs until the model has taken at least this many "
                                  "steps (a few dozen steps teach it nothing); Off trains exactly the epochs set")
        self.lr = pg.SpinBox(value=1e-3, bounds=(1e-7, 1.0), dec=True, minStep=1e-7, step=0.5, decimals=3,
                             int=False)
        self.lr.setObjectName("lr")
        self.lr.setMinimumHeight(self.epochs.sizeHint().height())
        self.lr.setToolTip("Learning rate (Adam); can change during training")
        self.device = QComboBox(objectName="device")
        self._fill_devices()
        self.seed = QSpinBox(objectName="seed", minimum=0, maximum=2**31 - 1)

        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        form.addRow("Dataset", self.dataset)
        form.addRow("Images per split", self.limit)
        form.addRow("Binarize", self.binarize)
        form.addRow("Classes", self.classes)
        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        form.addRow("Preset", self.preset)
        form.addRow("Latent size", self.latent)
        form.addRow("Reconstruction loss", self.recon_loss)
        form.addRow("Beta (KL weight)", self.beta)
        form.addRow("Input noise", self.noise)
        form.addRow("Noise level", self.noise_level)
        form.addRow("Sparsity weight", self.sparsity)
        train_box = QGroupBox("Training")
        form = QFormLayout(train_box)
        form.addRow("Epochs", self.epochs)
        form.addRow("At least (steps)", self.min_steps)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Learning rate", self.lr)
        form.addRow("Seed", self.seed)
        form.addRow("Device", self.device)

        layout = QVBoxLayout(self)
        for box in (data_box, model_box, train_box):
            layout.addWidget(box)
        layout.addStretch(1)

        self.preset.setCurrentIndex(self.preset.findData(DEFAULT_PRESET))
        self.apply_preset(DEFAULT_PRESET)
        self.latent.setValue(DEFAULT_LATENT)
        self._running = False

    # -- devices and datasets -----------------------------------------------------------

    def _fill_devices(self) -> None:
        import torch

        self.device.addItem("Automatic (best available)", "auto")
        self.device.addItem("CPU", "cpu")
        if torch.cuda.is_available():
            self.device.addItem(f"CUDA GPU ({torch.cuda.get_device_name(0)})", "cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            self.device.addItem("Apple GPU (MPS)", "mps")

    def _on_dataset_activated(self, index: int) -> None:
        text = self.dataset.itemText(index)
        if text == FOLDER_ITEM:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder of images")
        elif text == ARRAY_FILE_ITEM:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a NumPy file of images", "",
                                                    "NumPy arrays (*.npz *.npy)")
        else:
            return
        if chosen:
            self.set_dataset(chosen)
        else:
            self.set_dataset(self._folder or "mnist")

    def set_dataset(self, key: str) -> None:
        """Select a built-in dataset by key, or a folder or NumPy file by path."""
        index = self.dataset.findData(key)
        if index < 0:
            self._folder = key
            from explorer.data.arrays import is_array_file

            prefix = "File: " if is_array_file(key) else "Folder: "
            label = f"{prefix}{Path(key).name or key}"
            existing = [i for i in range(self.dataset.count()) if self.dataset.itemText(i).startswith(CHOSEN_PREFIXES)]
            if existing:
                self.dataset.setItemText(existing[0], label)
                self.dataset.setItemData(existing[0], key)
                index = existing[0]
            else:
                self.dataset.insertItem(self.dataset.findText(FOLDER_ITEM), label, key)
                index = self.dataset.findText(FOLDER_ITEM) - 1
            self.dataset.setItemData(index, key, 3)
        self.dataset.setCurrentIndex(index)

    # -- presets and state ----------------------------------------------------------------

    def _on_preset_changed(self) -> None:
        name = self.preset.currentData()
        if name:
            self.apply_preset(name)
            self.preset_changed.emit(name)

    def apply_preset(self, name: str) -> None:
        """Reset the model and training fields to the preset's defaults."""
        preset = get_preset(name)
        self._show_model_config(preset.model)
        self.epochs.setValue(preset.epochs)
        self.batch_size.setValue(preset.batch_size)
        self.lr.setValue(preset.lr)

    def _show_model_config(self, cfg: ModelConfig) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(max(0, self.preset.findData(cfg.preset)))
        self.preset.blockSignals(False)
        self.latent.setValue(cfg.latent_dim)
        self.recon_loss.setCurrentIndex(self.recon_loss.findData(cfg.recon_loss))
        self.beta.setValue(cfg.beta)
        self.noise.setCurrentIndex(self.noise.findData(cfg.noise))
        self.noise_level.setValue(cfg.noise_level)
        self.sparsity.setValue(cfg.sparsity_weight)
        self._sync_enabled()

    def show_configs(self, model: ModelConfig, data: DataConfig, train: TrainConfig) -> None:
        """Fill the form from an opened checkpoint."""
        self._show_model_config(model)
        self.set_dataset(data.dataset)
        self.limit.setValue(data.limit or 0)
        self.classes.setText(",".join(str(k) for k in data.classes) if data.classes else "")
        self.binarize.setCurrentIndex(max(0, self.binarize.findData(data.binarize)))
        self.epochs.setValue(train.epochs)
        if train.min_steps:  # a CLI run's 0 means "epochs as given there", not "no floor here"
            self.min_steps.setValue(train.min_steps)
        self.batch_size.setValue(train.batch_size)
        self.lr.setValue(train.lr)
        self.seed.setValue(train.seed)
        index = self.device.findData(train.device)
        self.device.setCurrentIndex(index if index >= 0 else 0)

    def configs(self) -> tuple[ModelConfig, DataConfig, TrainConfig]:
        """The form as configs; raises ConfigError with a readable message."""
        base = get_preset(self.preset.currentData()).model
        model = replace(base, latent_dim=self.latent.value(), recon_loss=self.recon_loss.currentData(),
                        beta=float(self.beta.value()), noise=self.noise.currentData(),
                        noise_level=float(self.noise_level.value()), sparsity_weight=float(self.sparsity.value()))
        data = DataConfig(dataset=self.dataset.currentData() or "mnist", limit=self.limit.value() or None,
                          classes=self.class_filter(), binarize=self.binarize.currentData())
        train = TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(),
                            lr=float(self.lr.value()), seed=self.seed.value(), device=self.device.currentData(),
                            min_steps=self.min_steps.value())
        return model, data, train

    def class_filter(self) -> tuple[int, ...] | None:
        """The classes typed in the Classes field, or None for all; raises ConfigError."""
        from explorer.config import parse_classes
        from explorer.errors import ConfigError

        text = self.classes.text().strip()
        if not text:
            return None
        try:
            return parse_classes(text)
        except ConfigError as exc:
            raise ConfigError(f"Classes: {exc}") from None

    def set_running(self, running: bool) -> None:
        self._running = running
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        running = getattr(self, "_running", False)
        variational = get_preset(self.preset.currentData() or DEFAULT_PRESET).model.variational
        for widget in (self.dataset, self.limit, self.binarize, self.classes, self.preset, self.latent,
                       self.recon_loss, self.noise, self.noise_level, self.sparsity, self.epochs, self.min_steps,
                       self.batch_size, self.device, self.seed):
            widget.setEnabled(not running)
        self.noise_level.setEnabled(not running and self.noise.currentData() != "none")
        self.beta.setEnabled(variational)  # live-editable while training
        self.lr.setEnabled(True)

    # -- persistence -----------------------------------------------------------------------

    def save_settings(self, settings: QSettings) -> None:
        model, data, train = self.configs()
        settings.setValue("panel/model", model.to_json())
        settings.setValue("panel/data", data.to_json())
        settings.setValue("panel/train", train.to_json())

    def restore_settings(self, settings: QSettings) -> None:
        from explorer.errors import ConfigError

        try:
            model = ModelConfig.from_json(read_text(settings, "panel/model"))
            data = DataConfig.from_json(read_text(settings, "panel/data"))
            train = TrainConfig.from_json(read_text(settings, "panel/train"))
        except (ConfigError, RecursionError):
            return  # first launch, settings from another version, or junk: keep the defaults
        if model.preset not in PRESETS:
            return
        self.show_configs(model, data, train)
        if '"min_steps"' in read_text(settings, "panel/train"):  # settings older than the field keep the default
            self.min_steps.setValue(train.min_steps)  # including Off, which the user chose here
