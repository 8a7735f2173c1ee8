"""``torch.export`` programs saved as .pt2 files.

A .pt2 runs in PyTorch code that does not have this package (``torch.export.load(path)
.module()(codes)``): the graph is made of torch's own operators, and the weights travel
inside the file. Loading one unpickles, so a .pt2 is for trusted use with the same torch
version that wrote it; the app itself writes them and never opens one.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from explorer.atomic import write_bytes
from explorer.export.common import check_targets, exporter_errors, failure, prepare, targets

SUFFIX = ".pt2"


def pt2_bytes(model: nn.Module, part: str) -> bytes:
    """The saved ExportedProgram of one part ("encoder" or "decoder")."""
    prepared = prepare(model, part)
    try:
        program = torch.export.export(prepared.module, prepared.args, dynamic_shapes=prepared.dynamic_shapes)
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
    except Exception as exc:
        if not exporter_errors(exc):
            raise
        raise failure(f"the {part} with torch.export", exc) from None
    return buffer.getvalue()


def export_pt2(model: nn.Module, part: str, out: str | Path) -> list[Path]:
    """Write ``part`` ("encoder", "decoder" or "both": see common.targets) as .pt2 files;
    the files written, each atomically."""
    files = targets(out, part, SUFFIX)
    check_targets(files)
    blobs = [(path, pt2_bytes(model, name)) for name, path in files]  # all traced before any is written
    return [write_bytes(path, data) for path, data in blobs]
