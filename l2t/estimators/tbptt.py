"""Truncated backprop through `horizon` consecutive teacher steps (docs/design.md §3).

Each of `students` lifetimes advances `horizon` teacher steps (horizon x K student steps)
with the student state, the teacher state and the loss-state observation carried
differentiably from step to step; the gradient of the window's mean validation loss with
respect to `theta` is averaged over the population, then the window's graph is dropped.
Biased towards the window (short-horizon bias), but far less than one teacher step when the
window is long; memory grows linearly with `horizon`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from l2t.engine.lifetime import Lifetime, Theta
from l2t.estimators.base import Estimator, lifetime_from_dict, lifetime_to_dict


class TruncatedBackprop(Estimator):
    vmappable = False  # it differentiates through several steps of each student
    lives: list[Lifetime] | None = None

    @property
    def chain(self) -> bool:
        """A one-step window on the validation loss of a policy that observes dL_val/dphi:
        reuse that gradient (lifetime.advance's `chain`), one backward through the unroll."""
        return (
            self.cfg.horizon == 1
            and self.policy.observes_gradient
            and self.cfg.objective == "val_loss"
        )

    def estimate(self, theta: Theta) -> tuple[Theta, dict[str, float]]:
        n = self.cfg.population
        if self.lives is None:
            self.lives = self.staggered(theta)
        if self.cfg.vmap:
            return self._estimate_together(theta)
        leaves = {name: p.detach().requires_grad_() for name, p in theta.items()}
        total = {name: torch.zeros_like(p) for name, p in theta.items()}
        losses = []
        for i, life in enumerate(self.lives):
            objective = torch.zeros((), device=self.task.device)
            count, chained = 0, None
            while count < self.cfg.horizon and not life.done(self.task):
                step = self.advance(leaves, life, differentiable=True, chain=self.chain)
                life, count = step.life, count + 1
                objective = objective + self.metric(step.val_loss, step.val_acc)
                chained = step if step.val_grad is not None else None
            objective = objective / max(count, 1)
            if chained is not None:  # one step: dL/dtheta = dL/dphi . dphi/dtheta
                assert chained.proposal is not None and chained.val_grad is not None
                outputs, grad_outputs = _set_by_teacher(chained.proposal, chained.val_grad)
                grads = torch.autograd.grad(
                    outputs, list(leaves.values()), grad_outputs=grad_outputs, allow_unused=True
                )
            elif objective.requires_grad:
                grads = torch.autograd.grad(objective, list(leaves.values()), allow_unused=True)
            else:
                grads = ()  # the loss broke the student: nothing to learn from this window
            for (name, _), g in zip(leaves.items(), grads):
                if g is not None:
                    total[name] += g
            losses.append(objective.item())
            life = life.detach()
            self.lives[i] = self.successor(theta, life) if life.done(self.task) else life
        self.updates += 1
        return {k: v / n for k, v in total.items()}, {"meta_loss": sum(losses) / n}

    def _estimate_together(self, theta: Theta) -> tuple[Theta, dict[str, float]]:
        """The one-step window (greedy) with the students advanced together: each one's
        dL_val/dphi from one vmapped second-order pass, then dL_val/dtheta for all of them
        by one backward through the stacked proposals (the chain rule `chain` uses; the
        teacher state a window starts from is detached, so it is exact)."""
        assert self.lives is not None and self.cfg.horizon == 1
        leaves = {name: p.detach().requires_grad_() for name, p in theta.items()}
        steps = self.advance_all([leaves] * len(self.lives), self.lives, chain=True)
        proposals: list[Tensor] = []
        val_grads: list[Tensor] = []
        for step in steps:
            if step.proposal is not None and step.val_grad is not None:
                outputs, grad_outputs = _set_by_teacher(step.proposal, step.val_grad)
                proposals += outputs
                val_grads += grad_outputs
        grads = (
            torch.autograd.grad(
                proposals, list(leaves.values()), grad_outputs=val_grads, allow_unused=True
            )
            if proposals
            else [None] * len(leaves)
        )
        n = self.cfg.population
        total = {
            name: torch.zeros_like(p) if g is None else g / n
            for (name, p), g in zip(leaves.items(), grads)
        }
        for i, step in enumerate(steps):
            life = step.life.detach()
            self.lives[i] = self.successor(theta, life) if life.done(self.task) else life
        self.updates += 1
        losses = torch.stack([self.metric(step.val_loss, step.val_acc) for step in steps])
        return total, {"meta_loss": losses.sum().item() / n}

    def state_dict(self) -> dict[str, Any]:
        lives = [lifetime_to_dict(life) for life in self.lives or []]
        return {**self.counters(), "lives": lives}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_counters(state)
        self.lives = [lifetime_from_dict(d) for d in state["lives"]] or None


def _set_by_teacher(
    proposal: list[Tensor], val_grad: tuple[Tensor, ...]
) -> tuple[list[Tensor], list[Tensor]]:
    """The loss parameters the teacher set (with a graph to theta) and their dL_val/dphi:
    parameters it passes through unchanged (the composite's fixed parts) stay out."""
    kept = [(p, g) for p, g in zip(proposal, val_grad) if p.requires_grad]
    return [p for p, _ in kept], [g for _, g in kept]
