"""What every format shares: the wrapper modules that give each part plain tensor inputs
and outputs, their example inputs and dynamic batch size, and the files a part goes to.

The app's ``encode`` and ``decode`` take integer labels and return a ``LatentDist``;
neither is something ONNX, a .pt2 program or a web page can carry. The wrappers here take
the one-hot class vector instead (so another tool can also feed soft mixtures of classes to
a built-in model) and return bare tensors. They hold the model's own submodules, so the
exported graph is the app's arithmetic, not a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from explorer.errors import UserError
from explorer.export import PARTS
from explorer.models.autoencoder import Autoencoder

# The batch the wrappers are traced with. Not 1: an example of size 1 invites the tracer
# to specialise the batch dimension to a constant, and the files must take any batch size.
EXAMPLE_BATCH = 3
MESSAGE_LIMIT = 300  # characters of an exporter's own message kept in ours (one line)


class ExportError(UserError):
    """A model that cannot be written in the asked format, said in one line."""


# -- the parts as plain modules --------------------------------------------------------------


class DecoderPart(nn.Module):
    """Codes to images in [0, 1]: ``sigmoid(decoder(code))``, as ``Autoencoder.decode``."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(code))


class ConditionalDecoderPart(DecoderPart):
    """Codes and one-hot classes to images: the class is appended to the code, as
    ``Autoencoder.decode_logits`` does after making the one-hot itself."""

    def forward(self, code: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(self.decoder(torch.cat([code, onehot], dim=1)))


class EncoderPart(nn.Module):
    """Images in [0, 1] to the mean code, and the log-variance for the VAE family: the
    deterministic half of ``Autoencoder.encode`` (sampling is the caller's business)."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.encoder_body = model.encoder_body
        self.mean_head = model.mean_head
        self.logvar_head = model.logvar_head
        self.relu_code = model.config.code_activation == "relu"

    def _encode(self, image: torch.Tensor, onehot: torch.Tensor | None) -> Any:
        h = self.encoder_body(image, onehot)
        mean = self.mean_head(h)
        if self.relu_code:
            mean = F.relu(mean)
        if self.logvar_head is None:
            return mean
        return mean, self.logvar_head(h)

    def forward(self, image: torch.Tensor) -> Any:
        return self._encode(image, None)


class ConditionalEncoderPart(EncoderPart):
    def forward(self, image: torch.Tensor, onehot: torch.Tensor) -> Any:  # type: ignore[override]
        return self._encode(image, onehot)


class ContractDecoderPart(nn.Module):
    """A model plugin's decoder through the contract alone (its layers are its own). The
    one-hot goes back to a label (argmax), because the contract's ``decode`` takes labels."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.model.decode(code)


class ConditionalContractDecoderPart(ContractDecoderPart):
    def forward(self, code: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model.decode(code, onehot.argmax(dim=1))


class ContractEncoderPart(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.variational = bool(model.config.variational)

    def _encode(self, image: torch.Tensor, labels: torch.Tensor | None) -> Any:
        dist = self.model.encode(image, labels)
        if self.variational and dist.logvar is not None:
            return dist.mean, dist.logvar
        return dist.mean

    def forward(self, image: torch.Tensor) -> Any:
        return self._encode(image, None)


class ConditionalContractEncoderPart(ContractEncoderPart):
    def forward(self, image: torch.Tensor, onehot: torch.Tensor) -> Any:  # type: ignore[override]
        return self._encode(image, onehot.argmax(dim=1))


# -- what a format needs to trace a part -----------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """One part, ready to trace: the module, example inputs, which of their dimensions are
    the (dynamic) batch, and the names the inputs and outputs get in the file."""

    part: str
    module: nn.Module
    args: tuple[torch.Tensor, ...]
    dynamic_shapes: tuple[dict[int, Any], ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def check_exportable(model: nn.Module) -> None:
    """Refuse, in one line, a model the app cannot write out: a user's own encoder and
    decoder (``explorer.view``) belong to the user's code, which can export them itself."""
    if getattr(model, "storable", True) is False:
        raise ExportError("a model given as your own encoder and decoder is exported from your own code "
                          "(torch.onnx.export or torch.export), not from here")
    if not hasattr(model, "config") or not hasattr(model, "decode"):
        raise ExportError("only a model trained or opened in Latent Explorer can be exported")


def part_names(part: str) -> tuple[str, ...]:
    """The parts one ``--part`` stands for, encoder first."""
    if part not in PARTS:
        raise ExportError(f"the part must be one of {', '.join(PARTS)}, not {part!r}")
    return ("encoder", "decoder") if part == "both" else (part,)


def prepare(model: nn.Module, part: str) -> Prepared:
    """The wrapper of ``part`` ("encoder" or "decoder") with its example inputs."""
    check_exportable(model)
    config = model.config
    conditional = bool(config.conditional)
    builtin = isinstance(model, Autoencoder)
    batch = torch.export.Dim("batch", min=1)
    onehot = torch.eye(config.num_classes)[torch.arange(EXAMPLE_BATCH) % config.num_classes] if conditional else None
    if part == "decoder":
        kind: Callable[[Any], nn.Module]
        if builtin:
            kind = ConditionalDecoderPart if conditional else DecoderPart
        else:
            kind = ConditionalContractDecoderPart if conditional else ContractDecoderPart
        first = torch.zeros(EXAMPLE_BATCH, config.latent_dim)
        names, outputs = ("code", "onehot"), ("image",)
    elif part == "encoder":
        if builtin:
            kind = ConditionalEncoderPart if conditional else EncoderPart
        else:
            kind = ConditionalContractEncoderPart if conditional else ContractEncoderPart
        first = torch.full((EXAMPLE_BATCH, *config.image_shape), 0.5)
        names, outputs = ("image", "onehot"), (("mean", "logvar") if config.variational else ("mean",))
    else:
        raise ExportError(f"a part is the encoder or the decoder, not {part!r}")
    module = kind(model).eval()
    args = (first,) if onehot is None else (first, onehot)
    return Prepared(part=part, module=module, args=args, dynamic_shapes=tuple({0: batch} for _ in args),
                    input_names=names[:len(args)], output_names=outputs)


# -- where the files go ------------------------------------------------------------------------


def targets(out: str | Path, part: str, suffix: str) -> list[tuple[str, Path]]:
    """(part, file) for each part asked for. One part goes to ``out`` itself; both go
    beside it as ``NAME.encoder.SUFFIX`` and ``NAME.decoder.SUFFIX`` (``out`` is
    ``NAME.SUFFIX``): two plain files, each runnable alone, with no folder to unpack."""
    out = Path(out)
    names = part_names(part)
    if not out.name.lower().endswith(suffix):
        raise ExportError(f"{out.name or out}: the output must end in {suffix}")
    if len(out.name) == len(suffix):
        raise ExportError(f"{out}: give the file a name before {suffix}")
    if len(names) == 1:
        return [(names[0], out)]
    stem = out.name[: -len(suffix)]
    return [(name, out.with_name(f"{stem}.{name}{suffix}")) for name in names]


def check_targets(files: list[tuple[str, Path]]) -> None:
    """Prove every file can be written before any tracing starts (tracing takes seconds)."""
    from explorer.atomic import check_writable

    for _, path in files:
        check_writable(path)


def failure(what: str, exc: BaseException) -> ExportError:
    """An exporter's own error (often pages long) as one line saying what failed."""
    text = " ".join(str(exc).split())
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 3] + "..."
    return ExportError(f"could not export {what}: {type(exc).__name__}" + (f": {text}" if text else ""))


def exporter_errors(exc: BaseException) -> bool:
    """Errors a tracer or serialiser raises about the model (not memory, not interrupts,
    not a message of ours already in one line)."""
    return isinstance(exc, Exception) and not isinstance(exc, (UserError, MemoryError))
