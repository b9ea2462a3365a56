"""Compute threads per process, so several l2t processes on one machine do not collapse.

torch's OpenMP threads spin while they wait for each other. Two processes that each start one
thread per core spin against each other: on 2 cores a plain CE step went from 0.98 ms alone to
6–8 ms each (BENCHMARKS.md). With `threads=0` (the default) a process registers itself in a
per-user directory and uses its share of the cores (those not held by processes with a fixed
`threads=N`, split evenly among the automatic ones), re-checked at most once a second from
the training loops: a run started alone uses every core and gives some back when a second
one starts. `threads=N` (or `OMP_NUM_THREADS=N` in the environment) fixes N threads; sweep
workers get `cores // workers` each. docs/design.md §7.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import time
from pathlib import Path

import torch

RECHECK_S = 1.0  # how often a process looks for others (a listdir and a kill(pid, 0) each)

_registered: Path | None = None
_fixed = False
_last_check = 0.0


def cores() -> int:
    """The cores this process may run on (its CPU affinity, not the whole machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def registry() -> Path:
    """Where running l2t processes of this user leave a file named by their pid."""
    return Path(tempfile.gettempdir()) / f"l2t-processes-{os.getuid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _others() -> tuple[int, int]:
    """(threads held by processes with a fixed count, processes sharing automatically) among
    this user's running l2t processes, this one included; the files of processes that died
    without cleaning up are removed."""
    fixed, automatic = 0, 0
    for entry in registry().glob("*"):
        if not (entry.name.isdigit() and _alive(int(entry.name))):
            entry.unlink(missing_ok=True)
            continue
        held = entry.read_text().strip()
        if held.isdigit() and int(held) > 0:
            fixed += int(held)
        else:
            automatic += 1
    return fixed, max(1, automatic)


def share() -> int:
    """This process's share: the cores not held by fixed-count processes, split evenly."""
    fixed, automatic = _others()
    return max(1, (cores() - fixed) // automatic)


def configure(threads: int) -> int:
    """Use `threads` compute threads (> 0), or (0) `OMP_NUM_THREADS` when the environment
    sets it, else this process's share, kept current by `rebalance`. Either way the process
    is registered so that others count it. Returns the threads now in use."""
    global _registered, _last_check, _fixed
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if threads == 0 and omp.isdigit() and int(omp) > 0:
        threads = int(omp)
    if _registered is None:
        registry().mkdir(parents=True, exist_ok=True)
        _registered = registry() / str(os.getpid())
        atexit.register(_unregister)
    _fixed = threads > 0
    _registered.write_text(str(threads))
    _last_check = time.monotonic()
    torch.set_num_threads(threads if _fixed else share())
    return torch.get_num_threads()


def rebalance() -> None:
    """Called once per teacher step: adopt the current share if it changed (auto mode only)."""
    global _last_check
    if _registered is None or _fixed or time.monotonic() - _last_check < RECHECK_S:
        return
    _last_check = time.monotonic()
    wanted = share()
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)


def _unregister() -> None:
    global _registered
    if _registered is not None:
        _registered.unlink(missing_ok=True)
        _registered = None
