"""Datasets as uint8 tensors in memory: bundled MNIST, torchvision downloads, image folders."""

from __future__ import annotations

from explorer.config import DataConfig
from explorer.data.dataset import ImageData, to_float
from explorer.data.folder import FolderReport

BUILTIN = ("mnist", "fashion-mnist", "kmnist", "cifar10")


def load_dataset(config: DataConfig, report: FolderReport | None = None) -> ImageData:
    """Load what ``config`` names, applying its class filter and size limit."""
    name = config.dataset
    if name == "mnist":
        from explorer.data.mnist import load_mnist

        data = load_mnist()
    elif name in BUILTIN:
        from explorer.data.downloads import load_download

        data = load_download(name)
    else:
        from explorer.data.folder import load_folder

        # The class filter and the limit apply before decoding: only the images used are read.
        data = load_folder(name, config.image_size, config.channels, config.test_fraction,
                           config.split_seed, report, limit=config.limit, classes=config.classes)
    return data.only_classes(config.classes).limited(config.limit)


__all__ = ["BUILTIN", "DataConfig", "FolderReport", "ImageData", "load_dataset", "to_float"]
