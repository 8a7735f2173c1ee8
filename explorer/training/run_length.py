"""How many epochs a run trains once its data is known.

Epochs are the natural unit on MNIST (469 steps each), but on a folder of a few hundred
images ten epochs are forty optimisation steps: the model shows grey blobs and nothing
says why. ``TrainConfig.min_steps`` puts a floor on the steps instead, and this module
turns it into an epoch count plus one sentence telling the user what changed. It is kept
apart from the loop so the CLI, the window and the tests can ask the same question
without running anything.
"""

from __future__ import annotations

import math

from explorer.config import TrainConfig


def epochs_to_train(cfg: TrainConfig, steps_per_epoch: int, steps_done: int = 0) -> int:
    """``cfg.epochs``, raised to the fewest whole epochs that bring the model to
    ``cfg.min_steps`` steps. ``steps_done`` counts steps the model already took (a
    continued run), so continuing a model that had its minimum is never stretched."""
    if cfg.min_steps <= 0 or steps_per_epoch <= 0:
        return cfg.epochs
    missing = cfg.min_steps - steps_done
    if cfg.epochs * steps_per_epoch >= missing:
        return cfg.epochs
    return max(cfg.epochs, math.ceil(missing / steps_per_epoch))


def small_data_message(train_size: int, steps_per_epoch: int, asked_epochs: int, epochs: int,
                       min_steps: int) -> str:
    """The plain sentence the user sees when :func:`epochs_to_train` raised the epochs."""
    images = f"{train_size:,} training image{'s' if train_size != 1 else ''}"
    steps = f"{steps_per_epoch:,} step{'s' if steps_per_epoch != 1 else ''} per epoch"
    return (f"The dataset is small ({images}, {steps}): training {epochs:,} epochs instead of "
            f"{asked_epochs:,}, so the model takes at least {min_steps:,} steps.")
