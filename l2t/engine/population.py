"""A population of lifetimes advanced together (docs/design.md §8): one teacher step of many
students as one batched computation with `torch.func.vmap`, so one device trains many
students at once instead of one after another.

Each member brings its own teacher parameters (PES and ES perturb them per member; greedy
shares one), teacher state, observation, student and batches. The step is
`lifetime.advance`'s, in two vmapped calls: the policy's proposal (with greedy's `chain`
keeping its graph to theta), then K SGD steps and validation written over a single member —
first order, or, when dL_val/dphi is needed (greedy's meta-gradient, a teacher observing
it), differentiated through the K steps by nested `torch.func` transforms. The numbers equal
the one-at-a-time path's to float tolerance (tests), not bit for bit: batched kernels
reduce in another order. The divergence check stays outside the vmap (one host sync for the
whole population), and a member whose proposed loss broke its student is retaken under the
base loss exactly as `advance` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from l2t.data.splits import Splits
from l2t.engine.lifetime import Lifetime, Observation, Policy, Step, Theta, retake
from l2t.engine.student_state import (
    Lookahead,
    MixedPrecision,
    StudentState,
    end_state,
    features,
    next_scale,
    sgd_update,
    skip_unless,
    validate,
)
from l2t.engine.task import Task


def unbatchable(model: nn.Module, splits: Splits) -> str | None:
    """Why a population of `model` students on `splits` cannot be vmapped, or None."""
    if any(True for _ in model.buffers()):
        return f"the student ({type(model).__name__}) has BatchNorm buffers"
    return None


def advance_together(
    task: Task,
    policy: Policy,
    thetas: Sequence[Theta],
    lives: Sequence[Lifetime],
    chain: bool = False,
) -> list[Step]:
    """One teacher step of every life in `lives` (life j under `thetas[j]`): what
    `[advance(task, policy, th, life, chain=chain) for ...]` computes, as vmapped calls per
    group of lives whose batches have the same shape (the last teacher step may be short).

    With `chain` (the greedy estimator) every step carries dL_val/dphi and its proposal with
    the graph to `thetas`, as `advance(..., differentiable=True, chain=True)` returns them,
    so the caller gets dL_val/dtheta by one backward through the stacked proposals."""
    steps: list[Step | None] = [None] * len(lives)
    groups: dict[tuple[int, int], list[int]] = {}
    batches = [task.batches(life.seed, life.t) for life in lives]
    for j, b in enumerate(batches):
        groups.setdefault((len(b.x), len(b.x_val)), []).append(j)
    for members in groups.values():
        group = _advance_group(
            task,
            policy,
            [thetas[j] for j in members],
            [lives[j] for j in members],
            [batches[j] for j in members],
            chain,
        )
        for j, step in zip(members, group):
            steps[j] = step
    return [s for s in steps if s is not None]


def _advance_group(
    task: Task,
    policy: Policy,
    thetas: Sequence[Theta],
    lives: Sequence[Lifetime],
    batches: Any,
    chain: bool,
) -> list[Step]:
    model = task.model
    # each member's SGD at its own student step (a staggered population spans the budget):
    # `Task.sgd_at` decides the rate, vmapped as a tensor; momentum and decay are the task's
    sgd = task.sgd_at(lives[0].student.step)
    dtype = next(iter(lives[0].student.params.values())).dtype
    rates = torch.tensor(
        [task.sgd_at(life.student.step).lr for life in lives], dtype=dtype, device=task.device
    )
    names = list(lives[0].student.params)
    observes = policy.observes_gradient
    second_order = chain or observes  # dL_val/dphi: the meta-gradient or the observation
    sizes = [p.numel() for p in policy.base_params()]
    # first-order members under the task's autocast, as `unroll`; second order stays float32
    amp = MixedPrecision(None if second_order else task.autocast, task.device.type)
    scales = [amp.start(life.student, task.device) for life in lives]

    def momentum_of(s: StudentState) -> dict[str, Tensor]:
        """Zeros before the first step (momentum * 0 + g is torch.optim.SGD's first g)."""
        if not sgd.momentum:
            return {}
        return {n: s.momentum.get(n, torch.zeros_like(s.params[n])) for n in names}

    def stack(dicts: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}

    def propose(theta: Theta, teacher: dict[str, Tensor], *obs: Tensor) -> tuple[Any, ...]:
        return policy.propose(theta, teacher, Observation(obs[0], obs[1] if observes else None))

    def train(
        phi: list[Tensor],
        lr: Tensor,
        params: dict[str, Tensor],
        momentum: dict[str, Tensor],
        scale: Tensor | None,
        x: Tensor,
        y: Tensor,
        x_val: Tensor,
        y_val: Tensor,
    ) -> tuple[Any, ...]:
        """K SGD steps under the loss `phi` and validation; with `second_order` also
        dL_val/dphi through the K steps (nested torch.func transforms)."""
        member_sgd = dataclasses.replace(sgd, lr=lr)

        def val_after(phi: list[Tensor]) -> tuple[Tensor, tuple[Any, ...]]:
            loss_fn = policy.loss_fn(task, phi)
            if isinstance(loss_fn, Lookahead):  # it steps its own state: one student at a time
                raise TypeError("a Lookahead loss (reweighting) is not vmapped")

            def train_loss(
                p: dict[str, Tensor], xb: Tensor, yb: Tensor, s: Tensor | None
            ) -> tuple[Tensor, Tensor]:
                with amp.forward():
                    logits = functional_call(model, p, (xb,))
                loss = loss_fn(amp.full(logits), yb)
                return amp.scale_loss(loss, s), loss

            p, total, s = params, torch.zeros((), device=x.device), scale
            start = StudentState(p, {}, {}, 0, total, total, total.bool())  # end_state reads
            buffers = [momentum.get(n) for n in names]  # its params; momentum: momentum_of
            for xb, yb in zip(x, y):
                scaled, (_, loss) = grad_and_value(train_loss, has_aux=True)(p, xb, yb, s)
                unscaled, ok = amp.unscale(tuple(scaled[n] for n in names), s)
                updated = {}
                for i, n in enumerate(names):
                    new, m = sgd_update(p[n], unscaled[i], buffers[i], member_sgd)
                    updated[n] = skip_unless(ok, new, p[n])
                    buffers[i] = skip_unless(ok, m, buffers[i])
                if s is not None and ok is not None:
                    s = next_scale(s, ok)
                p, total = updated, total + loss
            end = end_state(start, p, {}, names, buffers, total, x, member_sgd)
            val_loss, val_acc = validate(model, end, x_val, y_val, task.criterion)
            rest = (end.params, end.momentum, end.train_loss, end.update_norm, end.finite)
            return val_loss, (*rest, val_acc, *([] if s is None else [s]))  # fp16: its scale

        if second_order:
            grads, (val_loss, rest) = grad_and_value(val_after, has_aux=True)(phi)
            return (val_loss, *rest, grads)
        val_loss, rest = val_after(phi)
        return (val_loss, *rest)

    observed = [torch.stack([life.obs.student for life in lives])]
    if observes:  # no gradient yet before a student's first step: zeros, as the policy reads it
        zero = torch.zeros(sum(sizes), device=task.device)
        observed.append(
            torch.stack([zero if life.obs.grad is None else life.obs.grad for life in lives])
        )
    # one theta for all (greedy): the teacher's weights unbatched, one matmul for all members
    shared = all(theta is thetas[0] for theta in thetas)
    with torch.set_grad_enabled(chain):  # greedy: the proposals keep their graph to theta
        proposal, teacher = vmap(propose, in_dims=(None if shared else 0, 0, *[0] * len(observed)))(
            thetas[0] if shared else stack(thetas),
            stack([life.teacher for life in lives]),
            *observed,
        )
    with torch.no_grad():
        scaled = scales[0] is not None  # fp16: each member's loss scale, batched
        in_dims = (0, 0, 0, 0, 0 if scaled else None, 0, 0, 0, 0)
        out = vmap(train, in_dims=in_dims)(
            [p.detach() for p in proposal],
            rates,
            stack([life.student.params for life in lives]),
            stack([momentum_of(life.student) for life in lives]),
            torch.stack(scales) if scaled else None,  # type: ignore[arg-type]
            *(torch.stack([getattr(b, f) for b in batches]) for f in ("x", "y", "x_val", "y_val")),
        )
    val_loss, params, momentum, train_loss, norm, finite, val_acc, *extra = out
    scale = extra.pop(0) if scaled else None  # fp16 is first order: never beside val_grad
    val_grad = extra[0] if second_order else None
    broken = task.broken_mask(finite, val_loss).tolist()  # the population's one host sync
    steps = []
    for j, life in enumerate(lives):
        grads: tuple[Tensor, ...] | None = None
        if broken[j]:
            student, state, v_loss, v_acc = retake(task, policy, life, batches[j])
        else:
            student = StudentState(
                {n: params[n][j] for n in names},
                {},
                {n: momentum[n][j] for n in names} if sgd.momentum else {},
                life.student.step + len(batches[j].x),
                train_loss[j],
                norm[j],
                finite[j],
                life.student.loss_scale if scale is None else scale[j],
            )
            state = {k: v[j].detach() for k, v in teacher.items()}
            v_loss, v_acc = val_loss[j], val_acc[j]
            grads = None if val_grad is None else tuple(g[j] for g in val_grad)
        grad = None
        if observes:  # the next observation: dL_val/dphi, zeros after a retake (as advance)
            grad = (
                torch.cat([g.flatten() for g in grads])
                if grads
                else torch.zeros(sum(sizes), device=task.device)
            )
        obs = features(student, v_loss, v_acc, task.steps, task.num_classes)
        observation = Observation(obs, grad, student.step / task.steps)
        new = Lifetime(life.seed, life.t + 1, student, state, observation)
        mine = [p[j] for p in proposal]
        steps.append(
            Step(
                new,
                v_loss,
                v_acc,
                [p.detach() for p in mine],
                bool(broken[j]),
                grads if chain else None,
                mine if chain and not broken[j] else None,
            )
        )
    return steps
