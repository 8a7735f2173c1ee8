"""Evaluating what is on disk: which data a checkpoint is evaluated on, and keeping the
numbers in the checkpoint (rewritten atomically; everything else in it kept as stored)."""

from __future__ import annotations

from pathlib import Path

from explorer.config import DataConfig, ModelConfig, replace
from explorer.data import ImageData, load_dataset
from explorer.errors import DataError
from explorer.evaluation.record import Evaluation, records_from_json, with_record
from explorer.training.checkpoint import Checkpoint, rewrite_checkpoint


def evaluation_data_config(trained_on: DataConfig, model: ModelConfig, dataset: str | None = None,
                           binarize: str | None = None) -> DataConfig:
    """The data a model is evaluated on: what it was trained on, or ``dataset`` (a name or a
    folder) read at the model's image size and channels, all of its classes and images.
    ``binarize`` overrides the binarisation (None: as trained)."""
    config = trained_on
    if dataset is not None and dataset != trained_on.dataset:
        channels, height, width = model.image_shape
        config = DataConfig(dataset=dataset, image_size=height if height == width else None, channels=channels,
                            binarize=trained_on.binarize)
    if binarize is not None:
        config = replace(config, binarize=binarize)
    return config


def load_evaluation_data(config: DataConfig, model: ModelConfig) -> ImageData:
    """``config``'s data, refused in one line when its images do not fit the model."""
    try:
        data = load_dataset(config)
    except DataError as exc:
        raise DataError(f"cannot load the evaluation data ({config.dataset}): {exc}") from None
    if data.image_shape != model.image_shape:
        raise DataError(f"{config.dataset} has images of shape {data.image_shape}; the model takes "
                        f"{model.image_shape}, so it cannot be evaluated there")
    if model.conditional and not data.has_labels:
        raise DataError(f"{config.dataset} has no class labels, which a conditional model needs")
    return data


def records_of(checkpoint: Checkpoint) -> list[Evaluation]:
    return records_from_json(checkpoint.evaluations)


def store_evaluation(path: str | Path, evaluation: Evaluation) -> Path:
    """Merge ``evaluation`` into the checkpoint at ``path`` and rewrite it atomically,
    through :func:`rewrite_checkpoint`, so the weights, the timeline and every other entry
    stay exactly as stored; a failed write leaves the file as it was (CheckpointError)."""
    def merged(checkpoint: Checkpoint) -> dict[str, object]:
        return {"evaluations": [r.to_dict() for r in with_record(records_of(checkpoint), evaluation)]}

    return rewrite_checkpoint(path, merged)
