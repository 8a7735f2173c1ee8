"""Datasets that torchvision downloads on request into the user's data directory."""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from explorer.data.dataset import ImageData
from explorer.errors import DataError
from explorer.paths import data_dir


def _torchvision_class(name: str) -> Callable[..., Any]:
    from torchvision import datasets  # heavy import, only when a download is asked for

    return {"fashion-mnist": datasets.FashionMNIST, "kmnist": datasets.KMNIST, "cifar10": datasets.CIFAR10}[name]


DOWNLOADABLE = ("fashion-mnist", "kmnist", "cifar10")


def _as_nchw(data: Any) -> torch.Tensor:
    arr = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 3:  # (N, H, W) grey
        return torch.from_numpy(arr).unsqueeze(1)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) colour


def _first_line(exc: BaseException) -> str:
    """torchvision's download errors run to several lines (a URL per mirror): the first says it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def load_download(name: str, download: bool = True) -> ImageData:
    """Load (downloading once if needed) one of :data:`DOWNLOADABLE`."""
    cls = _torchvision_class(name)
    root = data_dir() / "datasets"
    splits = {}
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=download)
        except (urllib.error.URLError, OSError, ConnectionError) as exc:
            raise DataError(f"could not download {name} into {root} (is the network reachable?): "
                            f"{_first_line(exc)}") from None
        except RuntimeError as exc:
            raise DataError(f"{name} is not in {root} and could not be downloaded: {_first_line(exc)}") from None
        splits[train] = (_as_nchw(ds.data), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64), ds.classes)
    (train_x, train_y, classes), (test_x, test_y, _) = splits[True], splits[False]
    return ImageData(name, train_x, train_y, test_x, test_y, tuple(str(c) for c in classes))
