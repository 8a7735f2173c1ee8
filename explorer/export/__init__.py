"""Models other tools run: ONNX files, ``torch.export`` programs (.pt2) and a web page.

A checkpoint only opens in this app; these formats let a trained decoder (or encoder) live
on without it: ONNX for onnxruntime and every framework that reads it, .pt2 for PyTorch
code that does not have this package, and one HTML file for a person who has no Python at
all. Every exported part keeps the app's contract:

- a decoder takes codes ``(N, latent_dim)`` (and, for a conditional model, a one-hot class
  vector ``(N, num_classes)`` as a second input) and returns images in [0, 1], shaped
  ``(N, C, H, W)``, as ``decode`` does;
- an encoder takes images in [0, 1] ``(N, C, H, W)`` (and the one-hot class) and returns the
  mean code, plus the log-variance as a second output for the VAE family.

This package imports neither Qt nor torch at import time (the CLI reads the names below
while it builds its parser); each format is a module of its own, loaded when used.
"""

from __future__ import annotations

FORMATS = ("onnx", "pt2", "web")
# The one suffix each format's file has: the CLI and the window pick the format by it.
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "web": ".html"}
PARTS = ("encoder", "decoder", "both")
# What one --part asks for when none is given: both parts where a format can hold them,
# the decoder alone for the web page (the page runs a decoder, nothing else).
DEFAULT_PART = {"onnx": "both", "pt2": "both", "web": "decoder"}
INSTALL_HINT = "pip install 'latent-explorer[export]'"

__all__ = ["DEFAULT_PART", "FORMATS", "INSTALL_HINT", "PARTS", "SUFFIXES", "export_model", "format_for_suffix"]


def format_for_suffix(name: str) -> str | None:
    """The format a file name asks for by its suffix (``.htm`` too), or None."""
    lower = name.lower()
    if lower.endswith(".htm"):
        return "web"
    for fmt, suffix in SUFFIXES.items():
        if lower.endswith(suffix):
            return fmt
    return None


def export_model(model, fmt: str, part: str | None, out, *, codes=None, labels=None,
                 class_names: tuple[str, ...] = (), title: str = "") -> list:
    """Write ``model``'s ``part`` in format ``fmt`` to ``out``; the files written.

    ``codes`` and ``labels`` (numpy) are the web page's dots (the first test codes); the
    other formats ignore them. Errors are ``ExportError`` (a UserError), one line each.
    """
    from explorer.export.common import ExportError, check_exportable

    check_exportable(model)
    part = part or DEFAULT_PART.get(fmt, "both")
    if fmt == "onnx":
        from explorer.export.onnx import export_onnx

        return export_onnx(model, part, out)
    if fmt == "pt2":
        from explorer.export.pt2 import export_pt2

        return export_pt2(model, part, out)
    if fmt == "web":
        import numpy as np

        from explorer.export.web import export_web

        if part != "decoder":
            raise ExportError("the web page runs the decoder only; use --part decoder (the default for web)")
        if codes is None:
            codes = np.zeros((0, model.config.latent_dim), dtype=np.float32)
        return [export_web(model, out, codes, labels, class_names, title)]
    raise ExportError(f"the format must be one of {', '.join(FORMATS)}, not {fmt!r}")
