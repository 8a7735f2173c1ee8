"""A film of a run's training timeline: the latent plane at every recorded epoch.

Each frame is drawn with Pillow and numpy alone (no Qt, so the CLI makes films on a server):
a dark background, the followed test points coloured by class (grey without labels), and
a caption with the epoch, step and test loss. With ``manifold`` the images the decoder of
that moment draws over a grid of the view lie under the points. The view's limits are fixed
for the whole film, from all frames' points, so the picture never jumps; the timeline's
planes are already Procrustes-aligned, so it never turns over either.

Films are encoded by maintained libraries, not here: GIF by Pillow, MP4 (H.264) by imageio
with its ffmpeg plugin. Both are written to memory and then atomically to the file.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from explorer.config import ModelConfig
from explorer.errors import UserError
from explorer.models.autoencoder import Autoencoder
from explorer.training.timeline import Timeline, TimelineFrame

FILM_SUFFIXES = (".gif", ".mp4")
MANIFOLD_GRID = 12
BACKGROUND = (24, 24, 28)
UNLABELLED = (170, 170, 170)
# matplotlib's tab10, the usual ten class colours; more classes repeat them.
PALETTE = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], dtype=np.uint8)
NO_TIMELINE = ("this checkpoint has no training timeline (trained before timelines existed, or with timeline off)")
_CAPTION = 34  # pixels of caption band at the top
_MARGIN = 8
_DISC = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy * dy + dx * dx <= 4]  # a 13-pixel dot


def film_limits(frames: list[TimelineFrame]) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) holding all frames' points (robustly: the 0.5th to 99.5th
    percentile, padded by 8%), square so both axes share one scale."""
    coords = np.concatenate([f.coords for f in frames]).astype(np.float64)
    low, high = np.percentile(coords, 0.5, axis=0), np.percentile(coords, 99.5, axis=0)
    centre = (low + high) / 2
    half = max(float((high - low).max()) / 2 * 1.08, 1e-3)
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: its small bitmap font
        return ImageFont.load_default()


def caption(frame: TimelineFrame, total_epochs: int | None = None) -> str:
    epochs = f"epoch {frame.epoch}" + (f"/{total_epochs}" if total_epochs else "")
    parts = [epochs, f"step {frame.global_step:,}"]
    if "test_loss" in frame.losses:
        parts.append(f"test loss {frame.losses['test_loss']:.2f}")
    return " \u00b7 ".join(parts)


def manifold_tiles(model: Autoencoder, frame: TimelineFrame, limits: tuple[float, float, float, float],
                   grid: int = MANIFOLD_GRID) -> np.ndarray:
    """(grid, grid, H, W, C) images in [0, 1] decoded by the frame's decoder over a grid of
    the view, row 0 at the top (largest y). ``model`` is a scratch model whose decoder this
    overwrites."""
    model.decoder.load_state_dict({k: v.float() for k, v in frame.decoder.items()})
    model.eval()
    x0, x1, y0, y1 = limits
    xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid
    ys = y1 - (np.arange(grid) + 0.5) * (y1 - y0) / grid
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    codes = torch.from_numpy(frame.lift(points))
    # A conditional decoder needs a class: the film shows class 0's images.
    labels = torch.zeros(codes.shape[0], dtype=torch.long) if model.is_conditional else None
    with torch.no_grad():
        images = model.decode(codes, labels).float().clamp(0, 1).numpy()  # (G*G, C, H, W)
    c, h, w = images.shape[1:]
    return images.transpose(0, 2, 3, 1).reshape(grid, grid, h, w, c)


