"""Metrics: `metrics.jsonl` in the run directory is the source of truth; wandb (optional,
off by default) mirrors it. A missing or failing wandb never stops or loses a run."""

from __future__ import annotations

import json
import netrc
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from l2t.config import ConfigError, WandbConfig
from l2t.io.checkpoint import to_json


def wandb_credentials() -> bool:
    """Whether wandb could log in without asking: an API key in the environment or netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> Literal["online", "offline", "disabled"]:
    """`online`, `offline` or `disabled`: WANDB_MODE when set, else online only where
    credentials exist (so a machine without them never blocks on a login prompt)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun"):
        return "offline"
    if mode == "disabled":
        return "disabled"
    return "online" if wandb_credentials() else "offline"


class Tracker:
    def __init__(
        self,
        run_dir: Path | None,
        wandb: WandbConfig | None = None,
        config: dict[str, Any] | None = None,
        keep_lines: int | None = None,
    ) -> None:
        """`wandb`: mirror the lines to W&B with these settings and the run's `config` (None:
        tracking off). `keep_lines`: on resume, drop the lines written after the checkpoint.
        Without a `run_dir` (processes other than rank 0) it only counts the lines."""
        self.lines = keep_lines or 0
        self.file: Any = None
        self.wandb: Any = None
        if run_dir is None:
            return
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        lines = [] if keep_lines is None else self._kept(keep_lines)
        self.path.write_text("".join(lines))
        self.lines = len(lines)
        self.file = self.path.open("a")
        if wandb is not None:
            self._start_wandb(run_dir, wandb, config or {})

    def _start_wandb(self, run_dir: Path, settings: WandbConfig, config: dict[str, Any]) -> None:
        mode = wandb_mode()
        if mode == "offline" and "WANDB_MODE" not in os.environ:
            print(
                f"note: no W&B credentials; wandb logs offline under {run_dir}/wandb "
                "(upload later with `wandb sync`)",
                file=sys.stderr,
            )
        id_file = run_dir / "wandb_id"
        try:
            import wandb

            if wandb.run is not None:  # started by a sweep agent: log into that run
                self.wandb = wandb.run
                self.wandb.config.update(config, allow_val_change=True)
                return
            run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
            self.wandb = wandb.init(
                project=settings.project,
                group=settings.group or None,
                name=settings.name or run_dir.name,
                config=config,
                dir=str(run_dir),
                mode=mode,
                id=run_id,
                resume="allow",
            )
            id_file.write_text(run_id)
        except Exception as exc:  # tracking is a mirror: never let it stop the run
            print(f"warning: wandb tracking disabled ({exc})", file=sys.stderr)
            self.wandb = None

    def _kept(self, keep: int) -> list[str]:
        """The `keep` lines a checkpoint counted: those after it are dropped (said); a file
        that lost some of them is refused in one line, a missing one said."""
        if not self.path.exists():
            if keep:
                print(
                    f"note: {self.path} is missing; the resumed run's history starts here "
                    f"(the checkpoint counted {keep} records before it)",
                    file=sys.stderr,
                )
            return []
        written = self.path.read_text(errors="replace").splitlines(keepends=True)
        lines = written[:keep]
        whole = 0
        for line in lines:
            if not line.endswith("\n") or not _is_record(line):
                break
            whole += 1
        if whole < keep:
            raise ConfigError(
                f"'{self.path}' holds {whole} whole record(s) of the {keep} its checkpoint "
                "counts (torn by a crash before they reached the disk); move it aside to "
                "resume without that history"
            )
        if len(written) > keep:  # records after the checkpoint, a torn one included
            print(
                f"note: {self.path}: {len(written) - keep} line(s) written after the "
                "checkpoint dropped; the resumed run writes them again",
                file=sys.stderr,
            )
        return lines

    def sync(self) -> None:
        """Every record logged so far on the disk: before a checkpoint counts them."""
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def log(self, record: dict[str, Any]) -> None:
        self.lines += 1
        if self.file is None:
            return
        self.file.write(to_json(record) + "\n")
        self.file.flush()
        if self.wandb is not None:
            try:
                self.wandb.log({k: v for k, v in record.items() if isinstance(v, (int, float))})
            except Exception as exc:
                print(f"warning: wandb log failed ({exc}); metrics.jsonl keeps it", file=sys.stderr)

    def log_images(self, paths: list[Path]) -> None:
        if self.wandb is None:
            return
        try:
            import wandb

            self.wandb.log({p.stem: wandb.Image(str(p)) for p in paths})
        except Exception as exc:
            print(f"warning: wandb image upload failed ({exc})", file=sys.stderr)

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        if self.wandb is None:
            return
        try:
            import wandb

            artifact = wandb.Artifact(name, type=kind)
            artifact.add_file(str(path))
            self.wandb.log_artifact(artifact)
        except Exception as exc:
            print(f"warning: wandb artifact failed ({exc})", file=sys.stderr)

    def summary(self, values: dict[str, Any]) -> None:
        if self.wandb is None:
            return
        try:
            self.wandb.summary.update(values)
        except Exception as exc:
            print(f"warning: wandb summary failed ({exc})", file=sys.stderr)

    def close(self) -> None:
        """Close the metrics file and finish wandb; again, a no-op."""
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.wandb is not None:
            try:
                offline = self.wandb.settings.mode == "offline"
                self.wandb.finish()
                if offline:  # wandb's service writes the run file after finish() returns
                    wait_for_wandb_file(self.run_dir)
            except Exception as exc:
                print(f"warning: wandb finish failed ({exc})", file=sys.stderr)
            self.wandb = None


def _is_record(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's metrics.jsonl, in order."""
    text = (run_dir / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line]


_WANDB_BLOCK = 32768
_WANDB_FILE_HEADER = 7  # b":W&B", magic 0xBEE1, version 0
_WANDB_RECORD_HEADER = 7  # crc32c (4), length (2), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_wandb_records(path: Path) -> list[Any]:
    """Decode a `.wandb` file (what offline wandb writes): LevelDB-log framing of protobuf
    `Record`s. wandb ships no reader, and `wandb sync --view` is gone; this lets tests and
    users check what an offline run holds before it is synced."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"'{path}' is not a wandb run file")
    records, pending, pos = [], b"", _WANDB_FILE_HEADER
    while pos + _WANDB_RECORD_HEADER <= len(data):
        left_in_block = _WANDB_BLOCK - pos % _WANDB_BLOCK
        if left_in_block < _WANDB_RECORD_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + _WANDB_RECORD_HEADER : pos + _WANDB_RECORD_HEADER + length]
        pos += _WANDB_RECORD_HEADER + length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _finished_records(path: Path) -> list[Any] | None:
    """The file's records if wandb has written all of them (the last is `exit`), else None."""
    try:
        records = read_wandb_records(path)
    except Exception:  # a record cut off mid-write: not finished yet
        return None
    done = records and records[-1].WhichOneof("record_type") == "exit"
    return records if done else None


def wait_for_wandb_file(run_dir: Path, timeout: float = 30.0) -> list[Any]:
    """The records of the newest offline run under `run_dir`, once it is complete.

    `wandb.finish()` returns before wandb's service process has flushed the run file, so a
    reader right after it can see a file without its last records."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"), key=os.path.getmtime)
        records = _finished_records(files[-1]) if files else None
        if records is not None:
            return records
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete offline wandb run under '{run_dir}' in {timeout} s")
        time.sleep(0.1)
