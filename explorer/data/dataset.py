"""The in-memory form every dataset takes.

Images stay uint8 (N, C, H, W) so that even CIFAR-10 fits comfortably on a device; the
engine scales each batch to [0, 1] as it goes, with no per-sample Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.errors import DataError


@dataclass(frozen=True)
class ImageData:
    name: str
    train_images: torch.Tensor  # uint8 (N, C, H, W)
    train_labels: torch.Tensor | None  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor | None
    class_names: tuple[str, ...] = ()
    # The train images are grey and each batch is to be binarised afresh (``binarize`` set
    # to "dynamic"): the engine draws the pixels, so every epoch sees a new binary sample.
    binarize_train: bool = False

    def __post_init__(self) -> None:
        for split, images, labels in (("train", self.train_images, self.train_labels),
                                      ("test", self.test_images, self.test_labels)):
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 (N, C, H, W)")
            if images.shape[0] == 0:
                raise DataError(f"{self.name}: the {split} split has no images")
            if labels is not None and labels.shape != (images.shape[0],):
                raise DataError(f"{self.name}: {split} labels do not match the images")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(f"{self.name}: train and test images differ in shape")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.train_labels is not None else 0

    @property
    def has_labels(self) -> bool:
        return self.train_labels is not None and self.test_labels is not None

    def limited(self, n: int | None) -> ImageData:
        """The first ``n`` images of each split (for quick runs and tests)."""
        if n is None:
            return self

        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[:n].clone()

        return ImageData(self.name, self.train_images[:n].clone(), cut(self.train_labels),
                         self.test_images[:n].clone(), cut(self.test_labels), self.class_names,
                         self.binarize_train)

    def only_classes(self, classes: tuple[int, ...] | None) -> ImageData:
        """Keep only the given classes (e.g. 'normal' digits for anomaly detection)."""
        if classes is None:
            return self
        if not self.has_labels:
            raise DataError(f"{self.name} has no classes to filter by")
        bad = [c for c in classes if c >= len(self.class_names)]
        if bad:
            raise DataError(f"{self.name} has classes 0 to {len(self.class_names) - 1}; there is no class {bad[0]}")
        wanted = torch.tensor(sorted(set(classes)))
        keep_train = torch.isin(self.train_labels, wanted)  # type: ignore[arg-type]
        keep_test = torch.isin(self.test_labels, wanted)  # type: ignore[arg-type]
        return ImageData(self.name, self.train_images[keep_train], self.train_labels[keep_train],  # type: ignore[index]
                         self.test_images[keep_test], self.test_labels[keep_test],  # type: ignore[index]
                         self.class_names, self.binarize_train)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]."""
    return images.to(torch.float32).div_(255.0)
