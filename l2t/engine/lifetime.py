"""One student's lifetime under a teacher policy, one teacher step at a time
(docs/design.md §3): the step every estimator, the evaluator and the selection share.

A teacher step: the policy sees the observation and proposes loss parameters; the student
takes K SGD steps under that loss (`unroll`); the validation loss after them is the
meta-objective's term, and (for policies that observe it) its gradient with respect to the
loss parameters is the next loss-state observation `g`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from l2t.engine.student_state import Loss, StudentState, features, validate
from l2t.engine.task import Batches, Task

Theta = dict[str, Tensor]  # the teacher's parameters, as values
TeacherState = dict[str, Tensor]  # what a policy carries from one teacher step to the next


@dataclass
class Observation:
    student: Tensor  # student features (`student_state.features`), on the device
    grad: Tensor | None  # flat dL_val/dphi of the last step, for policies that observe it
    progress: float = 0.0  # student steps taken / budget, exact on the host (schedules)


class Policy(Protocol):
    """A teacher as a pure function of its parameters `theta` (agents/ implement it)."""

    observes_gradient: bool
    # whether a loss it sets is judged broken by the validation loss too (teachers), or only
    # by non-finite values (fixed losses: a baseline stays itself, docs/design.md §3)
    teacher_set: bool

    def initial_state(self) -> TeacherState: ...

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]: ...

    def base_params(self) -> list[Tensor]: ...

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> Loss: ...


@dataclass
class Lifetime:
    seed: int  # the student's initialization and batches
    t: int  # teacher steps taken
    student: StudentState
    teacher: TeacherState
    obs: Observation

    def done(self, task: Task) -> bool:
        return self.student.step >= task.steps

    def detach(self) -> Lifetime:
        obs = Observation(self.obs.student.detach(), _detach(self.obs.grad), self.obs.progress)
        teacher = {k: v.detach() for k, v in self.teacher.items()}
        return Lifetime(self.seed, self.t, self.student.detach(), teacher, obs)


@dataclass
class Step:
    life: Lifetime  # after the step
    val_loss: Tensor  # differentiable in theta when the step was
    val_acc: Tensor
    params: list[Tensor]  # the loss parameters the student trained under (detached)
    diverged: bool  # the proposed loss broke the student; it took the base loss instead
    # with `advance(..., chain=True)`: dL_val/dphi and the proposal phi with its graph to theta
    val_grad: tuple[Tensor, ...] | None = None
    proposal: list[Tensor] | None = None


def start(task: Task, policy: Policy, seed: int) -> Lifetime:
    """A fresh student of `seed` and the policy's initial state; before any step the train
    loss is unknown and the validation loss stands in for it."""
    student = task.init(seed)
    batches = task.batches(seed, 0)
    with torch.no_grad():
        val_loss, val_acc = validate(
            task.model, student, batches.x_val, batches.y_val, task.criterion
        )
    student.train_loss = val_loss
    obs = Observation(features(student, val_loss, val_acc, task.steps, task.num_classes), None)
    return Lifetime(seed, 0, student, policy.initial_state(), obs)


def advance(
    task: Task,
    policy: Policy,
    theta: Theta,
    life: Lifetime,
    differentiable: bool = False,
    chain: bool = False,
) -> Step:
    """One teacher step of `life` under the policy with parameters `theta`.

    With `differentiable` the new student state, teacher state and validation loss keep
    their graph to `theta` and to the previous states (greedy and truncated backprop);
    otherwise nothing beyond the loss-state gradient is differentiated. With `chain` (a
    one-step objective, the policy observing dL_val/dphi) that gradient, which the
    observation needs anyway, is returned with the proposal and the unroll's graph is
    freed: the caller gets dL_val/dtheta by the chain rule through the teacher alone, one
    backward pass through the unroll instead of two. One host sync per teacher step,
    outside the unroll: the divergence flag.
    """
    batches = task.batches(life.seed, life.t)
    with torch.set_grad_enabled(differentiable):
        params, teacher = policy.propose(theta, life.teacher, life.obs)
    if policy.observes_gradient and not differentiable:
        params = [p.detach().requires_grad_() for p in params]
    second_order = differentiable or policy.observes_gradient
    student = task.train(life.student, policy.loss_fn(task, params), batches, second_order)
    with torch.set_grad_enabled(second_order):
        val_loss, val_acc = validate(
            task.model, student, batches.x_val, batches.y_val, task.criterion
        )
    diverged = broken(task, policy, student, val_loss)
    if diverged:
        student, teacher, val_loss, val_acc = retake(task, policy, life, batches)
    grad, grads = None, None
    if policy.observes_gradient and not diverged:
        grads = torch.autograd.grad(val_loss, params, retain_graph=differentiable and not chain)
        grad = torch.cat([g.flatten() for g in grads]).detach()
    elif policy.observes_gradient:
        grad = torch.zeros_like(torch.cat([p.flatten() for p in params])).detach()
    if not differentiable:
        student, val_loss = student.detach(), val_loss.detach()
    obs = Observation(
        features(student, val_loss, val_acc, task.steps, task.num_classes),
        grad,
        student.step / task.steps,
    )
    new = Lifetime(life.seed, life.t + 1, student, teacher, obs)
    detached = [p.detach() for p in params]
    return Step(
        new,
        val_loss,
        val_acc,
        detached,
        diverged,
        grads if chain else None,
        params if chain else None,
    )


def broken(task: Task, policy: Policy, student: StudentState, val_loss: Tensor) -> bool:
    """The one divergence check (docs/design.md §3): a loss a teacher set is broken when the
    student is not finite or its validation loss is above `Task.broken`'s limit; a fixed
    loss only when not finite. One host sync."""
    if policy.teacher_set:
        return task.broken(student.finite, val_loss)
    return not bool(student.finite)


def retake(
    task: Task, policy: Policy, life: Lifetime, batches: Batches
) -> tuple[StudentState, TeacherState, Tensor, Tensor]:
    """The guard against a proposed loss that broke the student: the same K steps under the
    base loss instead, the policy restarted; the new student, teacher state and validation."""
    base = policy.loss_fn(task, policy.base_params())
    student = task.train(life.student.detach(), base, batches)
    with torch.no_grad():
        val_loss, val_acc = validate(
            task.model, student, batches.x_val, batches.y_val, task.criterion
        )
    return student, policy.initial_state(), val_loss, val_acc


def _detach(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach()
