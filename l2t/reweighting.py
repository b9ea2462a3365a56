"""Online meta-learning with the trusted set (docs/design.md §6): per-sample weights learned
while the student trains, by a one-step (K = 1) lookahead on a clean validation batch.

- `mwnet` (Meta-Weight-Net, Shu et al., NeurIPS 2019): a 1 -> 100 -> 1 sigmoid net maps a
  sample's loss to its weight; each step a virtual SGD step under the weighted loss, the
  validation loss after it, one Adam step of the weight net on its gradient, then the real
  step under the updated weights.
- `l2rw` (Learning to Reweight, Ren et al., ICML 2018): the weights are the negative
  gradient of that lookahead validation loss with respect to per-sample weights at 0,
  clipped at 0 and normalised to sum 1; no state.

Their published form reweights cross-entropy; with `loss` the per-sample loss of the
composite family at the run's base point, the same update works on top of the best fixed
loss (`compare`'s `*_base` rows). Students train on the lifetime path's data (the seed's
batches, the teacher step's validation batch) at the task's SGD, so rows pair with every
other method.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from l2t import progress, threads
from l2t.student_state import StudentState, sgd_update
from l2t.task import Task
from l2t.teaching import EpisodeResult, evaluate

PerSample = Callable[[Tensor, Tensor], Tensor]  # (logits, targets) -> (B,) losses
METHODS = ("mwnet", "l2rw")
WEIGHT_NET_HIDDEN = 100  # Meta-Weight-Net's
WEIGHT_NET_LR = 1e-3


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
    loss: PerSample = cross_entropy,
) -> EpisodeResult:
    """The student of `seed` trained with `method`'s per-sample weights over `loss`."""
    if method not in METHODS:
        raise ValueError(f"unknown reweighting method '{method}'; allowed: {', '.join(METHODS)}")
    model, state = task.model, task.init(seed)
    names = list(state.params)
    params = [p.clone() for p in state.params.values()]
    buffers = dict(state.buffers)
    momentum: list[Tensor | None] = [None] * len(params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _weight_net().to(task.device)
    adam = torch.optim.Adam(net.parameters(), lr=WEIGHT_NET_LR, weight_decay=1e-4)

    def call(weights: list[Tensor], x: Tensor) -> Tensor:
        return functional_call(model, {**dict(zip(names, weights)), **buffers}, (x,))

    result, step = EpisodeResult(), 0
    model.train()
    while step < task.steps:
        if step >= result.next_eval:
            now = StudentState(dict(zip(names, params)), buffers, {}, step, *_zeros(params))
            result.curve.append(evaluate(task, now, test))
            result.next_eval += eval_every
        threads.rebalance()
        batches = task.batches(seed, step // task.k)
        sgd = task.sgd_at(step - step % task.k)
        x, y = batches.x[step % task.k], batches.y[step % task.k]
        live = [p.detach().requires_grad_() for p in params]
        losses = loss(call(live, x), y)

        val = (batches.x_val, batches.y_val)
        if method == "mwnet":
            weighted = (net(losses.detach()[:, None]).squeeze(1) * losses).mean()
            meta = lookahead(call, live, weighted, sgd.lr, *val)
            adam.zero_grad()
            meta.backward(inputs=list(net.parameters()))
            adam.step()
            with torch.no_grad():
                w = net(losses.detach()[:, None]).squeeze(1)
            objective = (w * losses).mean()
        else:
            eps = torch.zeros_like(losses, requires_grad=True)
            meta = lookahead(call, live, (eps * losses).sum(), sgd.lr, *val)
            (g_eps,) = torch.autograd.grad(meta, eps)
            w = (-g_eps).clamp_min(0)
            w = w / w.sum().clamp_min(torch.finfo(w.dtype).tiny)  # all 0 stays 0; no host sync
            objective = (w.detach() * losses).sum()
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