def render_frame(frame: TimelineFrame, labels: np.ndarray | None, class_names: tuple[str, ...],
                 model_config: ModelConfig, manifold: bool, size: tuple[int, int] = (640, 640), *,
                 limits: tuple[float, float, float, float] | None = None, total_epochs: int | None = None,
                 model: Autoencoder | None = None) -> np.ndarray:
    """One film frame, (H, W, 3) uint8, of ``size`` (width, height). ``limits`` (from
    :func:`film_limits` over the whole film) default to this frame's own; ``model`` is a
    scratch model for the manifold (built from ``model_config`` when not given)."""
    width, height = int(size[0]), int(size[1])
    limits = limits if limits is not None else film_limits([frame])
    x0, x1, y0, y1 = limits
    side = max(min(width - 2 * _MARGIN, height - _CAPTION - _MARGIN), 16)
    left, top = (width - side) // 2, _CAPTION
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND

    if manifold and frame.decoder:
        model = model if model is not None else Autoencoder(model_config)
        tiles = manifold_tiles(model, frame, limits)
        mosaic = np.concatenate([np.concatenate(list(row), axis=1) for row in tiles], axis=0)
        if mosaic.shape[-1] == 1:
            mosaic = np.repeat(mosaic, 3, axis=-1)
        picture = Image.fromarray((mosaic * 255).round().astype(np.uint8)).resize((side, side), Image.BILINEAR)
        # Dimmed, so the points stay readable on top.
        canvas[top:top + side, left:left + side] = (np.asarray(picture, dtype=np.float32) * 0.55
                                                    + np.array(BACKGROUND) * 0.45).astype(np.uint8)

    coords = frame.coords.astype(np.float64)
    px = np.round(left + (coords[:, 0] - x0) / (x1 - x0) * (side - 1)).astype(np.int64)
    py = np.round(top + (y1 - coords[:, 1]) / (y1 - y0) * (side - 1)).astype(np.int64)
    if labels is not None and len(labels) == len(coords):
        colours = PALETTE[np.asarray(labels, dtype=np.int64) % len(PALETTE)]
    else:
        colours = np.broadcast_to(np.array(UNLABELLED, dtype=np.uint8), (len(coords), 3))
    for dy, dx in _DISC:
        yy, xx = py + dy, px + dx
        inside = (yy >= top) & (yy < top + side) & (xx >= left) & (xx < left + side)
        canvas[yy[inside], xx[inside]] = colours[inside]

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.rectangle([left - 1, top - 1, left + side, top + side], outline=(80, 80, 90))
    draw.text((_MARGIN + 2, 8), caption(frame, total_epochs), fill=(235, 235, 235), font=_font(18))
    if labels is not None and class_names and len(class_names) <= len(PALETTE):
        font, x = _font(12), width - _MARGIN
        for i in reversed(range(len(class_names))):
            name = class_names[i][:12]
            x -= int(draw.textlength(name, font=font)) + 10
            draw.text((x, 12), name, fill=tuple(int(v) for v in PALETTE[i]), font=font)
    return np.asarray(image).copy()


def film_frames(checkpoint: Any, manifold: bool = False, size: tuple[int, int] = (640, 640)) -> list[np.ndarray]:
    """One rendered frame per timeline frame of ``checkpoint`` (a training.checkpoint.Checkpoint)."""
    timeline: Timeline | None = getattr(checkpoint, "timeline", None)
    if timeline is None or not timeline.frames:
        raise UserError(NO_TIMELINE)
    limits = film_limits(timeline.frames)
    total = max(f.epoch for f in timeline.frames)
    model = Autoencoder(checkpoint.model_config) if manifold else None
    return [render_frame(f, timeline.labels, tuple(checkpoint.class_names), checkpoint.model_config, manifold,
                         size, limits=limits, total_epochs=total, model=model)
            for f in timeline.frames]


def check_film_path(path: str | Path) -> Path:
    """``path`` if it names a film this module writes (a .gif or .mp4), else one-line UserError."""
    path = Path(path)
    if path.suffix.lower() not in FILM_SUFFIXES:
        raise UserError(f"a film is written as .gif or .mp4, not {path.suffix or 'a name without a suffix'!r}")
    return path


def _even16(frame: np.ndarray) -> np.ndarray:
    """Padded (with the background) to sides that are multiples of 16, as H.264 wants."""
    h, w = frame.shape[:2]
    ph, pw = (-h) % 16, (-w) % 16
    if not ph and not pw:
        return frame
    out = np.empty((h + ph, w + pw, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    out[:h, :w] = frame
    return out


def encode_film(frames: list[np.ndarray], suffix: str, fps: float = 4) -> bytes:
    """The film's bytes: GIF through Pillow, MP4 through imageio's ffmpeg plugin."""
    if not frames:
        raise UserError("a film needs at least one frame")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 60):
        raise UserError(f"--fps must be a number above 0 and at most 60, not {fps!r}")
    suffix = suffix.lower()
    if suffix == ".gif":
        images = [Image.fromarray(np.ascontiguousarray(f[..., :3])) for f in frames]
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(int(round(1000 / fps)), 20), loop=0, optimize=False, disposal=1)
        return buffer.getvalue()
    if suffix == ".mp4":
        import imageio.v3 as iio

        stack = np.stack([_even16(np.ascontiguousarray(f[..., :3])) for f in frames])
        return iio.imwrite("<bytes>", stack, extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                           macro_block_size=16, pixelformat="yuv420p")
    raise UserError(f"a film is written as .gif or .mp4, not {suffix or 'a name without a suffix'!r}")


def write_film(frames: list[np.ndarray], path: str | Path, fps: float = 4) -> Path:
    """Write ``frames`` ((H, W, 3) uint8) as a film at ``path`` (.gif or .mp4), atomically."""
    from explorer.atomic import write_bytes

    path = check_film_path(path)
    return write_bytes(path, encode_film(frames, path.suffix, fps))


def export_film(checkpoint: Any, path: str | Path, fps: float = 4, manifold: bool = False,
                size: tuple[int, int] = (640, 640)) -> int:
    """The CLI's ``timeline`` command: check the name, render, write; returns the frame count."""
    path = check_film_path(path)
    frames = film_frames(checkpoint, manifold, size)
    write_film(frames, path, fps)
    return len(frames)
