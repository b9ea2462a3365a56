"""The paper's procedure (L2T-DLN, NeurIPS 2023): the teacher keeps learning while its own
student trains (`l2t compare`'s `teacher_learning`; docs/design.md §5).

Each teacher step the policy proposes a loss, the student takes K steps under it
differentiably (`lifetime.advance`), and the validation loss after them is backpropagated
to the teacher's parameters; every `bptt` teacher steps (or at the end of the budget) the
teacher's Adam takes a step and the window's graph is dropped. Truncated backprop over one
student, whose updates the student itself feels — the meta-training form of the same
estimate is `tbptt` over a population. How the teacher sees dL_val/dphi (`update`):
- `fused` (ours): the gradient of the step's own unroll, w.r.t. the loss it proposed, is
  the next step's observation (what `advance` computes for a policy that observes it);
- `three_stage` (the authors'): before proposing, a probe unroll from the same student
  under the current loss gives the gradient the proposal reads; the probe is not kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

from l2t.engine.lifetime import Lifetime, Observation, Policy, advance, start
from l2t.engine.student_state import validate
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, evaluate
from l2t.io import progress, threads


class OnlineTeacher(Policy, Protocol):
    """A policy that learns while its student trains: its live weights and its own Adam."""

    hparams: dict[str, Any]
    optimizer: torch.optim.Optimizer

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]: ...

    def split(self, phi: Tensor) -> list[Tensor]: ...


def teach_while_learning(
    task: Task,
    teacher: OnlineTeacher,
    seed: int,
    eval_every: int,
    test: tuple[Tensor, Tensor] | None = None,
) -> EpisodeResult:
    """Train the student of `seed` while `teacher` (an LSTM or MLP teacher: a policy with
    its own Adam) learns from it; the teacher's weights change in place."""
    update = teacher.hparams.get("update", "fused")
    window_size = int(teacher.hparams.get("bptt", 1))
    theta: dict[str, Tensor] = dict(teacher.named_parameters())  # live: Adam steps them
    teacher.optimizer.zero_grad(set_to_none=True)
    life, result, window = start(task, teacher, seed), EpisodeResult(), 0
    while not life.done(task):
        if life.student.step >= result.next_eval:
            result.curve.append(evaluate(task, life.student, test))
            result.next_eval += eval_every
        threads.rebalance()
        if update == "three_stage" and teacher.observes_gradient:
            life = _probed(task, teacher, life)
        step = advance(task, teacher, theta, life, differentiable=True)
        progress.tick(step.life.student.step - life.student.step)
        life, window = step.life, window + 1
        if step.diverged:  # retaken under the base loss: the window's graph is dropped
            result.diverged_steps += 1
            teacher.optimizer.zero_grad(set_to_none=True)
            life, window = life.detach(), 0
            continue
        end_of_window = window >= window_size or life.done(task)
        step.val_loss.backward(retain_graph=not end_of_window)
        if end_of_window:
            grads = [p.grad for p in theta.values() if p.grad is not None]
            if all(bool(torch.isfinite(g).all()) for g in grads):
                teacher.optimizer.step()
            teacher.optimizer.zero_grad(set_to_none=True)
            life, window = life.detach(), 0
    result.curve.append(evaluate(task, life.student, test))
    result.val_acc = result.curve[-1]["val_acc"]
    result.test_acc = result.curve[-1].get("test_acc")
    return result


def _probed(task: Task, teacher: OnlineTeacher, life: Lifetime) -> Lifetime:
    """`life` observing dL_val/dphi at the loss it trains under now (the teacher state's
    `phi`), from a probe unroll of this teacher step's batches that is not kept."""
    params = [p.detach().requires_grad_() for p in teacher.split(life.teacher["phi"])]
    batches = task.batches(life.seed, life.t)
    loss = teacher.loss_fn(task, params)
    probe = task.train(life.student, loss, batches, create_graph=True)
    val_loss, _ = validate(task.model, probe, batches.x_val, batches.y_val, task.criterion)
    grad = torch.cat([g.flatten() for g in torch.autograd.grad(val_loss, params)])
    obs = Observation(life.obs.student, grad.detach(), life.obs.progress)
    return dataclasses.replace(life, obs=obs)
