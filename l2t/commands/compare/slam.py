"""`slam`: student-label mixing on the unlabeled pool (Kontonis et al., NeurIPS 2023;
`l2t/methods/slam.py`): the model's soft labels against the student's prediction passed
through the model's noise, alpha(x) fit on the trusted split, (k, T, learning rate) chosen
on validation."""

from __future__ import annotations

import functools
import itertools
import statistics

import torch

from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Student
from l2t.commands.compare.pool import PoolMethod
from l2t.config import varied
from l2t.data.distill import load_model, logits_of
from l2t.engine.task import Task
from l2t.engine.teaching import GivenLoss, run_student
from l2t.methods.base_point import TUNING_STUDENTS, tuning_seeds
from l2t.methods.slam import Isotonic, fit_alpha, slam_loss, with_pool_flag

TOP_K = (2, 3, 5)  # the classes the model's wrong labels fall among
TEMPERATURES = (1.0, 4.0)  # the model's soft labels


class SLaMRow(PoolMethod):
    names = ("slam",)

    def tuning_students(self) -> int:
        return len(self.grid) * TUNING_STUDENTS

    @property
    def grid(self) -> tuple[tuple[int, float, float], ...]:
        """(k, T, lr) to choose from on validation."""
        return tuple(itertools.product(TOP_K, TEMPERATURES, self.setting.rates))

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
        task.train_targets = with_pool_flag(task.train_targets, task.splits.labeled)
        return task

    def _policy(self, k: int, temperature: float) -> GivenLoss:
        return GivenLoss(slam_loss(self.alpha, k, temperature))

    def choose(self) -> Chosen:
        cfg = self.setting.cfg
        seeds = tuning_seeds(cfg.seed)

        def score(setting: tuple[int, float, float]) -> float:
            k, t, lr = setting
            task, policy = self._task(lr), self._policy(k, t)
            return statistics.fmean(
                run_student(task, policy, {}, x, cfg.steps).val_acc for x in seeds
            )

        k, t, lr = max(self.grid, key=score)
        grid = f"k {TOP_K} x T {TEMPERATURES} x lr {self.setting.rates}"
        print(f"slam: k={k}, T={t}, lr={lr} (best validation accuracy over {grid})")
        return {"k": k, "temperature": t, "lr": lr}

    def student(self, chosen: Chosen) -> Student:
        s, task = self.setting, self._task(chosen["lr"])
        policy = self._policy(int(chosen["k"]), chosen["temperature"])
        return lambda seed: run_student(task, policy, {}, seed, s.cfg.eval_every, s.test)
