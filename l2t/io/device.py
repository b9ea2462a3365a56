"""Device selection: `device=auto` takes CUDA when present, the CPU otherwise; on CUDA,
matrix products and convolutions in TF32 unless `tf32=false` (Ampere and later: ~8x the
float32 throughput for a 10-bit mantissa in the products, float32 accumulation)."""

from __future__ import annotations

import torch

from l2t.config import ConfigError


def resolve_device(name: str, tf32: bool = True) -> torch.device:
    device = _device(name)
    if device.type == "cuda":  # process-wide settings; they touch nothing on the CPU
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return device


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device '{name}' is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device '{name}' asked for CUDA, but this machine has none; use auto or cpu"
        )
    return device
