"""Antithetic evolution strategies over whole student lifetimes (docs/design.md §3): the
unbiased reference. Each estimate starts `students` pairs of fresh students, trains each
pair under `theta + eps` and `theta - eps` to the end of its budget (first order), and
returns `mean((L+ - L-) * eps) / (2 sigma^2)`, with `L` the lifetime's meta-objective
(validation loss or accuracy from `objective_from` on). Costs two whole lifetimes per pair
per update; for small budgets, and to check the truncated estimators against.
"""

from __future__ import annotations

from typing import Any

import torch

from l2t.estimators.base import Estimator, shifted
from l2t.lifetime import Theta


class ES(Estimator):
    def estimate(self, theta: Theta) -> tuple[Theta, dict[str, float]]:
        n = self.cfg.students
        total = {name: torch.zeros_like(p) for name, p in theta.items()}
        differences = []
        for i in self.members():
            eps = self.perturbation(theta, i)
            life = self.new_student(theta, self.updates * n + i)
            steps = self.task.teacher_steps
            _, loss_plus = self.run(shifted(theta, eps, 1.0), life, steps)
            _, loss_minus = self.run(shifted(theta, eps, -1.0), life, steps)
            scale = (loss_plus - loss_minus) / (2 * self.cfg.sigma**2)
            for name, e in eps.items():
                total[name] += scale * e
            differences.append((loss_plus - loss_minus).item())
        self.updates += 1
        spread = sum(abs(d) for d in differences) / n
        return {k: v / n for k, v in total.items()}, {"mean_abs_difference": spread}

    def state_dict(self) -> dict[str, Any]:
        return self.counters()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_counters(state)
