"""l2t: learning to teach. A teacher learns the student's loss function while it trains.

Python API, mirroring the CLI: `l2t.load_config(...)`, `l2t.train_teacher(cfg)`,
`agents.Teacher.load(path)`; and a learned loss for your own loop, `l2t.LearnedLoss`.
"""

from typing import Any

from l2t import _moved
from l2t.config import Config, ConfigError, load_config

_moved.install()

__all__ = ["Config", "ConfigError", "LearnedLoss", "load_config", "train_teacher"]


def __getattr__(name: str) -> Any:
    """`l2t.train_teacher` and `l2t.LearnedLoss` on first use: importing l2t (as envs
    does) stays light."""
    if name == "train_teacher":
        from l2t.commands.training import train_teacher

        return train_teacher
    if name == "LearnedLoss":
        from l2t.learned_loss import LearnedLoss

        return LearnedLoss
    raise AttributeError(f"module 'l2t' has no attribute {name!r}")
