"""Datasets as uint8 tensors in memory: bundled MNIST, torchvision downloads, image folders."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from explorer.config import DataConfig
from explorer.data.arrays import is_array_file
from explorer.data.dataset import ImageData, to_float
from explorer.data.folder import FolderReport

BUILTIN = ("mnist", "fashion-mnist", "kmnist", "cifar10")


def load_dataset(config: DataConfig, report: FolderReport | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ImageData:
    """Load what ``config`` names, applying its binarisation, class filter and size limit.

    Binarising comes first, over the whole splits, so that a filtered or limited test set is
    a subset of the same binary images every other run is evaluated on.

    An ``.npz``/``.npy`` file of images (:mod:`explorer.data.arrays`) is split with the
    config's test fraction and seed unless it holds its own train and test arrays.

    A large folder is decoded once into a memory-mapped cache on disk
    (:mod:`explorer.data.folder_cache`), reporting ``progress(done, total)`` as it decodes.
    """
    name = config.dataset
    if name == "mnist":
        from explorer.data.mnist import load_mnist

        data = load_mnist()
    elif name in BUILTIN:
        from explorer.data.downloads import load_download

        data = load_download(name)
    elif is_array_file(name):
        from explorer.data.arrays import load_array_file, resized

        data = resized(load_array_file(name, config.test_fraction, config.split_seed), config.image_size,
                       config.channels)
    else:
        from explorer.data.folder_cache import load_folder_cached

        # The class filter and the limit apply before decoding: only the images used are read.
        data, mapped = load_folder_cached(name, config.image_size, config.channels, config.test_fraction,
                                          config.split_seed, report, limit=config.limit, classes=config.classes,
                                          progress=progress)
        if mapped:  # already filtered and limited; filtering again would copy the map into memory
            return _binarized(data, config.binarize) if config.binarize != "none" else data
    if config.binarize != "none":
        data = _binarized(data, config.binarize)
    return data.only_classes(config.classes).limited(config.limit)


def _binarized(data: ImageData, mode: str) -> ImageData:
    """The test split binarised with the fixed TEST_SEED (whichever mode); the train split
    binarised once with TRAIN_SEED ("static") or left grey for the engine to redraw
    every batch ("dynamic")."""
    from explorer.data.binarize import TEST_SEED, TRAIN_SEED, binarize

    test = binarize(data.test_images, TEST_SEED)
    if mode == "static":
        return dataclasses.replace(data, train_images=binarize(data.train_images, TRAIN_SEED), test_images=test)
    return dataclasses.replace(data, test_images=test, binarize_train=True)


__all__ = ["BUILTIN", "DataConfig", "FolderReport", "ImageData", "load_dataset", "to_float"]
