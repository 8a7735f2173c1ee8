"""A film of a run's training timeline: the latent plane at every recorded epoch.

Each frame is drawn with Pillow and numpy alone (no Qt, so the CLI makes films on a server):
a dark background, the followed test points coloured by class (grey without labels), and
a caption with the epoch, step and test loss. With ``manifold`` the images the decoder of
that moment draws over a grid of the view lie under the points. The view's limits are fixed
for the whole film, from every frame's bulk (the timeline's ``extent``, found on load), so
the picture never jumps; the timeline's planes are already Procrustes-aligned, so it never
turns over either.

Films stream: frames are rendered one at a time (:func:`film_frames` is a generator) and
each goes to the encoder as it comes, so memory stays at about one frame whatever the
film's length (a valid 10,000-frame timeline rendered into a list took 5.3 GB and failed).
The encoding is done by maintained libraries, not here: GIF by Pillow (its GIF writer's
header and frame functions, one frame at a time; ``save_all`` would keep every frame until
the end), MP4 (H.264) by imageio-ffmpeg's frame writer, which pipes each frame to ffmpeg.
Both reach the file atomically (explorer.atomic): a failure or Ctrl+C leaves no film and
no temporary file, and any earlier file as it was.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import GifImagePlugin, Image, ImageDraw, ImageFont

from explorer import cancellation
from explorer.config import ModelConfig
from explorer.display import one_line
from explorer.errors import UserError
from explorer.models.autoencoder import Autoencoder
from explorer.models.registry import build_model
from explorer.training.timeline import Timeline, TimelineFrame, widest

FILM_SUFFIXES = (".gif", ".mp4")
MANIFOLD_GRID = 12
BACKGROUND = (24, 24, 28)
UNLABELLED = (170, 170, 170)
# matplotlib's tab10, the usual ten class colours; more classes repeat them.
PALETTE = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], dtype=np.uint8)
NO_TIMELINE = "this checkpoint has no training timeline (trained before timelines existed, or with timeline off)"
DAMAGED_TIMELINE = "this checkpoint has no training timeline to film: {note}; a new run records one"
_CAPTION = 34  # pixels of caption band at the top
_MARGIN = 8
_DISC = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy * dy + dx * dx <= 4]  # a 13-pixel dot


def film_limits(frames: Sequence[TimelineFrame]) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) holding all frames' points (robustly: each frame's 0.5th to 99.5th
    percentile, the widest, padded by 8%), square so both axes share one scale."""
    return limits_of(widest(np.stack([f.bulk for f in frames])))


def limits_of(extent: np.ndarray) -> tuple[float, float, float, float]:
    """:func:`film_limits` of a timeline's ``extent`` ((2, 2): rows low and high), which the
    timeline already keeps, so a film never gathers every frame's points at once."""
    low, high = np.asarray(extent[0], dtype=np.float64), np.asarray(extent[1], dtype=np.float64)
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
        model = model if model is not None else build_model(model_config, check=False)
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


def no_timeline_message(checkpoint: Any) -> str:
    """Why ``checkpoint`` has no timeline to film: damaged and dropped (the loader's note,
    which says why), or never recorded."""
    from explorer.training.checkpoint import TIMELINE_DAMAGED_NOTE

    if not getattr(checkpoint, "timeline_damaged", False):
        return NO_TIMELINE
    opening = TIMELINE_DAMAGED_NOTE.split("{")[0]
    note = next((n for n in getattr(checkpoint, "notes", ()) if n.startswith(opening)),
                TIMELINE_DAMAGED_NOTE.format(why="it failed its checks"))
    return DAMAGED_TIMELINE.format(note=note)


def film_frames(checkpoint: Any, manifold: bool = False, size: tuple[int, int] = (640, 640)) -> Iterator[np.ndarray]:
    """The rendered frames of ``checkpoint``'s timeline (a training.checkpoint.Checkpoint),
    one per timeline frame, each rendered only when asked for: a film of any length holds
    one at a time. A checkpoint without a timeline is refused now (UserError), not at the
    first frame. Inside a background task, a cancel stops it between frames."""
    timeline: Timeline | None = getattr(checkpoint, "timeline", None)
    if timeline is None or not timeline.frames:
        raise UserError(no_timeline_message(checkpoint))
    frames = list(timeline.frames)  # the frames as they are now (a live run may add more)
    extent = timeline.extent
    limits = limits_of(extent) if extent is not None else film_limits(frames)
    total = max(f.epoch for f in frames)
    labels, names, config = timeline.labels, tuple(checkpoint.class_names), checkpoint.model_config
    model = build_model(config, check=False) if manifold else None

    def render() -> Iterator[np.ndarray]:
        for frame in frames:
            cancellation.check()
            yield render_frame(frame, labels, names, config, manifold, size, limits=limits, total_epochs=total,
                               model=model)

    return render()


