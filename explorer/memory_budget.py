"""Memory as a budget: what a model, a checkpoint, a generate call or a training run will
allocate, estimated from its config before anything is allocated, and refused with one line
saying what to change when it is more than this machine has free.

The estimates are arithmetic on the config (no torch import, no model built), so the CLI and
the window can ask before building anything, and a hostile checkpoint's config costs nothing
to price. They follow the model classes in :mod:`explorer.models` layer by layer (the test
suite checks the weight count against real models for every preset) and count, per image,
the activations a forward pass keeps; they are estimates of the peak, not exact figures, and
err on the large side only by small factors.

Free memory is ``MemAvailable`` from ``/proc/meminfo`` (capped by a cgroup limit when there
is one), else ``sysconf`` pages; for a CUDA device, ``torch.cuda.mem_get_info``. Where it
cannot be found nothing is refused. ``LATENT_EXPLORER_FREE_MEMORY`` (bytes, or with a K, M,
G or T suffix, decimal; KiB, MiB, GiB binary) overrides it, for tests and for sharing a machine.

Qt-free and torch-free at import: the CLI may call it before loading torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from explorer.config import ModelConfig, stage_sizes
from explorer.display import with_article
from explorer.errors import UserError

FLOAT = 4  # bytes in a float32
ENV_FREE = "LATENT_EXPLORER_FREE_MEMORY"
# The batch a window view or an evaluate pass pushes through a model at once: opening a
# model must leave room for at least this (one-hot class inputs, activations, outputs).
VIEW_BATCH = 64
# What a budget leaves to everything else (the interpreter, torch's own pools, the window).
HEADROOM = 0.9


class MemoryBudgetError(UserError):
    """A request that would need more memory than this machine has free."""


# -- what the machine has ------------------------------------------------------------------


def _parse_size(text: str) -> int | None:
    """'20G' is 20e9 bytes, '20GiB' 20 * 1024**3, '5000000' bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", text.lower())
    if not match:
        return None
    power = " kmgt".index(match[2] or " ")
    return int(float(match[1]) * (1024 if match[3] else 1000) ** power)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as fh:
            text = fh.read(64 * 1024)
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match[1]) * 1024 if match else None


