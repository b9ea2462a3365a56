"""Device selection: `device=auto` takes CUDA when present, the CPU otherwise."""

from __future__ import annotations

import torch

from l2t.config import ConfigError


def resolve_device(name: str) -> torch.device:
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
