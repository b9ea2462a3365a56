"""One writer per run directory (docs/design.md §7): a lock file taken atomically before a
command writes into a directory and removed on every exit path.

A second writer (a resume started while the run still runs, a sweep trial launched twice)
gets one line naming the holder and writes nothing. A lock whose process is gone — it was
SIGKILLed on this host — is taken over with a note; a lock from another host (a shared
filesystem) cannot be checked from here, and the message says how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from l2t.config import ConfigError
from l2t.io import out_dir

LOCK_NAME = ".lock"


def _birth(pid: int) -> str | None:
    """When process `pid` started (Linux: clock ticks since boot, /proc/PID/stat field 22),
    or None where that cannot be read: with the pid it names one process, never a later
    one that reuses the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # the fields after the command's name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(path: Path) -> dict[str, object] | None:
    """The lock's content, or None if it vanished or is not a lock l2t wrote (yet: a
    writer fills it right after creating it)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not str(data.get("pid", "")).isdigit():
        return None
    return data


def _take(path: Path) -> bool:
    """Create the lock file atomically; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%c")}
    birth = _birth(os.getpid())
    if birth is not None:
        me["birth"] = birth
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    return True


def acquire(run_dir: Path) -> Path:
    """Lock `run_dir` (which must exist) for this process, or raise a one-line ConfigError."""
    path = run_dir / LOCK_NAME
    for _ in range(3):  # a stale lock may be taken over by a racing process first
        if _take(path):
            return path
        holder = _holder(path)
        if holder is None:
            time.sleep(0.1)
            continue
        pid, host = int(str(holder.get("pid", -1))), str(holder.get("host", "?"))
        if host == socket.gethostname() and pid == os.getpid():
            raise ConfigError(f"'{run_dir}' is already locked by this process")
        here = host == socket.gethostname()
        reused = here and "birth" in holder and _birth(pid) not in (None, holder["birth"])
        if here and (not _alive(pid) or reused):
            gone = "a later process reuses its number" if reused else "which is gone"
            print(
                f"l2t: taking over the lock of '{run_dir}' from pid {pid} ({gone})",
                file=sys.stderr,
            )
            path.unlink(missing_ok=True)
            continue
        where = f"pid {pid} on {host}, since {holder.get('started', '?')}"
        if host != socket.gethostname():
            hint = f"if that process is gone, delete '{path}' and run again"
        else:
            hint = "wait for it to finish, or stop it first (Ctrl-C / kill keeps its checkpoint)"
        raise ConfigError(f"'{run_dir}' is being written by another l2t ({where}); {hint}")
    if path.is_file():  # unreadable every time: a kill between its creation and its write
        raise ConfigError(
            f"'{path}' is not a lock l2t wrote (damaged, or written by something else); if no "
            f"l2t is writing '{run_dir}', delete that file and run again"
        )
    raise ConfigError(f"could not lock '{run_dir}': its lock keeps changing hands")


def release(path: Path) -> None:
    """Remove the lock if it is still this process's."""
    holder = _holder(path)
    if holder is not None and holder.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextmanager
def locked(run_dir: Path, kind: str, enabled: bool = True) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block, the directory marked as `kind`'s run (refused in
    one line if it holds anything else, `l2t/io/out_dir.py`; created if missing, and removed
    again if the block left nothing in it); `enabled=False` (the non-zero ranks of a
    torchrun run, which write nothing there) takes none."""
    if not enabled:
        yield
        return
    out_dir.check(run_dir, kind)
    created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # deepest first
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        path = acquire(run_dir)
    except ConfigError:
        _remove_empty(created)
        raise
    try:
        out_dir.mark(run_dir, kind)
        yield
    finally:
        release(path)
        out_dir.unmark_if_bare(run_dir)
        _remove_empty(created)  # refused input: nothing left behind


def _remove_empty(created: list[Path]) -> None:
    """Remove the directories `locked` created, deepest first, while they are empty."""
    for directory in created:
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
