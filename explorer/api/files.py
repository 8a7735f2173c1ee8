"""``explorer.load`` and ``explorer.save``: checkpoints as model objects, for scripts and
notebooks. The same checked reader and atomic writer as the CLI and the window."""

from __future__ import annotations

from pathlib import Path

from explorer.api.record import TrainingRecord, record_of
from explorer.config import DataConfig, TrainConfig
from explorer.errors import UserError
from explorer.models import Autoencoder
from explorer.training.history import History


def load(path: str | Path) -> Autoencoder:
    """A checkpoint as a CPU model in eval mode, with its configs, history, timeline and named
    directions in ``model.record``. A hostile or broken file is refused with one line
    (:class:`explorer.errors.CheckpointError`); nothing in it runs."""
    from explorer.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    model = ckpt.build_model()
    model.record = TrainingRecord(ckpt.data_config, ckpt.train_config, ckpt.history, ckpt.class_names,
                                  list(ckpt.evaluations), ckpt.timeline, dict(ckpt.extra_metadata), Path(path),
                                  directions=list(ckpt.directions))
    return model


def save(model: Autoencoder, path: str | Path, *, data_config: DataConfig | None = None,
         train_config: TrainConfig | None = None, history: History | None = None,
         class_names: tuple[str, ...] | None = None) -> Path:
    """Write ``model`` as a checkpoint (atomically; a failure leaves an earlier file as it
    was). What ``model.record`` holds is written too; the keyword arguments replace parts of
    it. A model given as your own encoder and decoder cannot be saved here."""
    from explorer.training.checkpoint import save_checkpoint

    if not getattr(model, "storable", True) or not isinstance(model, Autoencoder):
        from explorer.models.external import CANNOT

        raise UserError(CANNOT["save"] if not getattr(model, "storable", True) else
                        f"explorer.save takes a Latent Explorer model, not {type(model).__name__}")
    record = record_of(model)
    path = Path(path)
    if path.suffix != ".safetensors":
        raise UserError(f"{path.name}: a checkpoint's name ends in .safetensors")
    written = save_checkpoint(
        path, model, data_config or (record.data_config if record else DataConfig()),
        train_config or (record.train_config if record else TrainConfig()),
        history or (record.history if record else None),
        class_names if class_names is not None else (record.class_names if record else ()),
        evaluations=record.evaluations if record else None, timeline=record.timeline if record else None,
        extra_metadata=record.extra_metadata if record else None,
        directions=tuple(record.directions) if record else ())
    if record is not None:
        record.path = written
    return written