def _cgroup_available() -> int | None:
    """What a cgroup (v2 or v1) memory limit leaves, when this process runs under one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit_text = Path(limit_file).read_text()[:64].strip()
            usage_text = Path(usage_file).read_text()[:64].strip()
        except (OSError, ValueError):
            continue
        if not limit_text.isdigit() or not usage_text.isdigit():
            continue  # "max": no limit
        limit = int(limit_text)
        if limit >= 1 << 60:  # v1 writes "no limit" as a huge number
            continue
        return max(0, limit - int(usage_text))
    return None


def _sysconf_available() -> int | None:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
            pages = os.sysconf(name)
            if pages > 0 and page > 0:
                return int(pages) * int(page)
    except (AttributeError, ValueError, OSError):
        pass
    return None


def host_available() -> int | None:
    """Bytes of host memory free for this process, or None when it cannot be told."""
    override = os.environ.get(ENV_FREE)
    if override:
        parsed = _parse_size(override)
        if parsed is not None:
            return parsed
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if found:
        return min(found)
    return _sysconf_available()


def device_available(device: object = None) -> int | None:
    """Bytes free on ``device`` (a torch.device or its name): the host's for the CPU and
    for anything whose free memory torch cannot report (MPS shares the host's)."""
    kind = str(getattr(device, "type", device) or "cpu").split(":")[0]
    override = os.environ.get(ENV_FREE)
    if kind == "cuda" and not override:
        try:
            import torch

            if torch.cuda.is_available():
                free, _total = torch.cuda.mem_get_info(device if getattr(device, "type", None) else None)
                return int(free)
        except Exception:  # noqa: BLE001 - a driver that cannot say: fall back to the host's figure
            pass
    return host_available()


# -- what a model is made of ---------------------------------------------------------------



def _linear_stack(n_in: int, widths: Iterable[int]) -> tuple[int, list[int], int]:
    """(weights, the width of each layer's output, the width it ends on) of Linear+ReLU layers."""
    weights, outs = 0, []
    for n_out in widths:
        weights += n_in * n_out + n_out
        outs.append(n_out)
        n_in = n_out
    return weights, outs, n_in


def _plan(cfg: ModelConfig) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """(weight count, encoder steps, decoder steps), each step ``(width, workspace)`` per image.

    A step's width is one layer's output for one image (a ReLU's output counts again:
    autograd keeps both); its workspace is what computing it needs besides (the column
    buffer a convolution unfolds its input into, which the CPU kernels allocate for the
    whole batch). The encoder starts with the input and ends with the code's heads; the
    decoder starts with the code (and one-hot class) and ends with the logits.
    """
    classes = cfg.num_classes if cfg.conditional else 0
    c_img, h, w = cfg.image_shape
    image = c_img * h * w
    heads = 2 if cfg.variational else 1
    encoder = [(image + classes, 0)]
    decoder = [(cfg.latent_dim + classes, 0)]
    weights = 0

    def dense(outs: list[int]) -> list[tuple[int, int]]:
        return [(o, 0) for o in outs for _ in (0, 1)]

    if cfg.family == "conv":
        channels = list(cfg.conv_channels)
        sizes = stage_sizes(h, w, len(channels))
        c = c_img
        for ch, (sh, sw) in zip(channels, sizes[1:]):
            weights += c * ch * 9 + ch
            encoder += [(ch * sh * sw, c * 9 * sh * sw), (ch * sh * sw, 0)]
            c = ch
        n_flat = c * sizes[-1][0] * sizes[-1][1]
        stack_w, outs, feat = _linear_stack(n_flat + classes, cfg.hidden_dims)
        weights += stack_w
        encoder += [(n_flat + classes, 0)] + dense(outs)
        dec_w, dec_outs, width = _linear_stack(cfg.latent_dim + classes, reversed(cfg.hidden_dims))
        weights += dec_w + width * n_flat + n_flat
        decoder += dense(dec_outs) + dense([n_flat])
        outs_ch = list(reversed(channels[:-1])) + [c_img]
        c = channels[-1]
        for i, c_out in enumerate(outs_ch):
            ih, iw = sizes[len(channels) - i]
            th, tw = sizes[len(channels) - 1 - i]
            weights += c * c_out * 9 + c_out
            decoder.append((c_out * th * tw, c_out * 9 * ih * iw))
            if i < len(outs_ch) - 1:
                decoder.append((c_out * th * tw, 0))
            c = c_out
    else:
        stack_w, outs, feat = _linear_stack(image + classes, cfg.hidden_dims)
        weights += stack_w
        encoder += dense(outs)
        dec_w, dec_outs, width = _linear_stack(cfg.latent_dim + classes, reversed(cfg.hidden_dims))
        weights += dec_w + width * image + image
        decoder += dense(dec_outs) + [(image, 0)]
    weights += heads * (feat * cfg.latent_dim + cfg.latent_dim)
    encoder += [(cfg.latent_dim, 0)] * heads
    return weights, encoder, decoder


def weight_count(cfg: ModelConfig) -> int:
    """How many numbers the model's weights hold (every parameter, as torch counts them)."""
    return _plan(cfg)[0]


def model_bytes(cfg: ModelConfig) -> int:
    """The model's float32 weights."""
    return weight_count(cfg) * FLOAT


def _peak(steps: Sequence[tuple[int, int]]) -> int:
    """The most floats alive at once when layers run in turn without autograd: a layer's
    input, its output and its workspace (the inputs before it are freed)."""
    return max((a + b + work for (a, _), (b, work) in zip(steps, steps[1:])),
               default=sum(width for width, _ in steps))


def _total(steps: Sequence[tuple[int, int]]) -> int:
    return sum(width for width, _ in steps)


def _workspace(steps: Sequence[tuple[int, int]]) -> int:
    return max((work for _, work in steps), default=0)


def _image(cfg: ModelConfig) -> int:
    return cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]


