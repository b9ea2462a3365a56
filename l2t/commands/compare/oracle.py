"""The headroom of an unlabeled pool (issue 33): students that read the pool's hidden true
labels, which no method and no teacher may (`tests/test_unlabeled.py`). `oracle_labels`
trains on the pool with its true labels; `oracle_drop` on the pool without the samples
whose pseudo-label is wrong, both with cross-entropy on hard labels at the run's optimizer;
`oracle_drop_kd` drops the same samples and distills from the rest as `kd` does, (a, T)
chosen on the same grid: the ceiling of a teacher that uses the soft labels and knows
which are wrong; `oracle_drop_kd_tuned` chooses its learning rate too, as `kd_tuned` does
(the headroom at a rate of its own). They are never the best baseline: the table says they
read hidden labels."""

from __future__ import annotations

import dataclasses

import torch

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Student
from l2t.commands.compare.pool import PoolMethod
from l2t.data.distill import KD_TEMPERATURES, KD_WEIGHTS
from l2t.data.splits import Splits
from l2t.engine.task import Task
from l2t.engine.teaching import run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.model_training import kd_baseline


class Oracle(PoolMethod):
    names = ("oracle_labels", "oracle_drop", "oracle_drop_kd", "oracle_drop_kd_tuned")
    baseline = False  # it reads what no user has
    reads_hidden_labels = True

    def distills(self) -> bool:
        return self.name.startswith("oracle_drop_kd")

    def rates(self) -> tuple[float, ...]:
        return self.setting.rates if self.name == "oracle_drop_kd_tuned" else ()

    def tuning_students(self) -> int:  # the KD grid (and the rates)
        grid = len(KD_WEIGHTS) * len(KD_TEMPERATURES) * max(1, len(self.rates()))
        return grid * TUNING_STUDENTS if self.distills() else 0

    def choose(self) -> Chosen:
        if not self.distills():
            return {}
        return self._kd(None)[2]

    def _kd(self, chosen: Chosen | None) -> tuple[FixedLossTeacher, Task, Chosen]:
        s = self.setting
        splits = oracle_splits(s.task.splits, drop=True)
        seeds = tuning_seeds(s.cfg.seed)
        return kd_baseline("kd", s.cfg, splits, s.base, seeds, chosen, self.rates())

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        if self.distills():
            fixed, task, _ = self._kd(chosen)
        else:
            splits = oracle_splits(s.task.splits, drop=self.name == "oracle_drop")
            task, fixed = make_task(s.cfg, splits), FixedLossTeacher("ce", s.base)
        return lambda seed: run_student(task, fixed, {}, seed, s.cfg.eval_every, s.test)


def oracle_splits(splits: Splits, drop: bool) -> Splits:
    """The pool with its true labels, or without its wrong pseudo-labels (`drop`)."""
    assert splits.hidden_labels is not None and splits.pool, "an unlabeled pool, labeled"
    n, true = splits.labeled, splits.hidden_labels
    if drop:
        return splits.keeping_pool(splits.y_train[n:] == true)
    return dataclasses.replace(splits, y_train=torch.cat([splits.y_train[:n], true]))
