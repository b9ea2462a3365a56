"""What a command may write into (issue 35, docs/design.md §7): a new or empty directory, or
its own run of the same kind. A command marks the directory it writes (`.l2t`, holding the
command's name) as soon as it holds its lock; a directory of anything else — a user's own
files, another command's run — is refused in one line and left as it was. Runs written
before the mark existed are known by the file each command writes (`LEGACY`)."""

from __future__ import annotations

from pathlib import Path

from l2t.config import ConfigError
from l2t.io.checkpoint import atomic_write_text

MARK = ".l2t"
LEGACY = (  # the files that say which command wrote a directory, most telling first
    (("checkpoint.pt",), "train-teacher"),
    (("model.pt", "summary.json"), "train-model"),
    (("results.md", "results.json"), "compare"),
    (("sweep.yaml", "sweep_results.md"), "sweep"),
    (("summary.json", "config.yaml", "plots"), "teach"),
)
OWN = {MARK, ".lock"}  # l2t's own bookkeeping: a directory holding only these is empty
SHOWN = 3  # names of foreign files the refusal lists


def kind_of(directory: Path) -> str | None:
    """The command whose run `directory` holds, or None."""
    mark = directory / MARK
    if mark.is_file():
        return mark.read_text(errors="replace").strip()[:40] or None
    for names, kind in LEGACY:
        if all((directory / name).exists() for name in names):
            return kind
    return None


def check(directory: Path, kind: str) -> None:
    """Refuse, in one line, a `directory` that is neither new, nor empty, nor `kind`'s own."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"out='{directory}' is a file; {kind} writes a directory")
    if not directory.is_dir():
        return
    others = sorted(p.name for p in directory.iterdir() if p.name not in OWN)
    found = kind_of(directory)
    if not others or found == kind:
        return
    if found:
        what = f"a {found} run"
    else:
        listed = ", ".join(others[:SHOWN]) + (", ..." if len(others) > SHOWN else "")
        what = f"files l2t did not write ({listed})"
    raise ConfigError(
        f"'{directory}' holds {what}; {kind} writes only into a new or empty directory or a "
        "run of its own: choose another out=DIR"
    )


def mark(directory: Path, kind: str) -> None:
    """Say in `directory` that `kind` writes it (checked first)."""
    check(directory, kind)
    atomic_write_text(kind + "\n", directory / MARK)


def unmark_if_bare(directory: Path) -> None:
    """Remove the mark of a directory that holds nothing else (a command refused before it
    wrote anything), so the directory can go too."""
    if directory.is_dir() and {p.name for p in directory.iterdir()} <= OWN:
        (directory / MARK).unlink(missing_ok=True)
