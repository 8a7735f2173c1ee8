"""One self-contained HTML page: the test codes' plane, a marker to drag, the decoded image.

For a person without Python: the page opens from a file, fetches nothing (no CDN, the
weights are inside it as base64 float32 arrays) and runs the decoder in plain JavaScript.
That is why it takes MLP decoders only: their layers are ``Linear`` with ``ReLU`` between
them and a sigmoid at the end (explorer.models.mlp and layers.decoder_stack), a few lines of
JS; a conv decoder would need transposed convolutions in the page, which is ONNX's job.

The plane is the app's: for codes of more than two numbers, the two principal axes of the
shown codes (explorer.analysis.projection.pca_axes), and a point ``(x, y)`` on it is the code
``mean + x * axis0 + y * axis1``; two-number codes are drawn on their own axes.
``window.latentExplorer.decode(code)`` exposes the page's decoder to scripts and tests.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.atomic import write_text
from explorer.export.common import ExportError, check_exportable
from explorer.export.page import TEMPLATE
from explorer.models.autoencoder import Autoencoder

SUFFIXES = (".html", ".htm")
MAX_POINTS = 2000  # test codes drawn on the plane: enough to see the classes, quick to draw
# Decoder weights a page may carry (float32 numbers): 16 million are 64 MB, about 85 MB of
# base64, which a browser still opens in a second or two; past that the page is the wrong tool.
MAX_WEIGHTS = 16_000_000
MAX_LEGEND = 30  # classes named under the plane
CONV_REFUSAL = ("the web page runs MLP decoders only, and this is a conv model: its decoder needs transposed "
                "convolutions in the page; export it as onnx (onnxruntime-web runs that in a browser) or pt2")


def check_web(model: nn.Module) -> None:
    """Refuse, in one line, a model the page cannot run (before any data is encoded)."""
    check_exportable(model)
    if not isinstance(model, Autoencoder):
        raise ExportError("the web page runs the built-in MLP models only; export a plugin's model as onnx or pt2")
    if model.config.family == "conv":
        raise ExportError(CONV_REFUSAL)


def decoder_layers(model: Autoencoder) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """(weight, bias, activation) of each Linear of the decoder, in order: what the page's
    loop computes. Read from the modules themselves, so a layer the page cannot run is an
    error here rather than a wrong picture there."""
    check_web(model)
    layers: list[tuple[torch.Tensor, torch.Tensor, str]] = []
    for module in [*model.decoder.hidden, model.decoder.out]:
        if isinstance(module, nn.Linear) and module.bias is not None:
            layers.append((module.weight.detach().float().cpu(), module.bias.detach().float().cpu(), "linear"))
        elif isinstance(module, nn.ReLU) and layers and layers[-1][2] == "linear":
            layers[-1] = (*layers[-1][:2], "relu")
        else:
            raise ExportError(f"the web page cannot run the decoder layer {type(module).__name__}; export as onnx")
    # Autoencoder.decode: images are sigmoid(logits); the last layer gives the logits.
    layers[-1] = (*layers[-1][:2], "sigmoid")
    return layers


def plane_of(codes: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The plane's origin (D,) and its two directions (2, D): PCA of ``codes`` for D > 2,
    the code's own axes otherwise (a 1-D code lies along x)."""
    if dim > 2 and codes.shape[0] >= 2:
        from explorer.analysis.projection import pca_axes

        axes = pca_axes(codes)
        return axes.origin.astype(np.float64), axes.basis[:2].astype(np.float64)
    eye = np.eye(max(dim, 2))[:2, :dim]
    if dim > 2:  # one code or none: no spread to analyse; the first two dimensions, through the code
        return (codes.mean(axis=0) if codes.shape[0] else np.zeros(dim)), eye
    return np.zeros(dim), eye


