"""Fixed losses at a learning rate of their own, chosen on validation: constant (`*_tuned`)
or annealed to 0 along a cosine over the budget (`*_cosine`)."""

from __future__ import annotations

import statistics
from typing import Any

from agents import FixedLossTeacher
from l2t.commands.compare.fixed import refuse_dln_rows_on_composite
from l2t.commands.compare.method import Chosen, Method, Setting, Student, on_base_point
from l2t.config import Config, parts, varied
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.methods.base_point import LR_GRID, TUNING_STUDENTS, tuning_seeds


class TunedRate(Method):
    names = ("ce_tuned", "base_dln_tuned", "ce_cosine", "base_dln_cosine")

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        return have_teacher and not (on_base_point(cfg) and name.startswith("base"))

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        refuse_dln_rows_on_composite(name, cfg)

    def tuning_students(self) -> int:
        return len(LR_GRID) * TUNING_STUDENTS

    def choose(self) -> Chosen:
        """The rate from `LR_GRID` with the best mean final validation accuracy over
        `TUNING_STUDENTS` students of their own, under the row's own schedule."""
        seeds = tuning_seeds(self.setting.cfg.seed)

        def score(lr: float) -> float:
            run = fixed_run(self.setting, self.loss(), lr, self.cosine())
            return statistics.fmean(run(seed).val_acc for seed in seeds)

        best = max(LR_GRID, key=score)
        print(f"{self.name}: tuned learning rate {best} (best validation accuracy over {LR_GRID})")
        return {"lr": best}

    def loss(self) -> str:
        return self.name.removesuffix("_tuned").removesuffix("_cosine")

    def cosine(self) -> bool:
        return self.name.endswith("_cosine")

    def student(self, chosen: Chosen) -> Student:
        run = fixed_run(self.setting, self.loss(), chosen["lr"], self.cosine())
        return lambda seed: run(seed, self.setting.test)


def fixed_run(setting: Setting, loss: str, lr: float, cosine: bool) -> Any:
    """(seed, test) -> a student under the fixed `loss` at learning rate `lr`, constant or
    annealed to 0 along a cosine over the budget (set once per teacher step)."""
    changed = varied(setting.cfg, {"optim": {"lr": lr, "cosine": cosine}})
    task = parts.task(changed, setting.task.splits)
    fixed = FixedLossTeacher(loss, setting.base)

    def run(seed: int, test: tuple[Any, Any] | None = None) -> EpisodeResult:
        return run_student(task, fixed, {}, seed, setting.cfg.eval_every, test)

    return run
