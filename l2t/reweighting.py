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
Students train on the lifetime path's data (the seed's batches, the teacher step's
validation batch) at the task's SGD, so rows pair with every other method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from l2t import progress, threads
from l2t.composite_loss import REWEIGHT, CompositeLoss, controlled_size, params_from_unit
from l2t.student_state import StudentState, sgd_update
from l2t.task import Task
from l2t.teaching import EpisodeResult, evaluate

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
    return F.cross_entropy(logits, targets, reduction="none")


def _weight_net() -> nn.Module:
    return nn.Sequential(
        nn.Linear(1, WEIGHT_NET_HIDDEN), nn.ReLU(), nn.Linear(WEIGHT_NET_HIDDEN, 1), nn.Sigmoid()
    )


def reweighted_student(
    task: Task,
    method: str,
    seed: int,
    eval_every: int,
    test: tuple[Tensor, Tensor] | None = None,
    base: BasePoint | None = None,
) -> EpisodeResult:
    """The student of `seed` trained with `method` over cross-entropy or, given `base`, over
    the composite family at that point."""
    if method not in METHODS:
        raise ValueError(f"unknown reweighting method '{method}'; allowed: {', '.join(METHODS)}")
    if method == "meta" and (base is None or not base.loss.reweight):
        raise ValueError("meta moves the composite family's weight net: loss.ranges reweight=R")
    model, state = task.model, task.init(seed)
    names = list(state.params)
    params = [p.clone() for p in state.params.values()]
    buffers = dict(state.buffers)
    momentum: list[Tensor | None] = [None] * len(params)
    if method == "meta":
        assert base is not None
        moved = {REWEIGHT: base.ranges[REWEIGHT]}
        controls = nn.Parameter(torch.zeros(controlled_size(moved), device=task.device))
        adam = torch.optim.Adam([controls], lr=META_LR)  # tanh(0) = 0: the base point exactly
    elif method == "mwnet":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _weight_net().to(task.device)
        adam = torch.optim.Adam(net.parameters(), lr=WEIGHT_NET_LR, weight_decay=1e-4)
    samplewise = cross_entropy if base is None else base.loss.samplewise(base.params)

    def call(weights: list[Tensor], x: Tensor) -> Tensor:
        return functional_call(model, {**dict(zip(names, weights)), **buffers}, (x,))

    def at_controls() -> list[Tensor]:
        assert base is not None
        return params_from_unit(base.params, moved, torch.tanh(controls))

    result, step = EpisodeResult(), 0
    model.train()
    while step < task.steps:
        if step >= result.next_eval:
            now = StudentState(dict(zip(names, params)), buffers, {}, step, *_zeros(params))
            result.curve.append(evaluate(task, now, test))
            result.next_eval += eval_every
        threads.rebalance()
        if step % task.k == 0:  # a teacher step's batches, validation batch and SGD
            batches, sgd = task.batches(seed, step // task.k), task.sgd_at(step)
        x, y = batches.x[step % task.k], batches.y[step % task.k]
        live = [p.detach().requires_grad_() for p in params]
        logits = call(live, x)

        val = (batches.x_val, batches.y_val)
        if method == "meta":
            assert base is not None
            meta = lookahead(call, live, base.loss(at_controls(), logits, y), sgd.lr, *val)
            adam.zero_grad()
            meta.backward(inputs=[controls])
            adam.step()
            with torch.no_grad():
                current = at_controls()
            objective = base.loss(current, logits, y)
        elif method == "mwnet":
            losses = samplewise(logits, y)
            weighted = (net(losses.detach()[:, None]).squeeze(1) * losses).mean()
            meta = lookahead(call, live, weighted, sgd.lr, *val)
            adam.zero_grad()
            meta.backward(inputs=list(net.parameters()))
            adam.step()
            with torch.no_grad():
                w = net(losses.detach()[:, None]).squeeze(1)
            objective = (w * losses).mean()
        else:
            losses = samplewise(logits, y)
            objective = (l2rw_weights(call, live, losses, sgd.lr, *val) * losses).sum()
        grads = torch.autograd.grad(objective, live)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(live, grads)):
                params[i], momentum[i] = sgd_update(p.detach(), g, momentum[i], sgd)
        step += 1
        progress.tick(1)
    final = StudentState(dict(zip(names, params)), buffers, {}, step, *_zeros(params))
    result.curve.append(evaluate(task, final, test))
    result.val_acc = result.curve[-1]["val_acc"]
    result.test_acc = result.curve[-1].get("test_acc")
    return result


def l2rw_weights(
    call: Callable[[list[Tensor], Tensor], Tensor],
    params: list[Tensor],
    losses: Tensor,
    lr: float,
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
    lr: float,
    x_val: Tensor,
    y_val: Tensor,
) -> Tensor:
    """The validation cross-entropy after one virtual SGD step on `objective` (a weighted
    training loss of `params`), differentiable in whatever weighted it."""
    grads = torch.autograd.grad(objective, params, create_graph=True)
    return F.cross_entropy(call([p - lr * g for p, g in zip(params, grads)], x_val), y_val)


def _zeros(params: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    zero = params[0].new_zeros(())
    return zero, zero, zero.new_ones((), dtype=torch.bool)
