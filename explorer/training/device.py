"""Choosing the device: ``auto`` means CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from explorer.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("no CUDA GPU is available here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("Apple's MPS is not available here; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 matrix products beat float32 here: CPUs with AVX512-BF16 or AMX
    (oneDNN kernels, about 3x on the MLP VAE's layers) and CUDA GPUs that support it."""
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return False


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        if device.type == "mps":
            raise ConfigError("bf16 training is not supported on Apple's MPS here; use fp32")
        return True
    return precision == "auto" and bf16_is_fast(device)


def use_compile(mode: str, device: torch.device) -> bool:
    """Whether to run the training step through ``torch.compile``. On CUDA it pays within
    the first epoch; on the CPU the first compile (about 6 s cold, 2 s from the cache) pays
    back only after tens of epochs, so there it happens only when asked for."""
    if mode == "on":
        return True
    return mode == "auto" and device.type == "cuda"


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