def first_codes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean codes of the first ``limit`` images (uint8, as datasets hold them), with their labels."""
    from explorer.analysis.latents import encode_images

    labels = labels[:limit] if labels is not None else None
    codes, _ = encode_images(model, images[:limit], labels)
    return codes.numpy(), (labels.numpy().astype(np.int64) if labels is not None else None)


def _b64(array: np.ndarray | torch.Tensor) -> str:
    values = array.numpy() if isinstance(array, torch.Tensor) else array
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def _extent(points: np.ndarray, dim: int) -> list[float]:
    """The plane's visible window: the bulk of the points (1st to 99th percentile, so one
    wild code does not shrink the rest to a dot) with a margin, square-ish and never empty."""
    if points.shape[0] == 0:
        return [-3.0, 3.0, -3.0, 3.0]
    lo = np.percentile(points, 1, axis=0)
    hi = np.percentile(points, 99, axis=0)
    out: list[float] = []
    for a in range(2):
        if a == 1 and dim == 1:
            out += [-1.0, 1.0]
            continue
        span = max(float(hi[a] - lo[a]), 1e-3)
        out += [float(lo[a]) - 0.15 * span, float(hi[a]) + 0.15 * span]
    return out


def web_page(model: nn.Module, codes: np.ndarray, labels: np.ndarray | None, class_names: Sequence[str] = (),
             title: str = "", about: str = "") -> str:
    """The page's HTML: ``codes`` (N, D) and their ``labels`` are the dots on the plane."""
    check_web(model)
    assert isinstance(model, Autoencoder)
    config = model.config
    dim = config.latent_dim
    layers = decoder_layers(model)
    weights = sum(w.numel() + b.numel() for w, b, _ in layers)
    if weights > MAX_WEIGHTS:
        raise ExportError(f"the decoder has {weights:,} weights, too many for a web page (at most "
                          f"{MAX_WEIGHTS:,}); export it as onnx")
    codes = np.asarray(codes, dtype=np.float64).reshape(-1, dim)[:MAX_POINTS]
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)[: codes.shape[0]]
    finite = np.isfinite(codes).all(axis=1)
    codes = codes[finite]
    labels = labels[finite] if labels is not None else None
    origin, axes = plane_of(codes, dim)
    points = (codes - origin) @ axes.T if codes.shape[0] else np.zeros((0, 2))
    names = [str(n) for n in class_names]
    present = sorted({int(k) for k in labels}) if labels is not None else []
    legend = [[k, names[k] if 0 <= k < len(names) else str(k)] for k in present if k >= 0][:MAX_LEGEND]
    plane_text = "their two principal axes" if dim > 2 else "their own axes"
    data = {
        "title": title or f"Latent Explorer: {config.preset or 'model'}",
        "about": about or (f"The {config.preset or 'model'}'s decoder, running in this page. The dots are "
                           f"{codes.shape[0]} test images' {dim}-number codes, drawn on {plane_text}; drag the "
                           "marker and the image shows what the decoder makes of that code."
                           + (" Choose the class to draw under the image." if config.conditional else "")),
        "latent_dim": dim,
        "image_shape": list(config.image_shape),
        "conditional": bool(config.conditional),
        "num_classes": int(config.num_classes) if config.conditional else 0,
        "class_names": names[: config.num_classes] if config.conditional else [],
        "layers": [{"inputs": int(w.shape[1]), "outputs": int(w.shape[0]), "weight": _b64(w), "bias": _b64(b),
                    "activation": act} for w, b, act in layers],
        "origin": [float(v) for v in origin],
        "axes": [[float(v) for v in row] for row in axes],
        "points_x": _b64(points[:, 0]),
        "points_y": _b64(points[:, 1]),
        "labels": [int(k) for k in labels] if labels is not None else None,
        "legend": legend,
        "extent": _extent(points, dim),
        # The marker starts amid the dots: at the mean code (the plane's origin for D > 2).
        "start": [float(v) for v in points.mean(axis=0)] if points.shape[0] else [0.0, 0.0],
    }
    # "<" escaped keeps "</script>" (say, in a class name) from ending the data block.
    text = json.dumps(data, ensure_ascii=True, allow_nan=False).replace("<", "\\u003c")
    return TEMPLATE.replace("@@TITLE@@", html.escape(data["title"])).replace("@@DATA@@", text)


def export_web(model: nn.Module, out: str | Path, codes: np.ndarray, labels: np.ndarray | None,
               class_names: Sequence[str] = (), title: str = "") -> Path:
    """Write the page to ``out`` (.html), atomically."""
    out = Path(out)
    if not out.name.lower().endswith(SUFFIXES):
        raise ExportError(f"{out.name or out}: the web page's name must end in .html")
    page = web_page(model, codes, labels, class_names, title)
    return write_text(out, lambda fh: fh.write(page))
