"""A row of `l2t compare` (docs/design.md §5): a class that registers the names it trains and
carries its facts — whether it is a baseline, what it needs, when it runs by default, which
settings it chooses on validation first. Adding a method is one file that subclasses
`Method` and is imported by `l2t/commands/compare/__init__.py`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from l2t.config import Config, ConfigError
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult
from l2t.losses.families import FAMILIES

Student = Callable[[int], EpisodeResult]  # seed -> the method's finished student
# the learning rates a row that sets its own loss scale chooses from (`kd_tuned`, `slam`,
# `meta_trust`, `aum_drop`), with the run's own (`Setting.rates`): KD's T^2 multiplies its
# step by up to 16, so a loss at cross-entropy's scale at the run's rate would be judged on
# its step size as much as on the loss
RATES = (0.1, 0.3, 1.0)
Chosen = dict[str, float]  # the settings a method chose on validation (results.json)


@dataclass
class Setting:
    """What every method of a compare shares: the run's config, the task of the compared
    students, the same students on train + val, the base loss and the teacher's run."""

    cfg: Config
    task: Task
    trainval: Task
    base: list[torch.Tensor]
    run_dir: str | None = None

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.task.splits.x_test, self.task.splits.y_test

    @property
    def rates(self) -> tuple[float, ...]:
        """`RATES` and the run's own learning rate, ascending: a row that chooses its rate
        can always keep the run's (measured on digits, whose rate 0.05 the grid lacked:
        `kd_tuned` fell 0.53 pt below `kd`)."""
        return tuple(sorted({*RATES, self.cfg.optim.lr}))

    def task_for(self, name: str) -> Task:
        """`*_trainval` rows train on train + the trusted split (a user with a trusted set
        trains on it), every other row on train."""
        return self.trainval if name.endswith("_trainval") else self.task


class Method:
    """The rows named in `names`: one instance per row and compare, built in the parent and
    again in each worker process (at the settings the parent chose)."""

    registry: ClassVar[dict[str, type[Method]]] = {}  # every row's name -> its class, in order
    names: ClassVar[tuple[str, ...]] = ()  # the rows this class trains
    baseline: ClassVar[bool] = True  # no learning beside the student: a row to beat
    needs_teacher: ClassVar[bool] = False  # reads the teacher of `teacher=RUN_DIR`
    reads_hidden_labels: ClassVar[bool] = False  # an oracle: the pool's true labels
    lifetimes: ClassVar[int] = 1  # student lifetimes each compared student costs

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        for name in cls.names:
            if name in Method.registry:
                raise TypeError(f"compare method {name!r} is registered twice")
            Method.registry[name] = cls

    def __init__(self, name: str, setting: Setting) -> None:
        self.name, self.setting = name, setting

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        """Whether `compare` runs the row without `methods=`."""
        return False

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        """Refuse, in one line (ConfigError), a row the run's config cannot train."""

    def tuning_students(self) -> int:
        """Student lifetimes `choose` trains (for the progress bar)."""
        return 0

    def choose(self) -> Chosen:
        """The settings the row picks on validation, once, before any compared student
        (none of the compared students: `l2t/methods/base_point.py` `tuning_seeds`)."""
        return {}

    def student(self, chosen: Chosen) -> Student:
        """seed -> the row's student at the `chosen` settings."""
        raise NotImplementedError


def on_base_point(cfg: Config) -> bool:
    """Whether the run's family starts at a fixed loss chosen on validation (the composite's
    base point, docs/design.md §6): its rows `base`, `*_base`, `teacher_untrained`."""
    return FAMILIES[cfg.loss.family].set_by_controls


def check_methods(methods: list[str], cfg: Config, have_teacher: bool) -> None:
    """Refuse unknown rows, rows that need a teacher without one, and rows the config
    cannot train — each in one line."""
    unknown = [m for m in methods if m not in Method.registry]
    if unknown or not methods:
        allowed = ", ".join(Method.registry)
        raise ConfigError(f"unknown method(s) {unknown or methods!r}; allowed: {allowed}")
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:  # one row per method: a second would count its students as more seeds
        raise ConfigError(f"method(s) {', '.join(twice)} named more than once in methods=")
    needs_teacher = [m for m in methods if Method.registry[m].needs_teacher]
    if needs_teacher and not have_teacher:
        raise ConfigError(f"methods {', '.join(needs_teacher)} need teacher=RUN_DIR")
    for m in methods:
        Method.registry[m].check(m, cfg)
