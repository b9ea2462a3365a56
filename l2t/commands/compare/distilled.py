"""Distillation baselines (`l2t/data/distill.py`): vanilla KD from `distill.model`, from the
student's own architecture trained first (`self_distill`), from an untrained model
(`random_teacher_kd`), and the base DLN's pairwise KD — each at the (a, T) chosen on
validation from the KD grid; `kd_tuned`: vanilla KD with its learning rate chosen too;
`kd_trainval`: vanilla KD on train + the trusted split (its samples beside the labeled part,
the model's logits on them too) at the (a, T) chosen on train-only students — the trusted
labels used as a user without a teacher would."""

from __future__ import annotations

from agents import FixedLossTeacher
from l2t.commands.compare.method import Chosen, Method, Setting, Student
from l2t.config import Config, ConfigError
from l2t.data.distill import DISTILL_METHODS, KD_TEMPERATURES, KD_WEIGHTS
from l2t.engine.task import Task
from l2t.engine.teaching import run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.model_training import kd_baseline


class Distilled(Method):
    names = (*DISTILL_METHODS, "kd_tuned", "kd_trainval")

    def __init__(self, name: str, setting: Setting) -> None:
        super().__init__(name, setting)
        self.made: tuple[FixedLossTeacher, Task, Chosen] | None = None  # by `choose`

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        return bool(cfg.distill.model) and name in DISTILL_METHODS

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        if not cfg.distill.model:
            raise ConfigError(
                f"method {name} needs distill.model=PATH (a model of l2t train-model)"
            )

    def rates(self) -> tuple[float, ...]:
        return self.setting.rates if self.name == "kd_tuned" else ()

    def tuning_students(self) -> int:  # the KD grid, and self_distill's model
        grid = len(KD_WEIGHTS) * len(KD_TEMPERATURES) * max(1, len(self.rates()))
        return grid * TUNING_STUDENTS + (self.name == "self_distill")

    def _baseline(self, chosen: Chosen | None) -> tuple[FixedLossTeacher, Task, Chosen]:
        s = self.setting
        seeds = tuning_seeds(s.cfg.seed)
        name = self.name.removesuffix("_tuned").removesuffix("_trainval")
        splits = s.task.splits
        if self.name.endswith("_trainval"):  # at the settings chosen on train-only students
            if chosen is None:
                chosen = kd_baseline(name, s.cfg, splits, s.base, seeds, None, self.rates())[2]
            splits = s.trainval.splits
        return kd_baseline(name, s.cfg, splits, s.base, seeds, chosen, self.rates())

    def choose(self) -> Chosen:
        self.made = self._baseline(None)
        return self.made[2]

    def student(self, chosen: Chosen) -> Student:
        fixed, kd_task, _ = self.made or self._baseline(chosen)
        s = self.setting
        return lambda seed: run_student(kd_task, fixed, {}, seed, s.cfg.eval_every, s.test)
