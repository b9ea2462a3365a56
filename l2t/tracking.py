"""Metrics: `metrics.jsonl` in the run directory is the source of truth; wandb (optional,
off by default) mirrors it. A missing or failing wandb never stops or loses a run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from l2t.config import Config


class Tracker:
    def __init__(self, run_dir: Path, cfg: Config, keep_lines: int | None = None) -> None:
        """`keep_lines`: on resume, drop the lines written after the checkpoint."""
        self.path = run_dir / "metrics.jsonl"
        if keep_lines is not None and self.path.exists():
            lines = self.path.read_text().splitlines(keepends=True)[:keep_lines]
            self.path.write_text("".join(lines))
        elif keep_lines is None:
            self.path.write_text("")
        self.lines = sum(1 for _ in self.path.open()) if self.path.exists() else 0
        self.file = self.path.open("a")
        self.wandb: Any = None
        if cfg.tracking == "wandb":
            self._start_wandb(run_dir, cfg)

    def _start_wandb(self, run_dir: Path, cfg: Config) -> None:
        try:
            import wandb

            self.wandb = wandb.init(
                project=cfg.wandb.project,
                group=cfg.wandb.group or None,
                name=cfg.wandb.name or run_dir.name,
                config=cfg.to_dict(),
                dir=str(run_dir),
                resume="allow" if cfg.resume else None,
            )
        except Exception as exc:  # tracking is a mirror: never let it stop the run
            print(f"warning: wandb tracking disabled ({exc})", file=sys.stderr)
            self.wandb = None

    def log(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        self.lines += 1
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
        self.file.close()
        if self.wandb is not None:
            try:
                self.wandb.finish()
            except Exception as exc:
                print(f"warning: wandb finish failed ({exc})", file=sys.stderr)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's metrics.jsonl, in order."""
    text = (run_dir / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line]
