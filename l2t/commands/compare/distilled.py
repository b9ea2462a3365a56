"""Distillation baselines (`l2t/data/distill.py`): vanilla KD from `distill.model`, from the
student's own architecture trained first (`self_distill`), from an untrained model
(`random_teacher_kd`), and the base DLN's pairwise KD — each at the (a, T) chosen on
validation from the KD grid."""

from __future__ import annotations

from agents import FixedLossTeacher
from l2t.commands.compare.method import Chosen, Method, Setting, Student
from l2t.config import Config
from l2t.data.distill import DISTILL_METHODS, KD_TEMPERATURES, KD_WEIGHTS
from l2t.engine.task import Task
from l2t.engine.teaching import run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.model_training import kd_baseline


class Distilled(Method):
    names = DISTILL_METHODS

    def __init__(self, name: str, setting: Setting) -> None:
        super().__init__(name, setting)
        self.made: tuple[FixedLossTeacher, Task] | None = None  # by `choose`, in the parent

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        return bool(cfg.distill.model)

    def tuning_students(self) -> int:  # the KD grid, and self_distill's model
        return len(KD_WEIGHTS) * len(KD_TEMPERATURES) * TUNING_STUDENTS + (
            self.name == "self_distill"
        )

    def _baseline(self, chosen: Chosen | None) -> tuple[FixedLossTeacher, Task]:
        s = self.setting
        seeds = tuning_seeds(s.cfg.seed)
        return kd_baseline(self.name, s.cfg, s.task.splits, s.base, seeds, chosen)

    def choose(self) -> Chosen:
        self.made = self._baseline(None)
        kd_task = self.made[1]
        return {"mix": kd_task.mix, "temperature": kd_task.temperature}

    def student(self, chosen: Chosen) -> Student:
        fixed, kd_task = self.made or self._baseline(chosen)
        s = self.setting
        return lambda seed: run_student(kd_task, fixed, {}, seed, s.cfg.eval_every, s.test)
