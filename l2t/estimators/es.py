"""Antithetic evolution strategies over whole student lifetimes (docs/design.md §3): the
unbiased reference. Each estimate starts `population` pairs of fresh students, trains each
pair under `theta + eps` and `theta - eps` to the end of its budget (first order), and
returns `mean((L+ - L-) * eps) / (2 sigma^2)`, with `L` the lifetime's meta-objective
(validation loss or accuracy from `objective_from` on). Costs two whole lifetimes per pair
per update; for small budgets, and to check the truncated estimators against.
"""

from __future__ import annotations

from typing import Any

from l2t.engine.lifetime import Theta
from l2t.estimators.base import Estimator, antithetic, shifted


class ES(Estimator):
    antithetic, needs_gradient, default_population = True, False, 4  # 4 pairs

    def estimate(self, theta: Theta) -> tuple[Theta, dict[str, float]]:
        n = self.cfg.population
        members = list(self.members())
        eps = [self.perturbation(theta, i) for i in members]
        thetas = [shifted(theta, e, sign) for e in eps for sign in (1.0, -1.0)]
        fresh = [self.new_student(theta, self.updates * n + i) for i in members]
        lives = [life for life in fresh for _ in (1.0, -1.0)]
        _, losses = self.run_all(thetas, lives, self.task.teacher_steps)
        self.updates += 1
        return antithetic(theta, losses, eps, self.sigma, n)

    def state_dict(self) -> dict[str, Any]:
        return self.counters()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_counters(state)
