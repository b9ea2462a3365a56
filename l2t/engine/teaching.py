"""One student's whole lifetime under a frozen policy, on the path meta-training uses
(`lifetime.start` / `advance`, docs/design.md §3): selection, the final evaluation, `l2t
teach`, every method of `l2t compare` and `train-model` train their students here, so a
teacher is judged on the engine it was trained on and every method of a comparison gets
the same data, budget, divergence guard and evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from l2t.engine.evaluation import accuracy
from l2t.engine.lifetime import (
    Lifetime,
    Observation,
    Policy,
    Step,
    TeacherState,
    Theta,
    advance,
    start,
)
from l2t.engine.student_state import Loss, StudentState, forward
from l2t.engine.task import Task
from l2t.io import progress, threads


@dataclass
class EpisodeResult:
    curve: list[dict[str, float]] = field(default_factory=list)  # step, val_acc[, test_acc]
    val_acc: float = 0.0
    test_acc: float | None = None
    diverged_steps: int = 0
    next_eval: int = 0  # the student step of the next evaluation (a run in progress)


OnStep = Callable[[Step, Lifetime, EpisodeResult], None]  # (the step, the life before, so far)


class GivenLoss:
    """A policy with no parameters that trains a student under one given loss (a baseline
    whose loss is not a registered fixed loss, e.g. `l2t/methods/slam.py`): judged as a fixed
    loss, broken only when not finite (docs/design.md §3)."""

    observes_gradient = False
    teacher_set = False

    def __init__(self, loss: Loss) -> None:
        self.loss = loss

    def initial_state(self) -> TeacherState:
        return {}

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        return [], state

    def base_params(self) -> list[Tensor]:
        return []

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> Loss:
        return self.loss


def run_student(
    task: Task,
    policy: Policy,
    theta: Theta,
    seed: int,
    eval_every: int,
    test: tuple[Tensor, Tensor] | None = None,
    on_step: OnStep | None = None,
) -> EpisodeResult:
    """Train the student of `seed` to the end of its budget under `policy` at `theta`.

    Every `eval_every` student steps and at the end the whole val split (and the test
    split, when given, for reporting only) is evaluated into the result's `curve`.
    """
    life, result = start(task, policy, seed), EpisodeResult()
    while not life.done(task):
        if life.student.step >= result.next_eval:
            result.curve.append(evaluate(task, life.student, test))
            result.next_eval += eval_every
        threads.rebalance()
        step = advance(task, policy, theta, life)
        progress.tick(step.life.student.step - life.student.step)
        result.diverged_steps += int(step.diverged)
        if on_step is not None:
            on_step(step, life, result)
        life = step.life
    result.curve.append(evaluate(task, life.student, test))
    result.val_acc = result.curve[-1]["val_acc"]
    result.test_acc = result.curve[-1].get("test_acc")
    return result


def evaluate(
    task: Task, student: StudentState, test: tuple[Tensor, Tensor] | None = None
) -> dict[str, float]:
    """The student's accuracy on the whole val split (and `test`), BatchNorm in eval mode."""
    point: dict[str, float] = {"step": student.step}
    point["val_acc"] = accuracy_of(task, student, task.splits.x_val, task.splits.y_val)
    if test is not None:
        point["test_acc"] = accuracy_of(task, student, *test)
    return point


def accuracy_of(
    task: Task, student: StudentState, x: Tensor, y: Tensor, batch_size: int = 1000
) -> float:
    with torch.no_grad():
        chunks = [
            forward(task.model, student, x[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
    return accuracy(torch.cat(chunks), y)
