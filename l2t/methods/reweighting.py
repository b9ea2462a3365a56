"""Online meta-learning with the trusted set (docs/design.md §6): what the loss does to
each sample learned while the student trains, by a one-step (K = 1) lookahead on a clean
validation batch.

- `mwnet` (Meta-Weight-Net, Shu et al., NeurIPS 2019): a 1 -> 100 -> 1 sigmoid net maps a
  sample's loss to its weight; each step a virtual SGD step under the weighted loss, the
  validation loss after it, one Adam step of the weight net on its gradient, then the real
  step under the updated weights.
- `l2rw` (Learning to Reweight, Ren et al., ICML 2018): the weights are the negative
  gradient of that lookahead validation loss with respect to per-sample weights at 0,
  clipped at 0 and normalised to sum 1; no state.
- `meta`: the same lookahead moves the composite family's own weight net (its output
  layer, within `loss.ranges`' `reweight`) on top of the run's base point, from exactly
  that point: the teacher's reweighting control learned online instead of by PES. Only the
  weights: they are normalised in the batch, so they cannot shrink the step, and a
  one-step lookahead over the loss scale or the terms' weights does (short-horizon bias,
  Wu et al., ICLR 2018; measured in RESULTS.md: the scale to its lower bound, the CE
  weight to 0, within 600 steps).

Their published form reweights cross-entropy; given the run's `BasePoint`, `mwnet` and
`l2rw` weigh the composite's per-sample loss there instead (`compare`'s `*_base` rows).
A student trains under one `Reweighted` policy (`run_student(task, Reweighted(task,
method, seed, base), {}, seed, eval_every)`), on the one step function (`Task.train`): the
seed's batches, the teacher step's validation batch, the task's SGD and schedule, so rows
pair with every other method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2t.engine.lifetime import Observation
from l2t.engine.student_state import Lookahead, Loss, LossFn, SGDStep
from l2t.engine.task import Task
from l2t.losses.composite import REWEIGHT, CompositeLoss, controlled_size, params_from_unit
from l2t.losses.labels import labels_of

METHODS = ("mwnet", "l2rw", "meta")
WEIGHT_NET_HIDDEN = 100  # Meta-Weight-Net's
WEIGHT_NET_LR = 1e-3
META_LR = 1e-2  # Adam on the weight net's pre-tanh output layer: its range in ~100 steps


@dataclass(frozen=True)
class BasePoint:
    """The composite family at a run's base point and its controls' ranges (`meta` moves
    the weight net's, `reweight`)."""

    loss: CompositeLoss
    params: list[Tensor]
    ranges: dict[str, float]


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Per sample, on the hard labels (a model's logits may travel with them)."""
    return F.cross_entropy(logits, labels_of(targets), reduction="none")


def _weight_net() -> nn.Module:
    return nn.Sequential(
        nn.Linear(1, WEIGHT_NET_HIDDEN), nn.ReLU(), nn.Linear(WEIGHT_NET_HIDDEN, 1), nn.Sigmoid()
    )


class Reweighted(Lookahead):
    """A reweighting method as a policy with no parameters (`run_student` trains under it)
    and its loss: a `Lookahead` that, at every SGD step, first moves its own state (the
    weight net, or the composite's controls) by the lookahead, then returns the weighted
    loss of the step. Its state lives in the object: one per student."""

    observes_gradient = False
    teacher_set = False  # judged as a fixed loss: broken only when not finite

    def __init__(self, task: Task, method: str, seed: int, base: BasePoint | None) -> None:
        if method not in METHODS:
            allowed = ", ".join(METHODS)
            raise ValueError(f"unknown reweighting method '{method}'; allowed: {allowed}")
        if method == "meta" and (base is None or not base.loss.reweight):
            raise ValueError("meta moves the composite family's weight net: loss.ranges reweight=R")
        self.method, self.base = method, base
        # the switch `propose` sets: on, the reweighting; off (the guard's retake), the plain loss
        self.on, self.off = torch.ones((), device=task.device), torch.zeros((), device=task.device)
        if method == "meta":
            assert base is not None
            self.moved = {REWEIGHT: base.ranges[REWEIGHT]}
            self.controls = nn.Parameter(
                torch.zeros(controlled_size(self.moved), device=task.device)
            )
            self.adam = torch.optim.Adam([self.controls], lr=META_LR)  # tanh(0): the base point
        elif method == "mwnet":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = _weight_net().to(task.device)
            self.adam = torch.optim.Adam(self.net.parameters(), lr=WEIGHT_NET_LR, weight_decay=1e-4)
        self.samplewise = cross_entropy if base is None else base.loss.samplewise(base.params)
        self.plain: LossFn = F.cross_entropy if base is None else base.loss.bind(base.params)

    def initial_state(self) -> dict[str, Tensor]:
        return {}

    def propose(
        self, theta: dict[str, Tensor], state: dict[str, Tensor], obs: Observation
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        return [self.on], state

    def base_params(self) -> list[Tensor]:
        return [self.off]

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> Loss:
        return self if params[0] is self.on else self.plain

    def at_controls(self) -> list[Tensor]:
        assert self.base is not None
        return params_from_unit(self.base.params, self.moved, torch.tanh(self.controls))

    def objective(self, step: SGDStep) -> Tensor:
        forward, params, lr, x_val, y_val = (
            step.forward,
            step.params,
            step.lr,
            step.x_val,
            step.y_val,
        )
        logits, y = forward(params, step.x), step.y
        if self.method == "meta":
            assert self.base is not None
            weighted = self.base.loss(self.at_controls(), logits, y)
            meta = lookahead(forward, params, weighted, lr, x_val, y_val)
            self.adam.zero_grad()
            meta.backward(inputs=[self.controls])
            self.adam.step()
            with torch.no_grad():
                current = self.at_controls()
            return self.base.loss(current, logits, y)
        losses = self.samplewise(logits, y)
        if self.method == "mwnet":
            weights = self.net(losses.detach()[:, None]).squeeze(1)
            meta = lookahead(forward, params, (weights * losses).mean(), lr, x_val, y_val)
            self.adam.zero_grad()
            meta.backward(inputs=list(self.net.parameters()))
            self.adam.step()
            with torch.no_grad():
                w = self.net(losses.detach()[:, None]).squeeze(1)
            return (w * losses).mean()
        return (l2rw_weights(forward, params, losses, lr, x_val, y_val) * losses).sum()


def l2rw_weights(
    call: Callable[[list[Tensor], Tensor], Tensor],
    params: list[Tensor],
    losses: Tensor,
    lr: float | Tensor,
    x_val: Tensor,
    y_val: Tensor,
) -> Tensor:
    """Learning to Reweight's (B,) weights of `losses`: the negative gradient of the
    lookahead validation loss in per-sample weights at 0, clipped at 0, summing to 1."""
    eps = torch.zeros_like(losses, requires_grad=True)
    meta = lookahead(call, params, (eps * losses).sum(), lr, x_val, y_val)
    (g_eps,) = torch.autograd.grad(meta, eps)
    w = (-g_eps).clamp_min(0)
    return w / w.sum().clamp_min(torch.finfo(w.dtype).tiny)  # all 0 stays 0; no host sync


def lookahead(
    call: Callable[[list[Tensor], Tensor], Tensor],
    params: list[Tensor],
    objective: Tensor,
    lr: float | Tensor,
    x_val: Tensor,
    y_val: Tensor,
) -> Tensor:
    """The validation cross-entropy after one virtual SGD step on `objective` (a weighted
    training loss of `params`), differentiable in whatever weighted it."""
    grads = torch.autograd.grad(objective, params, create_graph=True)
    return F.cross_entropy(call([p - lr * g for p, g in zip(params, grads)], x_val), y_val)