def inference_bytes(cfg: ModelConfig, n: int) -> int:
    """The activations of one no-grad pass of ``n`` images through encoder and decoder,
    with the outputs as probabilities (logits and sigmoid side by side)."""
    _, encoder, decoder = _plan(cfg)
    image = _image(cfg)
    per_image = image + max(_peak(encoder), _peak(decoder) + image)
    return n * per_image * FLOAT


def generate_bytes(cfg: ModelConfig, n: int) -> int:
    """Drawing ``n`` images at once: the model, the code, the decoder's activations, and
    the logits and probabilities side by side."""
    _, _, decoder = _plan(cfg)
    per_image = max(_peak(decoder), 2 * _image(cfg)) + decoder[0][0]
    return model_bytes(cfg) + n * per_image * FLOAT


def open_bytes(cfg: ModelConfig, file_bytes: int = 0, batch: int = VIEW_BATCH) -> int:
    """Opening a checkpoint: the file's bytes (read whole, then parsed once more), the
    model's weights and one view-sized batch through it."""
    return 2 * file_bytes + model_bytes(cfg) + inference_bytes(cfg, batch)


def training_bytes(cfg: ModelConfig, data_shape: Sequence[int], batch_size: int,
                   data_on_device: bool = True) -> int:
    """A training run: the images (uint8) when they are to be copied to the device, the
    weights five times over (weights, gradients, Adam's two moments, the last good copy),
    and one batch's activations kept for the backward pass."""
    n = int(data_shape[0]) if data_shape else 0
    per_image_bytes = 1
    for d in data_shape[1:]:
        per_image_bytes *= int(d)
    batch = max(1, min(int(batch_size), n or int(batch_size)))
    _, encoder, decoder = _plan(cfg)
    # Kept for backward: every activation (a ReLU's output counted beside its input covers
    # the gradients alive at once); a convolution's column buffer; and the loss's per-pixel
    # terms (noise copy, target, elementwise loss). Measured: 1.0-1.7 times the real peak.
    per_image = (_total(encoder) + _total(decoder) + max(_workspace(encoder), _workspace(decoder))
                 + 3 * _image(cfg))
    data = n * per_image_bytes if data_on_device else 0
    return data + 5 * model_bytes(cfg) + batch * per_image * FLOAT


# -- refusing ------------------------------------------------------------------------------


