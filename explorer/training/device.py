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


# Steps a CPU run must plan before ``auto`` compiles its MLP step: the compiled vae step saves
# about 1.1 ms a step at batch 128 (2.1 against 3.3 ms in the loop), and the compile costs
# about 1.6 s with inductor's on-disk graph cache warm (4-8 s the first time on a machine),
# so it pays from about 1,400 steps warm; 2,000 leaves room for the first compile. A 5-epoch
# MNIST run (2,340 steps) compiles, shorter runs (and the tests') stay eager.
CPU_COMPILE_MIN_STEPS = 2000


def use_compile(mode: str, device: torch.device, family: str = "", planned_steps: int = 0) -> bool:
    """Whether to run the training step through ``torch.compile``. On CUDA it pays within
    the first epoch. On the CPU the whole compiled step (forward, backward and Adam, see
    ``training/compiled.py``) pays for MLP-family runs of ``CPU_COMPILE_MIN_STEPS`` steps or
    more. Conv models compile only when asked: their whole compiled step was 5-10% faster
    than eager (conv-vae, 28x28, batch 128: about 14 ms against 15-16), which a compile of
    5-14 s does not repay in a default run."""
    if mode == "on":
        return True
    if mode != "auto":
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and family == "mlp" and planned_steps >= CPU_COMPILE_MIN_STEPS


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
