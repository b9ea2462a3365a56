"""`slam`: student-label mixing on the unlabeled pool (Kontonis et al., NeurIPS 2023;
`l2t/methods/slam.py`): the model's soft labels against the student's prediction passed
through the model's noise, alpha(x) fit on the trusted split, (k, T, learning rate) chosen
on validation. `AlphaRow` is what every row that reads alpha(x) shares
(`importance_kd`)."""

from __future__ import annotations

import functools
import itertools
import statistics
from typing import ClassVar

import torch
from torch import Tensor

from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Student
from l2t.commands.compare.pool import PoolMethod
from l2t.config import varied
from l2t.data.distill import load_model, logits_of
from l2t.engine.student_state import LossFn
from l2t.engine.task import Task
from l2t.engine.teaching import GivenLoss, run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.slam import Isotonic, fit_alpha, slam_loss, with_pool_flag

TOP_K = (2, 3, 5)  # the classes the model's wrong labels fall among
TEMPERATURES = (1.0, 4.0)  # the model's soft labels


class AlphaRow(PoolMethod):
    """A pool row whose loss is set by `grid`'s settings (the learning rate last), the best
    on validation chosen."""

    keys: ClassVar[tuple[str, ...]] = ()  # the names of a grid point's settings, "lr" last

    def tuning_students(self) -> int:
        return len(self.grid) * TUNING_STUDENTS

    @property
    def grid(self) -> tuple[tuple[float, ...], ...]:
        """The settings to choose from on validation, the learning rate last."""
        raise NotImplementedError

    def loss(self, *setting: float) -> LossFn:
        """The pool loss at a grid point's settings (its learning rate left out)."""
        raise NotImplementedError

    def with_column(self, targets: Tensor, labeled: int) -> Tensor:
        """The training targets with the last column `loss` reads (once per task)."""
        raise NotImplementedError

    @functools.cached_property
    def alpha(self) -> Isotonic:
        """alpha(margin), fit once on the trusted split (the model loaded once)."""
        splits = self.setting.task.splits
        model, _ = load_model(self.setting.cfg.distill.model, splits)
        with torch.no_grad():
            return fit_alpha(logits_of(model, splits.x_val), splits.y_val)

    @functools.cache  # noqa: B019 (one row object per compare: a task per rate, kept with it)
    def _task(self, lr: float) -> Task:
        s = self.setting
        task = make_task(varied(s.cfg, {"optim": {"lr": lr}}), s.task.splits)
        task.train_targets = self.with_column(task.train_targets, task.splits.labeled)
        return task

    def choose(self) -> Chosen:
        cfg = self.setting.cfg
        seeds = tuning_seeds(cfg.seed)

        def score(setting: tuple[float, ...]) -> float:
            task, policy = self._task(setting[-1]), GivenLoss(self.loss(*setting[:-1]))
            return statistics.fmean(
                run_student(task, policy, {}, x, cfg.steps).val_acc for x in seeds
            )

        best: tuple[float, ...] = max(self.grid, key=score)
        chosen = dict(zip(self.keys, best))
        said = ", ".join(f"{k}={v}" for k, v in chosen.items())
        print(f"{self.name}: {said} (best validation accuracy of {len(self.grid)} settings)")
        return chosen

    def student(self, chosen: Chosen) -> Student:
        s, task = self.setting, self._task(chosen["lr"])
        policy = GivenLoss(self.loss(*(chosen[k] for k in self.keys[:-1])))
        return lambda seed: run_student(task, policy, {}, seed, s.cfg.eval_every, s.test)


class SLaMRow(AlphaRow):
    names = ("slam",)
    keys = ("k", "temperature", "lr")

    @property
    def grid(self) -> tuple[tuple[float, ...], ...]:
        return tuple(itertools.product(TOP_K, TEMPERATURES, self.setting.rates))

    def loss(self, *setting: float) -> LossFn:
        k, temperature = setting
        return slam_loss(self.alpha, int(k), temperature)

    def with_column(self, targets: Tensor, labeled: int) -> Tensor:
        return with_pool_flag(targets, labeled)
