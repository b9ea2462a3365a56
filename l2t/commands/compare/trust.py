"""`meta_trust`: the base point's per-sample loss weighted by a net over what a teacher sees
of each sample, learned online on the trusted batch (`l2t/methods/trust.py`); with an
unlabeled pool and a model (its features are the model's confidence and margin);
`meta_trust_aum` reads the student's mean margin on the label too (`aum_drop`'s signal) as
it accrues; `meta_trust_aum2` a whole first round's (two lifetimes, as `aum_drop`). Its
learning rate is chosen on validation, as `slam`'s and `kd_tuned`'s are."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import ClassVar

from torch import Tensor

from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Student
from l2t.commands.compare.pool import PoolOnBasePoint
from l2t.config import varied
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.losses.composite import parse_ranges
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.margins import first_round
from l2t.methods.reweighting import BasePoint, Reweighted
from l2t.methods.trust import TrustWeighted


class Trust(PoolOnBasePoint):
    names: ClassVar[tuple[str, ...]] = ("meta_trust", "meta_trust_trainval", "meta_trust_aum")
    baseline = False  # the weights learn from the trusted split while the student trains

    def tuning_students(self) -> int:
        return len(self.setting.rates) * TUNING_STUDENTS * self.lifetimes

    def policy(self, task: Task, seed: int, base: BasePoint) -> Reweighted:
        """The student's policy: a fresh net per student."""
        history = self.name == "meta_trust_aum"
        return TrustWeighted(task, seed, base, history, self.prior(task, seed))

    def prior(self, task: Task, seed: int) -> Tensor | None:
        """A first round's margins for the net to read (None: no first round)."""
        return None

    def _run(self, lr: float) -> Callable[[int, bool], EpisodeResult]:
        """(seed, test) -> a student under the trust weights at learning rate `lr`."""
        s = self.setting
        assert s.task.composite is not None
        base = BasePoint(s.task.composite, s.base, parse_ranges(s.cfg.loss.ranges))
        splits = s.task_for(self.name).splits
        task = make_task(varied(s.cfg, {"optim": {"lr": lr}}), splits)

        def run(seed: int, test: bool) -> EpisodeResult:  # the net's state lives in the policy
            policy = self.policy(task, seed, base)
            steps = s.cfg.eval_every if test else s.cfg.steps
            return run_student(task, policy, {}, seed, steps, s.test if test else None)

        return run

    def choose(self) -> Chosen:
        """The learning rate, on validation (the weights shrink the step's norm: the base
        point's rate is not the trust net's)."""
        seeds = tuning_seeds(self.setting.cfg.seed)

        def score(lr: float) -> float:
            run = self._run(lr)
            return statistics.fmean(run(seed, False).val_acc for seed in seeds)

        best = max(self.setting.rates, key=score)
        print(f"{self.name}: lr={best} (best validation accuracy over {self.setting.rates})")
        return {"lr": best}

    def student(self, chosen: Chosen) -> Student:
        run = self._run(chosen["lr"])
        return lambda seed: run(seed, True)


class TrustTwoRounds(Trust):
    """`meta_trust_aum2`: round one at the base point records each sample's mean margin
    (`aum_drop`'s), round two learns the trust weights reading it; both counted."""

    names = ("meta_trust_aum2",)
    lifetimes = 2

    def prior(self, task: Task, seed: int) -> Tensor | None:
        return first_round(task, seed, task.loss_fn(self.setting.base))[0]
