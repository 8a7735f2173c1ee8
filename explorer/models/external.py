"""A user's own encoder and decoder, adapted once, at the edge, to the model contract.

``explorer.view(encoder=..., decoder=..., images=...)`` takes any pair of torch modules or
plain callables: the encoder maps images to codes (a tensor, or ``(mean, logvar)``), the
decoder maps codes to images in [0, 1] (or logits, when the call says so). Every view then
treats the pair like a model the app trained: it has a config (latent size, image shape),
``encode``, ``decode``, the loss terms and, when the encoder gives a log-variance, a
Gaussian prior to sample from. What the pair cannot do (be trained or saved here, draw a
chosen class) it says in one line through :data:`CANNOT`.

The pair is probed once with two of the given images: the encoder's input layout (images
as (N, C, H, W), else flattened to (N, C*H*W)), the code's size, whether a log-variance
comes back and the decoder's output layout are found then, and anything unusable is one
clear error before a window opens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.errors import UserError
from explorer.models.base import LatentDist, ModelOutput, loss_part_names
from explorer.models.losses import gaussian_kl, reconstruction_loss

# What a model given as an encoder and decoder cannot do, in the words the app shows.
CANNOT = {
    "train": "a model given as your own encoder and decoder cannot be trained here; train it in your code and "
             "call explorer.view again",
    "save": "a model given as your own encoder and decoder cannot be saved as a Latent Explorer checkpoint; "
            "save your modules with torch.save or export them from your code",
    "classes": "a model given as your own encoder and decoder has no class input",
}
LOGIT_CLAMP = 1e-6  # decoded images at exactly 0 or 1 have infinite logits


class ExternalModel(nn.Module):
    """The model contract around a user's ``encoder`` and ``decoder``.

    Not trainable or storable here (``trainable`` and ``storable`` are False). Weights are
    the user's and never change under the app, so background work may share the module
    instead of copying it (``shared_weights``).
    """

    trainable = False
    storable = False
    shared_weights = True
    input_device = "cpu"  # encode/decode take and return CPU tensors; the modules' device is theirs

    def __init__(self, encoder: Callable[..., Any], decoder: Callable[..., Any], sample_images: torch.Tensor, *,
                 decoder_logits: bool = False, name: str = "your model") -> None:
        super().__init__()
        if not callable(encoder) or not callable(decoder):
            raise UserError("explorer.view needs an encoder and a decoder that can be called (torch modules or "
                            "functions)")
        # Modules are registered so .eval()/.to() reach them; plain callables are kept as they are.
        self.encoder_fn = encoder
        self.decoder_fn = decoder
        self.name = name
        self.decoder_logits = decoder_logits
        self.beta = 1.0
        images = sample_images[:2].float()
        if sample_images.dtype == torch.uint8:
            images = images / 255.0
        self.image_shape: tuple[int, int, int] = tuple(int(s) for s in images.shape[1:])  # type: ignore[assignment]
        self._flat_input = False
        dist = self._probe_encoder(images)
        self.variational = dist.logvar is not None
        latent_dim = int(dist.mean.shape[1])
        self._probe_decoder(dist.mean)
        self.config = ModelConfig(preset="", family="mlp", variational=self.variational, conditional=False,
                                  latent_dim=latent_dim, hidden_dims=(), image_shape=self.image_shape,
                                  num_classes=0, recon_loss="bce")

    # -- probing -------------------------------------------------------------------------------

    def _device(self) -> torch.device:
        for fn in (self.encoder_fn, self.decoder_fn):
            if isinstance(fn, nn.Module):
                for p in fn.parameters():
                    return p.device
        return torch.device("cpu")

    def _probe_encoder(self, images: torch.Tensor) -> LatentDist:
        errors = []
        for flat in (False, True):
            self._flat_input = flat
            try:
                with torch.no_grad():
                    return self.encode(images)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's code: any failure means "not this layout"
                errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        raise UserError(f"the encoder fails on images of shape (N, {', '.join(map(str, self.image_shape))}) and "
                        f"flattened ones ({errors[0]})")

    def _probe_decoder(self, codes: torch.Tensor) -> None:
        try:
            with torch.no_grad():
                out = self._decoder_output(codes)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise UserError(f"the decoder fails on codes of shape {tuple(codes.shape)} "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        if not torch.isfinite(out).all():
            raise UserError("the decoder returns NaN or infinite values")
        if not self.decoder_logits and (float(out.min()) < -1e-4 or float(out.max()) > 1 + 1e-4):
            raise UserError(f"the decoder returns values from {float(out.min()):.3g} to {float(out.max()):.3g}; "
                            "images must be in [0, 1] (if it returns logits, pass decoder_logits=True)")

    # -- the contract ----------------------------------------------------------------------------

    @property
    def is_generative(self) -> bool:
        return self.variational

    @property
    def is_conditional(self) -> bool:
        return False

    @property
    def part_names(self) -> tuple[str, ...]:
        return loss_part_names(self.variational, False)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LatentDist:
        device = self._device()
        inputs = x.reshape(x.shape[0], -1) if self._flat_input else x
        out = self.encoder_fn(inputs.to(device))
        if isinstance(out, LatentDist):
            mean, logvar = out.mean, out.logvar
        elif isinstance(out, (tuple, list)) and len(out) == 2:
            mean, logvar = out
        elif isinstance(out, torch.Tensor):
            mean, logvar = out, None
        else:
            raise UserError(f"the encoder returns {type(out).__name__}; it must return codes (a tensor) or "
                            "(mean, logvar)")
        mean = torch.as_tensor(mean).float().cpu()
        if mean.dim() != 2 or mean.shape[0] != x.shape[0]:
            raise UserError(f"the encoder returns codes of shape {tuple(mean.shape)} for {x.shape[0]} images; "
                            "codes must be (N, latent size)")
        if logvar is not None:
            logvar = torch.as_tensor(logvar).float().cpu()
            if logvar.shape != mean.shape:
                raise UserError(f"the encoder's log-variance has shape {tuple(logvar.shape)}, its mean "
                                f"{tuple(mean.shape)}; they must match")
        return LatentDist(mean, logvar)

    def _decoder_output(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder_fn(z.to(self._device()))
        if not isinstance(out, torch.Tensor):
            raise UserError(f"the decoder returns {type(out).__name__}; it must return a tensor of images")
        out = out.float().cpu()
        n = z.shape[0]
        c, h, w = self.image_shape
        if out.numel() != n * c * h * w:
            raise UserError(f"the decoder returns shape {tuple(out.shape)} for {n} codes; images here are "
                            f"{c}x{h}x{w} (N x {c * h * w} values each)")
        return out.reshape(n, c, h, w)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self._decoder_output(z)
        if self.decoder_logits:
            return out
        return torch.logit(out.clamp(LOGIT_CLAMP, 1 - LOGIT_CLAMP))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self._decoder_output(z)
        return torch.sigmoid(out) if self.decoder_logits else out.clamp(0, 1)

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x).mean)

    def loss_parts(self, x: torch.Tensor, y: torch.Tensor | None = None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The terms the app reports for any model: the Bernoulli reconstruction loss (and
        the KL to a standard normal prior when the encoder gives a log-variance)."""
        dist = self.encode(x)
        z = dist.sample()
        logits = self.decode_logits(z)
        parts = {"recon": reconstruction_loss(logits, x.cpu(), "bce").mean()}
        if dist.logvar is not None:
            parts["kl"] = gaussian_kl(dist.mean, dist.logvar).mean()
        return parts, logits, z

    def combine(self, parts: dict[str, torch.Tensor], logits: torch.Tensor, z: torch.Tensor) -> ModelOutput:
        loss = parts["recon"] + (self.beta * parts["kl"] if "kl" in parts else 0)
        return ModelOutput(loss=loss, parts=parts, logits=logits, z=z)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        return self.combine(*self.loss_parts(x, y))

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.is_generative:
            raise UserError("this model's encoder gives no log-variance, so it has no prior to sample from")
        with torch.no_grad():
            return self.decode(torch.randn(n, self.config.latent_dim, generator=generator))
