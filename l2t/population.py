"""A population of lifetimes advanced together (docs/design.md §8): one teacher step of many
students as one batched computation with `torch.func.vmap`, so one device trains many
students at once instead of one after another.

Each member brings its own teacher parameters (PES and ES perturb them per member), teacher
state, observation, student and batches; the step is `lifetime.advance`'s first-order path
— propose, K SGD steps, validate — written over a single member and vmapped over the
stack. The numbers equal the one-at-a-time path's to float tolerance (a test), not bit for
bit: batched kernels reduce in another order. The divergence check stays outside the vmap
(one host sync for the whole population), and a member whose proposed loss broke its
student is retaken under the base loss exactly as `advance` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap

from l2t.lifetime import Lifetime, Observation, Policy, Step, Theta, retake
from l2t.student_state import StudentState, end_state, features, sgd_update, validate
from l2t.task import Task


def unbatchable(task: Task, policy: Policy) -> str | None:
    """Why the population of `task` under `policy` cannot be vmapped, or None if it can."""
    if policy.observes_gradient:
        return "a teacher that observes dL_val/dphi needs a second-order pass per student"
    if any(True for _ in task.model.buffers()):
        return f"the student ({type(task.model).__name__}) has BatchNorm buffers"
    if task.splits.model_logits is not None:
        return "distillation's soft labels (one_hot) have no batching rule"
    return None


def advance_together(
    task: Task, policy: Policy, thetas: Sequence[Theta], lives: Sequence[Lifetime]
) -> list[Step]:
    """One teacher step of every life in `lives` (life j under `thetas[j]`), first order:
    what `[advance(task, policy, th, life) for ...]` computes, as one vmapped call per
    group of lives whose batches have the same shape (the last teacher step may be short)."""
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
        )
        for j, step in zip(members, group):
            steps[j] = step
    return [s for s in steps if s is not None]


def _advance_group(
    task: Task, policy: Policy, thetas: Sequence[Theta], lives: Sequence[Lifetime], batches: Any
) -> list[Step]:
    sgd, model = task.sgd, task.model
    names = list(lives[0].student.params)

    def momentum_of(s: StudentState) -> dict[str, Tensor]:
        """Zeros before the first step (momentum * 0 + g is torch.optim.SGD's first g)."""
        if not sgd.momentum:
            return {}
        return {n: s.momentum.get(n, torch.zeros_like(s.params[n])) for n in names}

    def stack(dicts: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}

    def member(
        theta: Theta,
        teacher: dict[str, Tensor],
        obs: Tensor,
        params: dict[str, Tensor],
        momentum: dict[str, Tensor],
        x: Tensor,
        y: Tensor,
        x_val: Tensor,
        y_val: Tensor,
    ) -> tuple[Any, ...]:
        proposal, teacher = policy.propose(theta, teacher, Observation(obs, None))
        loss_fn = policy.loss_fn(task, proposal)

        def train_loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
            return loss_fn(functional_call(model, p, (xb,)), yb)

        total = torch.zeros((), device=x.device)
        start = StudentState(params, {}, {}, 0, total, total, total.bool())  # end_state reads
        buffers = [momentum.get(n) for n in names]  # its params; momentum: see momentum_of
        for xb, yb in zip(x, y):
            grads, loss = grad_and_value(train_loss)(params, xb, yb)
            updated = {}
            for i, n in enumerate(names):
                updated[n], buffers[i] = sgd_update(params[n], grads[n], buffers[i], sgd)
            params, total = updated, total + loss
        end = end_state(start, params, {}, names, buffers, total, x, sgd)
        val_loss, val_acc = validate(model, end, x_val, y_val, task.criterion)
        return (
            proposal, teacher, end.params, end.momentum, end.train_loss, end.update_norm,
            end.finite, val_loss, val_acc,
        )  # fmt: skip

    with torch.no_grad():
        out = vmap(member)(
            stack(thetas),
            stack([life.teacher for life in lives]),
            torch.stack([life.obs.student for life in lives]),
            stack([life.student.params for life in lives]),
            stack([momentum_of(life.student) for life in lives]),
            *(torch.stack([getattr(b, f) for b in batches]) for f in ("x", "y", "x_val", "y_val")),
        )
    proposal, teacher, params, momentum, train_loss, norm, finite, val_loss, val_acc = out
    limit = task.divergence_limit
    broken = (~(finite & (val_loss < limit))).tolist()  # the population's one host sync
    steps = []
    for j, life in enumerate(lives):
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
            )
            state = {k: v[j] for k, v in teacher.items()}
            v_loss, v_acc = val_loss[j], val_acc[j]
        obs = features(student, v_loss, v_acc, task.steps, task.num_classes)
        new = Lifetime(life.seed, life.t + 1, student, state, Observation(obs, None))
        steps.append(Step(new, v_loss, v_acc, [p[j] for p in proposal], bool(broken[j])))
    return steps
