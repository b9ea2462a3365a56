"""Files that must never be half-written (write to a temporary file, then rename), and that
are read back as data, never as code."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from l2t.config import ConfigError


def atomic_save(obj: Any, path: str | Path) -> None:
    """`torch.save` that leaves either the old file or the complete new one, never a torn one
    (written beside it, flushed to the disk, then renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            try:
                torch.save(obj, f)
            except RuntimeError as exc:  # torch reports a full disk as a RuntimeError
                raise OSError(errno.EIO, _first_line(exc), str(path)) from None
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, an I/O error, a stop: the old file stays as it was
        tmp.unlink(missing_ok=True)
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def atomic_write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finite_json(obj: Any) -> Any:
    """`obj` with every non-finite float as None: JSON has no NaN or Infinity, and readers
    other than Python's reject them (a diverged student's loss is NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def to_json(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of `obj` (non-finite floats as null)."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def atomic_write_json(obj: Any, path: str | Path) -> None:
    atomic_write_text(to_json(obj, indent=2) + "\n", path)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> Any:
    """`torch.load` with `weights_only=True`: tensors, numbers, strings and containers only,
    so a file that would run code when unpickled is refused, not run. A refused, damaged
    or foreign file is one clear error (exit 2 from the CLI)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"'{path}' is not a file l2t wrote, or it is damaged ({reason[:120]}); "
            "l2t reads checkpoints as data only"
        ) from None


Fields = dict[str, type | tuple[type, ...]]  # a file's keys and the types they must hold


def expect(data: Any, path: str | Path, what: str, fields: Fields) -> Any:
    """`data` if it is a dict holding `fields` of those types (the file's format: what
    each reader uses), else one clear line naming the file and what it is not."""
    if not isinstance(data, dict):
        raise ConfigError(f"'{path}' is not {what} (it holds a {type(data).__name__})")
    for key, kind in fields.items():
        if key not in data:
            raise ConfigError(f"'{path}' is not {what} (no '{key}')")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            got = type(data[key]).__name__
            raise ConfigError(f"'{path}' is not {what} ('{key}' is a {got})")
    return data
