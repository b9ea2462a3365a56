"""Progress of the long phases, one named bar at a time: meta-training, the selection and
evaluation students, `compare`'s students. Every student step ticks the bar of the phase
it belongs to (`l2t.teaching.run_student`), so the ETA counts the work that is left. Quiet
when stderr is not a terminal (CI logs stay short) and with `progress=false`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

_enabled = True
_active: tqdm | None = None


def enable(on: bool) -> None:
    """Show bars (on a terminal) or never."""
    global _enabled
    _enabled = on


def bar(name: str, total: int, unit: str = "step", initial: int = 0) -> tqdm:
    """A bar for a phase that ticks itself (meta-training updates)."""
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
