"""Progress of the long phases, one named bar at a time: meta-training, the selection and
evaluation students, `compare`'s students. Every student step ticks the bar of the phase
it belongs to (`l2t.engine.teaching.run_student`), so the ETA counts the work that is left. On a
terminal a tqdm bar; elsewhere (a log file, nohup, a scheduler, CI) a plain line every
`LINE_EVERY_S` seconds and at the end of a phase that printed one. None with
`progress=false`."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

LINE_EVERY_S = 30.0
_enabled = True
_active: Any = None  # the current phase's bar: a tqdm or Lines


class Lines:
    """Progress as plain lines on stderr (what a log keeps): phase, done/total, percent,
    elapsed, and the last figures set with `set_postfix`."""

    def __init__(self, name: str, total: int, unit: str, initial: int = 0) -> None:
        self.name, self.total, self.unit, self.n = name, total, unit, initial
        self.start = self.last = time.monotonic()
        self.postfix: dict[str, Any] = {}
        self.printed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= LINE_EVERY_S:
            self._line()

    def set_postfix(self, **figures: Any) -> None:
        self.postfix = {k: v for k, v in figures.items() if v is not None}

    def write(self, text: str) -> None:
        """A line of the phase's own (tqdm's `write`)."""
        print(text, file=sys.stderr, flush=True)

    def _line(self) -> None:
        self.last, self.printed = time.monotonic(), True
        elapsed = int(self.last - self.start)
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(
            f"{self.name}: {self.unit} {self.n}/{self.total}{share}, "
            f"{elapsed // 60}m{elapsed % 60:02d}s elapsed{extra}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        """A last line for a phase that printed any (a phase shorter than `LINE_EVERY_S`
        stays silent: short commands and tests keep one-line outputs)."""
        if self.printed or time.monotonic() - self.start >= LINE_EVERY_S:
            self._line()


def enable(on: bool) -> None:
    """Show bars (on a terminal) or never."""
    global _enabled
    _enabled = on


def bar(name: str, total: int, unit: str = "step", initial: int = 0) -> Any:
    """A bar for a phase that ticks itself (meta-training updates): tqdm on a terminal,
    plain lines elsewhere, nothing when disabled."""
    if _enabled and not sys.stderr.isatty():
        return Lines(name, total, unit, initial)
    return tqdm(
        total=total, initial=initial, desc=name, unit=unit, disable=None if _enabled else True
    )


@contextmanager
def phase(name: str, steps: int) -> Iterator[None]:
    """A phase of `steps` student steps; students trained inside it tick its bar."""
    global _active
    previous, _active = _active, bar(name, steps)
    try:
        yield
    finally:
        _active.close()
        _active = previous


def tick(steps: int) -> None:
    """`steps` student steps done in the current phase (if any)."""
    if _active is not None:
        _active.update(steps)
