"""Plots to PNG files, with failures reported (pyqtgraph's exporter ignores a failed save)."""

from __future__ import annotations

from explorer.errors import UserError


def export_plot_png(plot_item, path: str, width: int) -> None:
    from pyqtgraph.exporters import ImageExporter

    exporter = ImageExporter(plot_item)
    exporter.parameters()["width"] = width
    image = exporter.export(toBytes=True)
    if image is None or not image.save(str(path), "PNG"):
        raise UserError(f"could not write {path}: check that the folder exists and can be written")