def format_bytes(n: float) -> str:
    """'31 GB', '4.6 GB', '12 MB': decimal units, as a person reads a machine's memory."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{int(n)} bytes"


def _shape(cfg: ModelConfig) -> str:
    return "x".join(str(d) for d in cfg.image_shape)


# What to change, in the words of each front end: the CLI's flags, the window's fields.
WORDS = {
    "cli": {"model": "choose smaller --hidden sizes, a smaller --latent-dim or a smaller --model",
            "smaller model": "choose a smaller model (--hidden, --latent-dim, --model)",
            "fewer images": " or fewer images (--limit, --image-size)",
            "batch": "choose a smaller --batch-size", "n": "ask for fewer with --n"},
    "window": {"model": "choose smaller hidden sizes, a smaller latent size or a smaller model",
               "smaller model": "choose a smaller model (hidden sizes, latent size, preset)",
               "fewer images": " or fewer images (Limit, Image size)",
               "batch": "choose a smaller batch size", "n": "ask for fewer images"},
}


def _check(needed: int, what: str, hint: str, available: int | None, device: object = None) -> None:
    free = device_available(device) if available is None else available
    if free is None or needed <= free * HEADROOM:
        return
    where = "this machine" if str(getattr(device, "type", device) or "cpu").startswith(("cpu", "mps")) \
        else f"the {getattr(device, 'type', device)} device"
    raise MemoryBudgetError(f"{what} needs ~{format_bytes(needed)}; {where} has {format_bytes(free)} free: {hint}")


def check_model(cfg: ModelConfig, *, available: int | None = None, device: object = None,
                hint: str | None = None, ui: str = "cli") -> int:
    """Refuse building a model whose weights and one view-sized batch do not fit; returns
    the estimate in bytes. ``ui`` ("cli" or "window") picks the words of the advice;
    ``hint`` replaces it."""
    hint = WORDS[ui]["model"] if hint is None else hint
    needed = model_bytes(cfg) + inference_bytes(cfg, VIEW_BATCH)
    what = f"{with_article(cfg.preset or 'custom')} model of {weight_count(cfg):,} weights for {_shape(cfg)} images"
    _check(needed, what, hint, available, device)
    return needed


def check_open(cfg: ModelConfig, file_bytes: int = 0, *, available: int | None = None,
               hint: str = "open it on a machine with more memory, or it is not a checkpoint this app wrote") -> int:
    """Refuse opening a checkpoint whose model (at its config's image size and class
    count) would not fit; returns the estimate in bytes."""
    needed = open_bytes(cfg, file_bytes)
    classes = f" and {cfg.num_classes:,} classes" if cfg.conditional else ""
    _check(needed, f"opening a model for {_shape(cfg)} images{classes}", hint, available)
    return needed


def check_generate(cfg: ModelConfig, n: int, *, per_class: bool = False, available: int | None = None,
                   device: object = None, hint: str | None = None, ui: str = "cli") -> int:
    """Refuse drawing ``n`` images (``n`` per class with ``per_class``, as ``generate
    --folder`` does for a conditional model) when they do not fit; returns the estimate."""
    total = n * cfg.num_classes if per_class and cfg.conditional else n
    needed = generate_bytes(cfg, total)
    what = f"generating {total:,} images of {_shape(cfg)}"
    if total != n:
        what += f" ({n:,} for each of {cfg.num_classes:,} classes)"
    if hint is None:
        hint = WORDS[ui]["n"]
        fits = _largest(lambda k: generate_bytes(cfg, k * (cfg.num_classes if total != n else 1)),
                        device_available(device) if available is None else available)
        if fits is not None and fits >= 1:
            hint += f" (at most about {fits:,}{' per class' if total != n else ''})"
    _check(needed, what, hint, available, device)
    return needed


def check_training(cfg: ModelConfig, data_shape: Sequence[int], batch_size: int, *,
                   available: int | None = None, device: object = None, data_on_device: bool | None = None,
                   hint: str | None = None, ui: str = "cli") -> int:
    """Refuse a training run whose model, optimiser state, batch activations (and, on an
    accelerator, the images copied there) do not fit; returns the estimate.

    ``data_shape`` is (N, C, H, W) of the training images. On the CPU the images are
    already in memory when this is asked (``data_on_device`` False); pass True to count
    them too, as for a run whose data is not loaded yet.
    """
    kind = str(getattr(device, "type", device) or "cpu")
    on_device = (not kind.startswith("cpu")) if data_on_device is None else data_on_device
    needed = training_bytes(cfg, data_shape, batch_size, on_device)
    batch = max(1, min(int(batch_size), int(data_shape[0]) if data_shape else int(batch_size)))
    if hint is None:
        free = device_available(device) if available is None else available
        fixed = training_bytes(cfg, data_shape, 1, on_device)
        if free is not None and fixed > free * HEADROOM:
            hint = WORDS[ui]["smaller model"] + (WORDS[ui]["fewer images"] if on_device else "")
        else:
            fits = _largest(lambda b: training_bytes(cfg, data_shape, b, on_device), free)
            hint = WORDS[ui]["batch"] + (f" (at most about {fits:,})" if fits else "")
    what = f"training {with_article(cfg.preset or 'custom')} model on {_shape(cfg)} images in batches of {batch:,}"
    _check(needed, what, hint, available, device)
    return needed


def _largest(cost, free: int | None, limit: int = 10**12) -> int | None:
    """The largest k >= 1 with cost(k) within the budget (cost grows with k), or None."""
    if free is None:
        return None
    budget = free * HEADROOM
    if cost(1) > budget:
        return None
    lo, hi = 1, 2
    while hi < limit and cost(hi) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid)
    step = 10 ** max(0, len(str(lo)) - 2)  # two significant figures, rounded down: "1,900,000"
    return lo // step * step


__all__ = ["MemoryBudgetError", "check_generate", "check_model", "check_open", "check_training",
           "device_available", "format_bytes", "generate_bytes", "host_available", "inference_bytes",
           "model_bytes", "open_bytes", "training_bytes", "weight_count"]
