"""Persistent evolution strategies (Vicol, Metz and Sohl-Dickstein, ICML 2021; docs/design.md
§3): an unbiased gradient of the whole-lifetime meta-objective from truncated unrolls.

`population` antithetic pairs of lifetimes run under `theta + eps` and `theta - eps`. Each
estimate draws a new `eps` per pair, adds it to the pair's accumulated perturbation, runs
both students `horizon` teacher steps (first order: nothing is backpropagated into theta)
and returns `mean((L+ - L-) * accumulated) / (2 sigma^2)`. Because the accumulated
perturbation remembers every `eps` that shaped the pair's current students, the estimate
accounts for how earlier truncations' teaching changes later losses: no short-horizon bias.
When a pair's students reach the end of their budget the pair starts fresh students and a
zero accumulator.
"""

from __future__ import annotations

from typing import Any

import torch

from l2t.engine.lifetime import Lifetime, Theta
from l2t.estimators.base import (
    Estimator,
    antithetic,
    lifetime_from_dict,
    lifetime_to_dict,
    shifted,
)


class PES(Estimator):
    antithetic, needs_gradient, default_population = True, False, 4  # 4 pairs
    pairs: list[tuple[Lifetime, Lifetime, Theta]] | None = None

    def estimate(self, theta: Theta) -> tuple[Theta, dict[str, float]]:
        n = self.cfg.population
        if self.pairs is None:
            zero = {name: torch.zeros_like(p) for name, p in theta.items()}
            self.pairs = [(life, life, dict(zero)) for life in self.staggered(theta)]
        eps = [self.perturbation(theta, i) for i in self.members()]
        thetas = [shifted(theta, e, sign) for e in eps for sign in (1.0, -1.0)]
        lives = [life for plus, minus, _ in self.pairs for life in (plus, minus)]
        lives, losses = self.run_all(thetas, lives, self.cfg.horizon)
        accumulated = [
            {name: a + e[name] for name, a in acc.items()}
            for (_, _, acc), e in zip(self.pairs, eps)
        ]
        estimate = antithetic(theta, losses, accumulated, self.sigma, n)
        for j, acc in enumerate(accumulated):
            plus, minus = lives[2 * j], lives[2 * j + 1]
            if plus.done(self.task):  # a fresh pair of students and a zero accumulator
                plus = minus = self.successor(theta, plus)
                acc = {name: torch.zeros_like(a) for name, a in acc.items()}
            self.pairs[j] = (plus, minus, acc)
        self.updates += 1
        return estimate

    def state_dict(self) -> dict[str, Any]:
        pairs = [
            {"plus": lifetime_to_dict(p), "minus": lifetime_to_dict(m), "accumulated": a}
            for p, m, a in self.pairs or []
        ]
        return {**self.counters(), "pairs": pairs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_counters(state)
        pairs = [
            (lifetime_from_dict(d["plus"]), lifetime_from_dict(d["minus"]), dict(d["accumulated"]))
            for d in state["pairs"]
        ]
        self.pairs = pairs or None
