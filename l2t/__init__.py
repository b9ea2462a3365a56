"""l2t: learning to teach. A teacher learns the student's loss function while it trains.

Python API, mirroring the CLI: `l2t.train_teacher(cfg)`, `l2t.load_config(...)`,
`agents.Teacher.load(path)`.
"""

from l2t.config import Config, ConfigError, load_config
from l2t.training import train_teacher

__all__ = ["Config", "ConfigError", "load_config", "train_teacher"]
