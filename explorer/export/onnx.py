"""ONNX files through torch's current exporter (``torch.onnx.export(..., dynamo=True)``).

One file per part with the weights inside it (no external-data sidecar that gets lost
when the file is copied alone), and a dynamic batch dimension, so onnxruntime, browsers'
ONNX runtimes and other frameworks run it on any number of codes or images. The exporter
needs the packages onnx and onnxscript, which the app itself does not: they are the
``export`` extra.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from explorer.atomic import write_bytes
from explorer.export import INSTALL_HINT
from explorer.export.common import ExportError, check_targets, exporter_errors, failure, prepare, targets

SUFFIX = ".onnx"
NEEDS = ("onnx", "onnxscript")
MAX_FILE = 2 * 1024**3  # protobuf's limit on one message: past it ONNX needs external data


def _version(text: str) -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def require_packages() -> None:
    """Say in one line which packages to install, before any work starts."""
    if _version(torch.__version__) < (2, 6):  # the dynamo exporter with external_data=False
        raise ExportError(f"exporting to ONNX needs torch 2.6 or newer (this is {torch.__version__}); "
                          "export as pt2, or upgrade torch")
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"exporting to ONNX needs the package{'s' if len(missing) > 1 else ''} "
                          f"{' and '.join(missing)}: {INSTALL_HINT}")


def onnx_bytes(model: nn.Module, part: str) -> bytes:
    """The serialised ONNX model of one part ("encoder" or "decoder")."""
    prepared = prepare(model, part)
    try:
        with warnings.catch_warnings():
            # The exporter warns about things that do not matter here (two inputs sharing
            # the one batch dimension name, deprecations in its own dependencies).
            warnings.simplefilter("ignore")
            program = torch.onnx.export(prepared.module, prepared.args, dynamo=True, external_data=False,
                                        dynamic_shapes=prepared.dynamic_shapes,
                                        input_names=list(prepared.input_names),
                                        output_names=list(prepared.output_names), verbose=False)
            proto = program.model_proto
    except Exception as exc:
        if not exporter_errors(exc):
            raise
        raise failure(f"the {part} as ONNX", exc) from None
    if proto.ByteSize() >= MAX_FILE:
        raise ExportError(f"the {part} is over ONNX's 2 GB limit for one file; export it as pt2 instead")
    return proto.SerializeToString()


def export_onnx(model: nn.Module, part: str, out: str | Path) -> list[Path]:
    """Write ``part`` ("encoder", "decoder" or "both": see common.targets) as ONNX; the
    files written, each atomically."""
    require_packages()
    files = targets(out, part, SUFFIX)
    check_targets(files)
    blobs = [(path, onnx_bytes(model, name)) for name, path in files]  # all traced before any is written
    return [write_bytes(path, data) for path, data in blobs]
