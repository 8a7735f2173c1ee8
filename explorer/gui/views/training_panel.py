"""The training settings form: dataset, model and optimisation settings.

It turns its fields into the same frozen configs the CLI builds, so a run started here is
the run `latent-explorer train` would start with the same settings. While a run is going,
only the learning rate and beta stay editable; their changes go to the session live.

A folder or NumPy file chosen is probed in a thread (``explorer.data.probe``: image headers
and file counts): "Automatic" image size is then the folder's own (its first image's shorter
side, at most 512), written into the run's config as that number, and the form shows the
planned run length (``explorer.training.run_length``, the CLI's rule) before Start.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.config import BINARIZE_LABELS, MAX_MIN_STEPS, NOISE_LABELS, DataConfig, ModelConfig, TrainConfig, replace
from explorer.gui.state.settings import read_text
from explorer.presets import PRESETS, Preset

DATASETS = [("MNIST (bundled)", "mnist"), ("Fashion-MNIST (downloads once)", "fashion-mnist"),
            ("KMNIST (downloads once)", "kmnist"), ("CIFAR-10 (downloads once)", "cifar10")]
FOLDER_ITEM = "Image folder..."
ARRAY_FILE_ITEM = "NumPy file (.npz, .npy)..."
CHOSEN_PREFIXES = ("Folder: ", "File: ")  # the item that shows the folder or file chosen
DEFAULT_PRESET = "vae"
DEFAULT_LATENT = 2  # a 2-D latent makes the latent plane exact on first launch
# The "At least (steps)" field starts Off, as the CLI's --min-steps does: epochs are what
# was asked, and the plan line says how many steps that is before Start.
MIN_STEPS = 0
# What older versions' form started at (and saved with the settings): read back as Off.
OLD_DEFAULT_MIN_STEPS = 1000
SETTINGS_RUN_LENGTH = "panel/run_length"  # present in settings saved since the rule above
# The image size box's special value: "Automatic" (a folder's own size, a file's as it is).
AUTO_SIZE = 3
MAX_IMAGE_SIZE = 512
CHANNEL_ITEMS = (("Automatic", None), ("Grey (1)", 1), ("Colour (3)", 3))
PROBE_POLL_MS = 30
# Model plugins are discovered (their packages imported, their models checked) in a thread
# this long after the panel is first shown: never on the first paint's path.
PLUGIN_DELAY_MS = 300


# The window trains eagerly. A compiled step (the CLI's and the API's default for long MLP
# runs on the CPU) starts after about 1.6 s with inductor's cache warm but 4-8 s the first
# time on a machine (tens of seconds on a busy one), with nothing moving and the tracer
# holding the GIL against the GUI thread (the event loop's p99 reached 79 ms while it
# compiled on a busy machine): after a click on Start the curves must move at once.
WINDOW_COMPILE = "off"

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
        # Image size and channels, as the CLI's --image-size and --channels (folders and files only).
        self.image_size = QSpinBox(objectName="imageSize", minimum=AUTO_SIZE, maximum=MAX_IMAGE_SIZE)
        self.image_size.setSuffix(" px")
        self.image_size.setSpecialValueText("Automatic")
        self.image_size.setValue(AUTO_SIZE)
        self.image_channels = QComboBox(objectName="imageChannels")
        for label, value in CHANNEL_ITEMS:
            self.image_channels.addItem(label, value)
        self._probe: Any = None  # explorer.data.probe.DataProbe of the dataset chosen, once read
        self._probing: str | None = None  # the dataset a probe thread is reading
        self._probe_results: list[Any] = []
        self._probe_timer = QTimer(self, interval=PROBE_POLL_MS)
        self._probe_timer.timeout.connect(self._poll_probe)

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
        self.min_steps.setToolTip("Off (the default, as the CLI's): exactly the epochs set. A number: a dataset too "
                                  "small for that many steps in those epochs trains more epochs, as many as it takes "
                                  "(the CLI's --min-steps); the plan below says how many before Start")
        self.plan = QLabel(objectName="runPlan", wordWrap=True)
        self.plan.setToolTip("What Start trains: epochs, steps per epoch (training images / batch size) and steps "
                             "in all; `latent-explorer train` with the same settings trains the same")
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
        form.addRow("Image size", self.image_size)
        form.addRow("Channels", self.image_channels)
        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        form.addRow("Preset", self.preset)
        form.addRow("Latent size", self.latent)
        form.addRow("Reconstruction loss", self.recon_loss)
        form.addRow("Beta (KL weight)", self.beta)
        form.addRow("Input noise", self.noise)
        form.addRow("Noise level", self.noise_level)
        form.addRow("Sparsity weight", self.sparsity)
        # A model plugin's own settings, drawn from its schema when its preset is chosen.
        self.plugin_box = QGroupBox("Plugin settings", objectName="pluginSettings")
        self.plugin_form = QFormLayout(self.plugin_box)
        self.plugin_box.hide()
        self.plugin_fields: dict[str, QWidget] = {}
        self._plugins: dict[str, Any] = {}  # the working model plugins, by name (explorer.plugins.ModelPlugin)
        self._plugins_state = "none"  # "loading" in a thread, then "done"
        self._pending: ModelConfig | None = None  # a plugin model shown before its plugin was loaded
        train_box = QGroupBox("Training")
        form = QFormLayout(train_box)
        form.addRow("Epochs", self.epochs)
        form.addRow("At least (steps)", self.min_steps)
        form.addRow("Planned", self.plan)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Learning rate", self.lr)
        form.addRow("Seed", self.seed)
        form.addRow("Device", self.device)

        layout = QVBoxLayout(self)
        for box in (data_box, model_box, self.plugin_box, train_box):
            layout.addWidget(box)
        layout.addStretch(1)

        self.preset.setCurrentIndex(self.preset.findData(DEFAULT_PRESET))
        self.apply_preset(DEFAULT_PRESET)
        self.latent.setValue(DEFAULT_LATENT)
        self._running = False
        for spin in (self.epochs, self.batch_size, self.min_steps, self.limit):
            spin.valueChanged.connect(self._show_plan)
        self.classes.textChanged.connect(self._show_plan)
        self.device.currentIndexChanged.connect(self._show_plan)
        self.dataset.currentIndexChanged.connect(self._on_dataset_changed)
        self._on_dataset_changed()

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
        self._on_dataset_changed()

    # -- the dataset's own size and count, read in a thread --------------------------------

    def _on_dataset_changed(self) -> None:
        """A dataset was chosen: built-in sets are known at once; a folder or a file is
        probed in a thread (its first images' headers, its files counted)."""
        from explorer.data.probe import BUILTIN_SHAPES, DataProbe, probe_dataset

        key = self.dataset.currentData() or ""
        if key in BUILTIN_SHAPES:
            self._probe = probe_dataset(DataConfig(dataset=key))
        elif key and (self._probe is None or self._probe.dataset != key):
            self._probe = DataProbe(key, note="reading")
            self._start_probe(key)
        self._show_image_form()
        self._show_plan()
        self._sync_enabled()

    def _start_probe(self, key: str) -> None:
        if self._probing is not None:
            return  # the one in flight is polled; a newer choice is probed after it
        self._probing = key
        results = self._probe_results

        def work() -> None:
            from explorer.data.probe import DataProbe, probe_dataset
            from explorer.runtime.threads import lower_this_thread_priority

            lower_this_thread_priority()
            try:
                results.append(probe_dataset(DataConfig(dataset=key)))
            except BaseException as exc:  # noqa: BLE001 - the poll must always get an answer
                results.append(DataProbe(key, note=type(exc).__name__))

        threading.Thread(target=work, name="latent-explorer-probe", daemon=True).start()
        self._probe_timer.start()

    def _poll_probe(self) -> None:
        if not self._probe_results:
            return
        found = self._probe_results.pop()
        self._probe_timer.stop()  # stopped, never deleted from its own timeout (see load_plugins)
        self._probing = None
        key = self.dataset.currentData() or ""
        if found.dataset == key:
            self._probe = found
            self._show_image_form()
            self._show_plan()
        elif key and not self._is_builtin(key) and (self._probe is None or self._probe.dataset != key
                                                    or self._probe.note == "reading"):
            self._start_probe(key)  # another folder was chosen while this one was read

    def probe_done(self) -> bool:
        """Whether the dataset chosen has been read (tests wait on this)."""
        key = self.dataset.currentData() or ""
        return self._probe is not None and self._probe.dataset == key and self._probe.note != "reading"

    @staticmethod
    def _is_builtin(key: str) -> bool:
        from explorer.data.probe import BUILTIN_SHAPES

        return key in BUILTIN_SHAPES

    def _current_probe(self) -> Any:
        key = self.dataset.currentData() or ""
        probe = self._probe
        return probe if probe is not None and probe.dataset == key and probe.note != "reading" else None

    def _show_image_form(self) -> None:
        """What "Automatic" means for the dataset chosen, in the boxes themselves."""
        key = self.dataset.currentData() or ""
        probe = self._current_probe()
        channel_words = {1: "grey", 3: "colour"}
        if self._is_builtin(key) and probe is not None:
            size_text = f"Automatic ({probe.size} px, the set's own)"
            channels_text = f"Automatic ({channel_words[probe.channels]})"
            tip = (f"Built-in datasets keep their own size and channels ({probe.size} x {probe.size}, "
                   f"{channel_words[probe.channels]}); image size and channels apply to folders and NumPy files")
            self.image_size.setToolTip(tip)
            self.image_channels.setToolTip(tip)
        else:
            from explorer.data.arrays import is_array_file

            if probe is None:
                size_text, channels_text = "Automatic (reading...)", "Automatic"
            elif is_array_file(key):
                shape = f"{probe.height_width[0]} x {probe.height_width[1]}" if probe.height_width else "as they are"
                size_text = f"Automatic ({shape}, as stored)"
                channels_text = f"Automatic ({channel_words.get(probe.channels, 'as stored')})"
            elif probe.size is not None:
                size_text = f"Automatic ({probe.size} px, the folder's own)"
                channels_text = f"Automatic ({channel_words[probe.channels]})"
            else:
                from explorer.data.folder import DEFAULT_IMAGE_SIZE

                size_text, channels_text = f"Automatic ({DEFAULT_IMAGE_SIZE} px)", "Automatic"
            self.image_size.setToolTip(
                "Images are resized to this many pixels a side (the CLI's --image-size). Automatic: a folder's own "
                f"size (its first image's shorter side, at most {MAX_IMAGE_SIZE}), a NumPy file's as stored")
            self.image_channels.setToolTip(
                "Grey or colour (the CLI's --channels). Automatic: grey only if every image is grey")
        self.image_size.setSpecialValueText(size_text)
        self.image_channels.setItemText(0, channels_text)
        self.image_size.update()

    def image_form(self) -> tuple[int | None, int | None]:
        """(size, channels) the run gets: a folder's Automatic size as the folder's own
        number (None leaves a NumPy file as stored, and a built-in set as it is)."""
        key = self.dataset.currentData() or "mnist"
        if self._is_builtin(key):
            return None, None
        size = self.image_size.value()
        channels = self.image_channels.currentData()
        from explorer.data.arrays import is_array_file

        if size != AUTO_SIZE:
            return size, channels
        if is_array_file(key):
            return None, channels
        probe = self._current_probe()
        if probe is not None and probe.size is not None:
            return probe.size, channels
        # Not read yet (Start pressed at once): one header, looked up now, not the loader's default.
        from explorer.data.folder import DEFAULT_IMAGE_SIZE
        from explorer.data.probe import folder_image_size

        try:
            return folder_image_size(key) or DEFAULT_IMAGE_SIZE, channels
        except Exception:  # noqa: BLE001 - an unreadable folder: loading it says why
            return DEFAULT_IMAGE_SIZE, channels

    def planned_run(self) -> Any:
        """The plan (explorer.training.run_length.RunPlan) of a run started now, or None
        while the number of training images is not known."""
        from explorer.errors import ConfigError
        from explorer.training.run_length import plan_run

        probe = self._current_probe()
        if probe is None:
            return None
        try:
            classes = self.class_filter()
        except ConfigError:
            return None
        n = probe.train_size(self.limit.value() or None, classes)
        if not n:
            return None
        batch = min(self.batch_size.value(), n)
        return plan_run(n, batch, self.epochs.value(), self.min_steps.value(),
                        drop_last=self._compiles(self.epochs.value() * -(-n // batch)))

    def _compiles(self, planned_steps: int) -> bool:
        """Whether the engine will compile the step (then it drops each epoch's short last
        batch): the engine's own rule, from the device, the model's family and the run's length."""
        from explorer.errors import ConfigError
        from explorer.training.device import resolve_device, use_compile

        try:
            model, _, _ = self._configs(resolve=False)
            return use_compile(WINDOW_COMPILE, resolve_device(self.device.currentData() or "auto"),
                               model.family, planned_steps)
        except ConfigError:
            return False

    def _show_plan(self) -> None:
        from explorer.display import plural
        from explorer.training.run_length import describe_plan

        plan = self.planned_run()
        if plan is not None:
            self.plan.setText(f"{plural(plan.train_size, 'training image')}: {describe_plan(plan)}")
            return
        epochs = plural(self.epochs.value(), "epoch")
        floor = self.min_steps.value()
        more = f", or more to reach {floor:,} steps on small data" if floor else ""
        probe = self._probe if self._probe is not None and self._probe.dataset == self.dataset.currentData() else None
        why = "counting the images..." if probe is not None and probe.note == "reading" else \
            "steps known once the images are counted"
        self.plan.setText(f"{epochs}{more} ({why})")

    # -- presets and state ----------------------------------------------------------------

    def _on_preset_changed(self) -> None:
        name = self.preset.currentData()
        if name:
            self._pending = None  # the user's choice wins over a plugin model still being loaded
            self.apply_preset(name)
            self.preset_changed.emit(name)

    def _preset(self, name: str | None) -> Preset:
        """A built-in preset or a loaded plugin's (never discovers: that is load_plugins')."""
        if name in self._plugins:
            return self._plugins[name].preset()
        return PRESETS.get(name or DEFAULT_PRESET, PRESETS[DEFAULT_PRESET])

    def apply_preset(self, name: str) -> None:
        """Reset the model and training fields to the preset's defaults."""
        preset = self._preset(name)
        self._show_model_config(preset.model)
        self.epochs.setValue(preset.epochs)
        self.batch_size.setValue(preset.batch_size)
        self.lr.setValue(preset.lr)

    def _show_model_config(self, cfg: ModelConfig) -> None:
        if cfg.plugin and cfg.plugin not in self._plugins:
            # A plugin's model (an opened file, the last session's form) before its plugin is
            # loaded: shown once it is (load_plugins), unless the user picks a preset first.
            # An opened file has loaded it already; the last session's form waits for the
            # discovery after the first paint.
            from explorer import plugins

            self._pending = cfg
            if plugins.loaded():
                self.load_plugins()
            else:
                QTimer.singleShot(PLUGIN_DELAY_MS, self, self.load_plugins)
            return
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(max(0, self.preset.findData(cfg.preset)))
        self.preset.blockSignals(False)
        self.latent.setValue(cfg.latent_dim)
        self.recon_loss.setCurrentIndex(self.recon_loss.findData(cfg.recon_loss))
        self.beta.setValue(cfg.beta)
        self.noise.setCurrentIndex(self.noise.findData(cfg.noise))
        self.noise_level.setValue(cfg.noise_level)
        self.sparsity.setValue(cfg.sparsity_weight)
        self._show_plugin_fields(self._plugins.get(cfg.plugin) if cfg.plugin else None, cfg.params)
        self._sync_enabled()

    def show_configs(self, model: ModelConfig, data: DataConfig, train: TrainConfig, resolved: bool = True) -> None:
        """Fill the form from an opened checkpoint, so Start trains what it was trained as:
        its image size and channels too (a folder's as the numbers its model has, since its
        Automatic may now mean another size). ``resolved`` False: a form saved as it was
        (the settings), whose Automatic stays Automatic."""
        self._show_model_config(model)
        self.set_dataset(data.dataset)
        self.limit.setValue(data.limit or 0)
        self.classes.setText(",".join(str(k) for k in data.classes) if data.classes else "")
        self.binarize.setCurrentIndex(max(0, self.binarize.findData(data.binarize)))
        size, channels = data.image_size, data.channels
        from explorer.data.arrays import is_array_file

        if resolved and not self._is_builtin(data.dataset) and not is_array_file(data.dataset):
            c, h, w = model.image_shape
            size, channels = size or (h if h == w and 4 <= h <= MAX_IMAGE_SIZE else None), channels or c
        self.image_size.setValue(size or AUTO_SIZE)
        self.image_channels.setCurrentIndex(0 if channels is None else max(0, self.image_channels.findData(channels)))
        self.epochs.setValue(train.epochs)
        self.min_steps.setValue(train.min_steps)  # the run's own rule: 0 is epochs as asked, here as in the CLI
        self.batch_size.setValue(train.batch_size)
        self.lr.setValue(train.lr)
        self.seed.setValue(train.seed)
        index = self.device.findData(train.device)
        self.device.setCurrentIndex(index if index >= 0 else 0)

    def configs(self) -> tuple[ModelConfig, DataConfig, TrainConfig]:
        """The form as configs; raises ConfigError with a readable message."""
        return self._configs(resolve=True)

    def _configs(self, resolve: bool) -> tuple[ModelConfig, DataConfig, TrainConfig]:
        """The form as configs: with ``resolve`` the run's (Automatic as the number it
        means), else as the form holds them (Automatic kept as None, for the settings)."""
        base = self._preset(self.preset.currentData()).model
        model = replace(base, latent_dim=self.latent.value(), recon_loss=self.recon_loss.currentData(),
                        beta=float(self.beta.value()), noise=self.noise.currentData(),
                        noise_level=float(self.noise_level.value()), sparsity_weight=float(self.sparsity.value()))
        if base.plugin:
            from explorer.config import canonical_params

            values = self._plugins[base.plugin].check_params(self.plugin_values())
            model = replace(model, plugin_params=canonical_params(values))
        if resolve:
            size, channels = self.image_form()
        else:
            size, channels = self.image_size.value(), self.image_channels.currentData()
            size = None if size == AUTO_SIZE else size
        data = DataConfig(dataset=self.dataset.currentData() or "mnist", limit=self.limit.value() or None,
                          classes=self.class_filter(), binarize=self.binarize.currentData(),
                          image_size=size, channels=channels)
        train = TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(),
                            lr=float(self.lr.value()), seed=self.seed.value(), device=self.device.currentData(),
                            min_steps=self.min_steps.value(), compile=WINDOW_COMPILE)
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
        variational = self._preset(self.preset.currentData()).model.variational
        for widget in (self.dataset, self.limit, self.binarize, self.classes, self.preset, self.latent,
                       self.recon_loss, self.noise, self.noise_level, self.sparsity, self.epochs, self.min_steps,
                       self.batch_size, self.device, self.seed):
            widget.setEnabled(not running)
        own_images = not self._is_builtin(self.dataset.currentData() or "mnist")  # folders and files
        self.image_size.setEnabled(not running and own_images)
        self.image_channels.setEnabled(not running and own_images)
        for widget in self.plugin_fields.values():
            widget.setEnabled(not running)
        self.noise_level.setEnabled(not running and self.noise.currentData() != "none")
        self.beta.setEnabled(variational)  # live-editable while training
        self.lr.setEnabled(True)

    # -- persistence -----------------------------------------------------------------------

    def save_settings(self, settings: QSettings) -> None:
        model, data, train = self._configs(resolve=False)  # Automatic kept as Automatic
        model = self._pending or model  # a plugin model whose plugin has not loaded yet is kept
        settings.setValue("panel/model", model.to_json())
        settings.setValue("panel/data", data.to_json())
        settings.setValue("panel/train", train.to_json())
        settings.setValue(SETTINGS_RUN_LENGTH, 2)

    def restore_settings(self, settings: QSettings) -> None:
        from explorer.errors import ConfigError

        try:
            model = ModelConfig.from_json(read_text(settings, "panel/model"))
            data = DataConfig.from_json(read_text(settings, "panel/data"))
            train = TrainConfig.from_json(read_text(settings, "panel/train"))
        except (ConfigError, RecursionError):
            return  # first launch, settings from another version, or junk: keep the defaults
        if model.preset not in PRESETS and not model.plugin:
            return
        self.show_configs(model, data, train, resolved=False)
        if not settings.contains(SETTINGS_RUN_LENGTH) and train.min_steps == OLD_DEFAULT_MIN_STEPS:
            self.min_steps.setValue(MIN_STEPS)  # older versions' default, never chosen: the rule is Off now

    # -- model plugins -----------------------------------------------------------------------

    def load_plugins(self) -> None:
        """Add the installed model plugins to the preset list: at once when discovery has
        run (opening a plugin's checkpoint runs it), else from a background thread (each
        plugin's package is imported and its model checked), polled from here."""
        if self._plugins_state != "none":
            return
        from explorer import plugins

        if plugins.loaded():
            self._plugins_state = "done"
            self._add_plugins(plugins.discover())
            return
        self._plugins_state = "loading"
        found: list[Any] = []

        def work() -> None:
            from explorer.runtime.heap import lazy_import
            from explorer.runtime.threads import lower_this_thread_priority

            lower_this_thread_priority()
            try:
                with lazy_import():  # the plugins' modules, and what building their models imports
                    found.append(plugins.discover())
            except Exception:  # noqa: BLE001 - discovery lists broken plugins itself; this is a last guard
                found.append(())

        threading.Thread(target=work, name="latent-explorer-plugins", daemon=True).start()

        def poll() -> None:
            if found:
                # Stopped, never deleted from its own timeout: deleteLater there crashed Qt
                # now and then in the next event delivery.
                self._plugin_timer.stop()
                self._plugins_state = "done"
                self._add_plugins(found[0])

        self._plugin_timer = QTimer(self, interval=50)
        self._plugin_timer.timeout.connect(poll)
        self._plugin_timer.start()

    def plugins_loaded(self) -> bool:
        return self._plugins_state == "done"

    def _add_plugins(self, infos: Any) -> None:
        """One preset item per plugin: a working one selectable, a broken one greyed out with
        why in its tooltip."""
        for info in infos:
            if self.preset.findData(info.name) >= 0 or info.name in PRESETS:
                continue
            self.preset.addItem(info.name if info.ok else f"{info.name} (broken)", info.name)
            index = self.preset.count() - 1
            if info.ok:
                self._plugins[info.name] = info.plugin
                tip = f"{info.plugin.description} (model plugin from {info.source})"
            else:
                tip = f"Model plugin from {info.source}, broken: {info.error}"
                item = self.preset.model().item(index)
                if item is not None:
                    item.setEnabled(False)
            self.preset.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        pending, self._pending = self._pending, None
        if pending is not None and pending.plugin in self._plugins:
            self._show_model_config(pending)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._plugins_state == "none":
            QTimer.singleShot(PLUGIN_DELAY_MS, self, self.load_plugins)

    def _show_plugin_fields(self, plugin: Any, values: dict[str, Any]) -> None:
        """The plugin's schema as form fields (none for a built-in preset)."""
        while self.plugin_form.rowCount():
            self.plugin_form.removeRow(0)
        self.plugin_fields = {}
        if plugin is None or not plugin.schema:
            self.plugin_box.hide()
            return
        self.plugin_box.setTitle(f"{plugin.name} settings")
        for field in plugin.schema:
            widget = _field_widget(field, values.get(field.name, field.default))
            self.plugin_fields[field.name] = widget
            self.plugin_form.addRow(field.title, widget)
        self.plugin_box.show()

    def plugin_values(self) -> dict[str, Any]:
        """The plugin settings as the form has them."""
        values: dict[str, Any] = {}
        for name, widget in self.plugin_fields.items():
            if isinstance(widget, QCheckBox):
                values[name] = widget.isChecked()
            elif isinstance(widget, QComboBox):
                values[name] = widget.currentData()
            elif isinstance(widget, QSpinBox):
                values[name] = int(widget.value())
            elif isinstance(widget, QDoubleSpinBox):
                values[name] = float(widget.value())
        return values


def _field_widget(field: Any, value: Any) -> QWidget:
    """A form widget for one plugin setting (explorer.plugins.Field), showing ``value``."""
    name = f"plugin_{field.name}"
    widget: QWidget
    if field.type == "bool":
        widget = QCheckBox(objectName=name)
        widget.setChecked(bool(value))
    elif field.type == "choice":
        widget = QComboBox(objectName=name)
        for choice in field.choices:
            widget.addItem(choice, choice)
        widget.setCurrentIndex(max(0, widget.findData(value)))
    elif field.type == "int":
        lo = int(field.min) if field.min is not None else -(2**31)
        hi = int(field.max) if field.max is not None else 2**31 - 1
        widget = QSpinBox(objectName=name, minimum=max(lo, -(2**31)), maximum=min(hi, 2**31 - 1))
        widget.setValue(int(value))
    else:
        lo = float(field.min) if field.min is not None else -1e9
        hi = float(field.max) if field.max is not None else 1e9
        widget = QDoubleSpinBox(objectName=name, minimum=lo, maximum=hi, decimals=4)
        widget.setSingleStep(_step(lo, hi, float(value)))
        widget.setValue(float(value))
    if field.help:
        widget.setToolTip(field.help)
    return widget


def _step(lo: float, hi: float, value: float) -> float:
    """A spin box step of about a tenth of the value (or of the range), rounded to 1, 2 or 5."""
    import math

    scale = abs(value) or min(abs(hi - lo), 1.0) or 1.0
    power = 10 ** math.floor(math.log10(scale / 10))
    return next(s * power for s in (1, 2, 5, 10) if s * power >= scale / 10)
