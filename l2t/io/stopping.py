"""Stopping at a safe point on SIGTERM (a scheduler pre-empting the job) or Ctrl-C.

Outside a `safe_points()` block a stop signal interrupts at once (KeyboardInterrupt): what
runs there (selection, evaluation, `compare`) is redone or rerun. Inside one, the loop
finishes the teacher update in hand, writes a checkpoint and then stops (`requested()`), so
no finished update is lost. A second signal interrupts at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_deferring = False
_requested = False
_signal: int | None = None  # the signal that asked for the stop


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _requested, _signal
    _signal = signum
    if _deferring and not _requested:
        _requested = True
        return
    raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """SIGTERM and SIGINT stop the process through `_on_signal` (the CLI's whole run)."""
    global _requested, _signal
    _requested, _signal = False, None
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def safe_points() -> Iterator[None]:
    """A loop that checks `requested()` between units of work and stops cleanly there."""
    global _deferring
    before, _deferring = _deferring, True
    try:
        yield
    finally:
        _deferring = before


def requested() -> bool:
    return _requested


def exit_code() -> int:
    """What a stopped command exits with, as Unix tools do: 128 + the signal (130 after
    Ctrl-C, 143 after SIGTERM), so `&&` chains and schedulers see a pre-empted job."""
    return 128 + (_signal or signal.SIGINT)