def check_film_path(path: str | Path) -> Path:
    """``path`` if it names a film this module writes (a .gif or .mp4), else one-line UserError;
    a folder (or a name ending in a slash) is called a folder, not a name without a suffix."""
    text = str(path)
    path = Path(path)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise UserError(f"{one_line(text)} is a folder; a film is written to a file named .gif or .mp4")
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


def _check_fps(fps: float) -> None:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 60):
        raise UserError(f"--fps must be a number above 0 and at most 60, not {fps!r}")


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)[..., :3])


def write_gif(frames: Iterable[np.ndarray], fh: IO[bytes], fps: float = 4) -> int:
    """Encode ``frames`` ((H, W, 3) uint8) into ``fh`` as a looping GIF, each frame as it
    comes (its own adaptive palette, as Pillow's ``save_all`` gives it), holding one at a
    time; returns how many were written."""
    duration = max(int(round(1000 / fps)), 20)
    count = 0
    for frame in frames:
        image = Image.fromarray(_rgb(frame)).convert("P", palette=Image.Palette.ADAPTIVE)
        if count == 0:  # the screen, the first palette and the loop, from the first frame
            header, _ = GifImagePlugin.getheader(image, info={"loop": 0, "duration": duration})
            chunks = [*header, *GifImagePlugin.getdata(image, duration=duration, disposal=1)]
        else:  # later frames carry their own palette
            chunks = GifImagePlugin.getdata(image, duration=duration, disposal=1, include_color_table=True)
        for chunk in chunks:
            fh.write(chunk)
        count += 1
        del frame, image, chunks
    if count:
        fh.write(b";")  # the GIF trailer
    return count


def write_mp4(frames: Iterable[np.ndarray], name: str | Path, fps: float = 4) -> int:
    """Encode ``frames`` as H.264 MP4 at the file ``name`` through imageio-ffmpeg, piping
    each frame to ffmpeg as it comes; returns how many were written. ffmpeg needs a file it
    can seek in (an MP4's index is written last, at the front), so the caller gives it a
    scratch file beside the target and copies the finished film into place atomically."""
    import imageio_ffmpeg

    writer = None
    count = 0
    try:
        for frame in frames:
            padded = _even16(_rgb(frame))
            if writer is None:
                height, width = padded.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(name), (width, height), fps=fps, codec="libx264", macro_block_size=16,
                    pix_fmt_out="yuv420p", ffmpeg_log_level="quiet", output_params=["-f", "mp4"])
                writer.send(None)  # start ffmpeg
            elif padded.shape[:2] != (height, width):
                raise UserError(f"film frames differ in size ({padded.shape[1]}x{padded.shape[0]} after "
                                f"{width}x{height})")
            writer.send(padded)
            count += 1
            del frame, padded
    finally:
        if writer is not None:
            writer.close()  # ffmpeg finishes the file (or, after Ctrl+C, is killed)
    return count


def _write(frames: Iterable[np.ndarray], path: Path, fps: float) -> int:
    """Stream ``frames`` into the film at ``path`` atomically; the frame count."""
    from explorer.atomic import TEMP_SUFFIX, WriteError, atomic_write, reason, temp_prefix

    _check_fps(fps)
    written = [0]
    if path.suffix.lower() == ".gif":
        def write(fh: IO[bytes]) -> None:
            written[0] = write_gif(frames, fh, fps)
            if not written[0]:
                raise UserError("a film needs at least one frame")

        atomic_write(path, write)
        return written[0]
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, scratch = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise WriteError(f"could not write {path}: {reason(exc)}; nothing was written") from None
    os.close(fd)
    try:
        try:
            written[0] = write_mp4(frames, scratch, fps)
        except OSError as exc:  # ffmpeg stopped taking frames (a full disk, a killed process)
            raise WriteError(f"could not write {path}: the video encoder stopped "
                             f"({one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)})") from None
        if not written[0]:
            raise UserError("a film needs at least one frame")

        def copy(fh: IO[bytes]) -> None:
            with open(scratch, "rb") as source:
                shutil.copyfileobj(source, fh, 1024**2)

        atomic_write(path, copy)
    finally:
        try:
            os.unlink(scratch)
        except OSError:
            pass
    return written[0]


def write_film(frames: Iterable[np.ndarray], path: str | Path, fps: float = 4) -> Path:
    """Write ``frames`` ((H, W, 3) uint8; any iterable, consumed one at a time) as a film at
    ``path`` (.gif or .mp4), atomically."""
    path = check_film_path(path)
    _write(frames, path, fps)
    return path


def export_film(checkpoint: Any, path: str | Path, fps: float = 4, manifold: bool = False,
                size: tuple[int, int] = (640, 640)) -> int:
    """The CLI's ``timeline`` command and the window's Training film: check the name and the
    rate, then render and write frame by frame; returns the frame count."""
    path = check_film_path(path)
    _check_fps(fps)
    return _write(film_frames(checkpoint, manifold, size), path, fps)
