"""Rows of an unlabeled pool labeled by a model (issue 33; `labeled=`, `unlabeled=`,
`distill.model`), besides `ce` on the pool (hard pseudo-labels) and `kd` (its soft labels):
the student on the labeled part alone (`labeled_only`, and with the trusted split,
`labeled_only_trainval`), and hard pseudo-labels kept where the model's confidence (its
top softmax probability) is at least a threshold chosen on validation (`confident`)."""

from __future__ import annotations

import statistics

import torch

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Method, Student, on_base_point
from l2t.config import Config, ConfigError
from l2t.data.splits import Splits
from l2t.engine.teaching import run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds

THRESHOLDS = (0.5, 0.7, 0.9)  # the model's top probability a pseudo-label must reach


class PoolMethod(Method):
    """A row that needs an unlabeled pool labeled by a model."""

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        if not (cfg.unlabeled and cfg.distill.model):
            raise ConfigError(f"{name} works on an unlabeled pool: unlabeled=N and distill.model")


class PoolOnBasePoint(PoolMethod):
    """A pool row trained at the composite's base point (`meta_trust*`, `aum_drop`)."""

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        super().check(name, cfg)
        if not on_base_point(cfg):
            raise ConfigError(f"{name} works on the composite base point: loss.family=composite")


class PoolRow(PoolMethod):
    names = ("labeled_only", "labeled_only_trainval", "confident")

    def tuning_students(self) -> int:
        return len(THRESHOLDS) * TUNING_STUDENTS if self.name == "confident" else 0

    def choose(self) -> Chosen:
        if self.name != "confident":
            return {}
        s = self.setting

        def score(threshold: float) -> float:
            task = make_task(s.cfg, confident_only(s.task.splits, threshold))
            fixed = FixedLossTeacher("ce", s.base)
            seeds = tuning_seeds(s.cfg.seed)
            return statistics.fmean(
                run_student(task, fixed, {}, x, s.cfg.steps).val_acc for x in seeds
            )

        best = max(THRESHOLDS, key=score)
        print(f"confident: threshold {best} (best validation accuracy over {THRESHOLDS})")
        return {"threshold": best}

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        if self.name == "confident":
            splits = confident_only(s.task.splits, chosen["threshold"])
        else:
            splits = s.task_for(self.name).splits
            splits = splits.keeping_pool(torch.zeros(splits.pool, dtype=torch.bool))
        task, fixed = make_task(s.cfg, splits), FixedLossTeacher("ce", s.base)
        return lambda seed: run_student(task, fixed, {}, seed, s.cfg.eval_every, s.test)


def confident_only(splits: Splits, threshold: float) -> Splits:
    """The pool's samples whose pseudo-label the model gives at least `threshold`."""
    assert splits.model_logits is not None and splits.pool, "an unlabeled pool, labeled"
    confidence = splits.model_logits[splits.labeled :].softmax(dim=1).amax(dim=1)
    return splits.keeping_pool(confidence >= threshold)
