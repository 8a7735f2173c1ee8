"""``explorer.direction``: a named direction in a model's code space, from images people have."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.analysis import directions as made
from explorer.analysis.directions import Direction
from explorer.errors import UserError


def direction(model: Any, images: Any, labels: Any = None, *, from_class: int | None = None,
              to_class: int | None = None, probe: int | None = None, selection: Any = None,
              from_image: int | None = None, to_image: int | None = None, name: str | None = None,
              class_names: Any = None, keep: bool = True) -> Direction:
    """A direction in ``model``'s code space, made from the mean codes of ``images`` (an
    array, a tensor or a torchvision-style dataset) in one of four ways:

    * ``from_class=4, to_class=9``: from class 4's mean code to class 9's;
    * ``probe=3``: the normal of a logistic regression of class 3 against the rest;
    * ``selection=mask`` (booleans, or image numbers): from the rest's mean to the selection's;
    * ``from_image=i, to_image=j``: from image i's code to image j's.

    Where labels define it, ``direction.accuracy`` is its balanced accuracy on a held-out
    30% of those images. ``direction.moved(code, t)`` moves a code along it alone (t = 0 at
    its start, 1 at its end). With ``keep`` a model from ``explorer.load``/``explorer.train``
    keeps it in ``model.record.directions``, and ``explorer.save`` writes it into the checkpoint.
    """
    import torch

    from explorer.analysis.latents import encode_images
    from explorer.api.record import record_of
    from explorer.data.arrays import image_data_for_viewing

    kinds = [from_class is not None or to_class is not None, probe is not None, selection is not None,
             from_image is not None or to_image is not None]
    if sum(kinds) != 1:
        raise UserError("explorer.direction takes one of from_class/to_class, probe, selection or "
                        "from_image/to_image")
    data = image_data_for_viewing(images, labels, class_names)
    if (kinds[0] or kinds[1] or model.config.conditional) and data.test_labels is None:
        raise UserError("give labels= with the images: this direction (or this conditional model) needs them")
    with torch.no_grad():
        means, _ = encode_images(model, data.test_images, data.test_labels if model.config.conditional else None)
    codes = means.numpy().astype(np.float64)
    label_array = data.test_labels.numpy() if data.test_labels is not None else None
    names = tuple(data.class_names) or tuple(
        record.class_names if (record := record_of(model)) is not None else ())
    try:
        if kinds[0]:
            if from_class is None or to_class is None:
                raise UserError("a direction between classes needs both from_class and to_class")
            result = made.from_class_means(codes, label_array, int(from_class), int(to_class), name, names)
        elif kinds[1]:
            result = made.from_probe(codes, label_array, int(probe), name, names)
        elif kinds[2]:
            result = made.from_selection(codes, np.asarray(selection), name or "selection")
        else:
            if from_image is None or to_image is None:
                raise UserError("a direction between images needs both from_image and to_image")
            n = codes.shape[0]
            if not (0 <= from_image < n and 0 <= to_image < n):
                raise UserError(f"from_image and to_image number one of the {n} images given")
            result = made.from_codes(codes[from_image], codes[to_image], name or f"image {from_image} to {to_image}",
                                     (int(from_image), int(to_image)))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    record = record_of(model)
    if keep and record is not None:
        record.directions.append(result)
    return result
