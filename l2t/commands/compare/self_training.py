"""Self-training on an unlabeled pool (issue 33): the student of seed s trains with the
model's hard pseudo-labels (round 1, `ce`'s student), then relabels the pool with its own
predictions, and a fresh student of the same seed trains on those (round 2). Two lifetimes
per student, both counted."""

from __future__ import annotations

import dataclasses

from torch import nn

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Student
from l2t.commands.compare.pool import PoolMethod
from l2t.data.distill import with_model
from l2t.data.splits import Splits
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.methods.model_training import fit_model


class SelfTrained(PoolMethod):
    names = ("self_train",)
    lifetimes = 2

    def student(self, chosen: Chosen) -> Student:
        s = self.setting

        def student(seed: int) -> EpisodeResult:
            first, _ = fit_model(s.cfg, s.task.splits, seed)
            task = make_task(s.cfg, relabeled(s.task.splits, first))
            return run_student(
                task, FixedLossTeacher("ce", s.base), {}, seed, s.cfg.eval_every, s.test
            )

        return student


def relabeled(splits: Splits, model: nn.Module) -> Splits:
    """The pool labeled again, by `model`'s predictions instead of the run's model's."""
    n = splits.labeled
    unlabeled = dataclasses.replace(
        splits,
        x_train=splits.x_train[:n],
        y_train=splits.y_train[:n],
        model_logits=None,
        x_unlabeled=splits.x_train[n:],
        pool=0,
    )
    return with_model(unlabeled, model)
