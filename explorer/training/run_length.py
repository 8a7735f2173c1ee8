"""How long a run trains, from its settings and the size of its data: one rule for the CLI,
the window, the engine and the tests.

Epochs are what was asked: ``TrainConfig.min_steps`` is 0 unless the user sets it (the
CLI's ``--min-steps``, the window's "At least (steps)"), and then it is a floor on the
optimisation steps: on a folder of a few hundred images ten epochs are forty steps, which
leave grey blobs, so a floor trains the fewest whole epochs that reach it. :func:`plan_run`
turns the settings and the number of training images into the plan (epochs, steps per
epoch, total steps) and :func:`describe_plan` into the one line both front ends show before
training starts. It is kept apart from the loop so the CLI, the window and the tests can
ask the same question without running anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from explorer.config import TrainConfig
from explorer.display import plural

# Fewer optimisation steps than this rarely train a model to anything recognisable: the
# plan line, the CLI's end-of-run line and the window's say so.
FEW_STEPS = 500


def epochs_to_train(cfg: TrainConfig, steps_per_epoch: int, steps_done: int = 0) -> int:
    """``cfg.epochs``, raised to the fewest whole epochs that bring the model to
    ``cfg.min_steps`` steps. ``steps_done`` counts steps the model already took (a
    continued run), so continuing a model that had its minimum is never stretched."""
    return _epochs(cfg.epochs, cfg.min_steps, steps_per_epoch, steps_done)


def _epochs(epochs: int, min_steps: int, steps_per_epoch: int, steps_done: int) -> int:
    if min_steps <= 0 or steps_per_epoch <= 0:
        return epochs
    missing = min_steps - steps_done
    if epochs * steps_per_epoch >= missing:
        return epochs
    return max(epochs, math.ceil(missing / steps_per_epoch))


def steps_per_epoch(train_size: int, batch_size: int, drop_last: bool = False) -> int:
    """The optimisation steps of one epoch over ``train_size`` images, as the engine takes
    them: batches of ``batch_size`` (at most the whole split), the short last batch kept
    unless ``drop_last`` (a compiled step, specialised to one batch shape, drops it)."""
    if train_size <= 0:
        return 0
    batch = min(batch_size, train_size)
    return train_size // batch if drop_last else math.ceil(train_size / batch)


@dataclass(frozen=True)
class RunPlan:
    """What a run will train: ``epochs`` of ``steps_per_epoch`` steps. ``asked_epochs`` is
    the setting; ``epochs`` is more only when ``min_steps`` raised it."""

    train_size: int
    batch_size: int
    steps_per_epoch: int
    asked_epochs: int
    epochs: int
    min_steps: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def raised(self) -> bool:
        return self.epochs != self.asked_epochs


def plan_run(train_size: int, batch_size: int, epochs: int, min_steps: int = 0, steps_done: int = 0,
             drop_last: bool = False) -> RunPlan:
    """The run that ``epochs`` (raised to reach ``min_steps`` steps, counting the
    ``steps_done`` of a continued model) of ``train_size`` images in batches of
    ``batch_size`` make: the engine's count (it calls :func:`epochs_to_train` with the
    same steps per epoch)."""
    per_epoch = steps_per_epoch(train_size, batch_size, drop_last)
    return RunPlan(train_size=train_size, batch_size=min(batch_size, max(train_size, 1)),
                   steps_per_epoch=per_epoch, asked_epochs=epochs,
                   epochs=_epochs(epochs, min_steps, per_epoch, steps_done), min_steps=min_steps)


def plan_for(cfg: TrainConfig, train_size: int, steps_done: int = 0, drop_last: bool = False) -> RunPlan:
    """:func:`plan_run` with a config's epochs, batch size and floor."""
    return plan_run(train_size, cfg.batch_size, cfg.epochs, cfg.min_steps, steps_done, drop_last)


def describe_plan(plan: RunPlan) -> str:
    """The plan in one line, the same in the window's form and the CLI's first line:
    "3 epochs of 47 steps = 141 steps", or with a floor that raises it
    "3 epochs = 141 steps; will train 22 epochs (1,034 steps) to reach 1,000 steps"."""
    asked = plan.asked_epochs * plan.steps_per_epoch
    if plan.raised:
        text = (f"{plural(plan.asked_epochs, 'epoch')} = {plural(asked, 'step')}; will train "
                f"{plural(plan.epochs, 'epoch')} ({plural(plan.total_steps, 'step')}) to reach "
                f"{plan.min_steps:,} steps")
    else:
        text = (f"{plural(plan.epochs, 'epoch')} of {plural(plan.steps_per_epoch, 'step')} = "
                f"{plural(plan.total_steps, 'step')}")
    if plan.total_steps < FEW_STEPS:
        text += " (few steps: the model may learn little)"
    return text


def small_data_message(train_size: int, steps_per_epoch: int, asked_epochs: int, epochs: int,
                       min_steps: int) -> str:
    """The plain sentence the engine's Notice says when :func:`epochs_to_train` raised the epochs."""
    images = f"{train_size:,} training image{'s' if train_size != 1 else ''}"
    steps = f"{steps_per_epoch:,} step{'s' if steps_per_epoch != 1 else ''} per epoch"
    return (f"The dataset is small ({images}, {steps}): training {epochs:,} epochs instead of "
            f"{asked_epochs:,}, so the model takes at least {min_steps:,} steps.")
