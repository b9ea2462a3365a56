"""`aum_drop`: the pool's least-fitting pseudo-labels dropped, a fixed recipe of two rounds
(issue 33; `l2t/methods/margins.py`). Round one trains the student of seed s at the run's
base point and records each sample's mean margin on its label while it trains (the area
under the margin); round two trains a fresh student of the same seed at the base point on
the labeled part and the pool without the `drop` fraction of lowest margins. The learning
rate and `drop` are chosen on validation; two lifetimes per student, both counted. It is the
fixed baseline for any teacher that reads the same signal (`meta_trust_aum`).
`aum_knn_drop` ranks the pool by the mean margin and by the agreement of each pseudo-label
with its labeled neighbours in round one's student (`l2t/methods/neighbours.py`), the two
ranks summed: the same two rounds, another order of dropping."""

from __future__ import annotations

import functools
import itertools
import statistics

import torch
from torch import Tensor

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Student
from l2t.commands.compare.pool import PoolOnBasePoint
from l2t.config import varied
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.margins import first_round
from l2t.methods.neighbours import margin_and_neighbours, neighbour_agreement

DROPS = (0.0, 0.15, 0.3, 0.45)  # the pool's share dropped, lowest margins first


def lowest_dropped(margins: Tensor, drop: float) -> Tensor:
    """A bool per pool sample: kept unless among the `drop` share of lowest `margins`."""
    keep = torch.zeros(len(margins), dtype=torch.bool, device=margins.device)
    keep[margins.argsort(descending=True)[: round((1 - drop) * len(margins))]] = True
    return keep


class MarginDrop(PoolOnBasePoint):
    names = ("aum_drop",)
    lifetimes = 2

    def tuning_students(self) -> int:
        return len(self.setting.rates) * TUNING_STUDENTS * (1 + len(DROPS))

    @functools.cache  # noqa: B019 (one row object per compare: a task per rate, kept with it)
    def _task(self, lr: float) -> Task:
        return make_task(varied(self.setting.cfg, {"optim": {"lr": lr}}), self.setting.task.splits)

    def margins(self, lr: float, seed: int) -> Tensor:
        """Round one: the pool's mean margins over the training of the student of `seed`
        (the score whose lowest share is dropped)."""
        task = self._task(lr)
        margins, _ = first_round(task, seed, task.loss_fn(self.setting.base))
        return margins[task.splits.labeled :]

    def second(
        self, lr: float, drop: float, margins: Tensor, seed: int, test: bool
    ) -> EpisodeResult:
        """Round two: a fresh student of `seed` without the lowest margins."""
        s = self.setting
        splits = s.task.splits.keeping_pool(lowest_dropped(margins, drop))
        task = make_task(varied(s.cfg, {"optim": {"lr": lr}}), splits)
        fixed = FixedLossTeacher("base", s.base)
        every = s.cfg.eval_every if test else s.cfg.steps
        return run_student(task, fixed, {}, seed, every, s.test if test else None)

    def choose(self) -> Chosen:
        seeds, rates = tuning_seeds(self.setting.cfg.seed), self.setting.rates
        scores: dict[tuple[float, float], list[float]] = {}
        for lr in rates:
            for seed in seeds:
                margins = self.margins(lr, seed)
                for drop in DROPS:
                    accuracy = self.second(lr, drop, margins, seed, test=False).val_acc
                    scores.setdefault((lr, drop), []).append(accuracy)
        lr, drop = max(itertools.product(rates, DROPS), key=lambda c: statistics.fmean(scores[c]))
        print(
            f"{self.name}: lr={lr}, drop={drop} (best validation accuracy over {rates} x {DROPS})"
        )
        return {"lr": lr, "drop": drop}

    def student(self, chosen: Chosen) -> Student:
        lr, drop = chosen["lr"], chosen["drop"]
        return lambda seed: self.second(lr, drop, self.margins(lr, seed), seed, test=True)


class NeighbourMarginDrop(MarginDrop):
    names = ("aum_knn_drop",)

    def margins(self, lr: float, seed: int) -> Tensor:
        """Round one's two ranks summed: the mean margin's and the labeled neighbours'
        agreement's (ties of the agreement, a share of 5, ranked by the pool's order)."""
        task = self._task(lr)
        margins, student = first_round(task, seed, task.loss_fn(self.setting.base))
        agreement = neighbour_agreement(task, student)
        return margin_and_neighbours(margins[task.splits.labeled :], agreement)
