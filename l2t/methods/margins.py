"""The student's margin on a sample's label, over training (issue 33; RESULTS.md "What tells
a right pseudo-label from a wrong one"): `z_y - max_{k != y} z_k`, averaged over the times
the sample is seen — the area under the margin of Pleiss et al. (NeurIPS 2020). A label the
student fits only late, against what it learns from the rest of the data, has a low one.
On the MNIST-1D pool it tells a right pseudo-label from a wrong one better than the model's
own confidence does (AUC 0.83 against 0.77; 0.71 against 0.59 where the model's margin is
below the median: `scripts/pool_signals.py`).

`MarginMemory` keeps the running mean per training sample, from the logits a training step
computes anyway; `aum_drop` (a fixed recipe of two rounds; `aum_knn_drop` with the labeled
neighbours' agreement too, `l2t/methods/neighbours.py`), `meta_trust_aum` (a learned
weight that reads it as it accrues) and `meta_trust_aum2` (a learned weight that reads a
whole first round's) use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from l2t.engine.lifetime import Observation
from l2t.engine.student_state import Lookahead, Loss, LossFn, SGDStep, StudentState
from l2t.engine.task import Task
from l2t.losses.labels import labels_of


def margin_on(logits: Tensor, labels: Tensor) -> Tensor:
    """`z_y - max_{k != y} z_k` per sample, detached."""
    logits = logits.detach()
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return own - others


class MarginMemory:
    """The running mean of each training sample's margin on its label (0 before it is
    seen), indexed like the task's training split."""

    def __init__(self, samples: int, device: torch.device) -> None:
        self.total = torch.zeros(samples, device=device)
        self.seen = torch.zeros(samples, device=device)

    def record(self, index: Tensor, margins: Tensor) -> None:
        self.total.index_add_(0, index, margins.to(self.total.dtype))
        self.seen.index_add_(0, index, torch.ones_like(self.total[index]))

    def mean(self, index: Tensor | None = None) -> Tensor:
        if index is None:
            return self.total / self.seen.clamp_min(1)
        return self.total[index] / self.seen[index].clamp_min(1)


class BatchIndex:
    """The training-split indices of each SGD step's batch, for a policy that keeps state
    per sample: the task's own (`Task.train_indices`; batches are a pure function of seed
    and step), so nothing of the engine changes. `start` at each proposal, `next` at each
    SGD step of the teacher step; a retaken teacher step (the guard) trains under the plain
    loss and reads none."""

    def __init__(self, task: Task, seed: int) -> None:
        self.task, self.seed = task, seed
        self.t = self.i = 0  # the teacher step and its SGD step

    def start(self, obs: Observation) -> None:
        self.t, self.i = round(obs.progress * self.task.steps) // self.task.k, 0

    def next(self) -> Tensor:
        index = self.task.train_indices(self.seed, self.t)[self.i].to(self.task.device)
        self.i += 1
        return index


class MarginRecorded(Lookahead):
    """A student under a fixed loss (`loss`, of the logits) whose every SGD step records
    its batch's margins in `memory`: round one of `aum_drop`."""

    observes_gradient = False
    teacher_set = False  # judged as a fixed loss: broken only when not finite

    def __init__(self, task: Task, seed: int, loss: LossFn) -> None:
        self.loss, self.index = loss, BatchIndex(task, seed)
        self.memory = MarginMemory(len(task.splits.y_train), task.device)
        self.on = torch.ones((), device=task.device)

    def initial_state(self) -> dict[str, Tensor]:
        return {}

    def propose(
        self, theta: dict[str, Tensor], state: dict[str, Tensor], obs: Observation
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        self.index.start(obs)
        return [self.on], state

    def base_params(self) -> list[Tensor]:
        return []

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> Loss:
        return self if params and params[0] is self.on else self.loss

    def objective(self, step: SGDStep) -> Tensor:
        logits = step.forward(step.params, step.x)
        self.memory.record(self.index.next(), margin_on(logits, labels_of(step.y)))
        return self.loss(logits, step.y)


def first_round(task: Task, seed: int, loss: LossFn) -> tuple[Tensor, StudentState]:
    """The mean margin of every training sample over a whole lifetime of the student of
    `seed` under `loss`, and that student at its end (round one of `aum_drop`,
    `aum_knn_drop` and `meta_trust_aum2`)."""
    from l2t.engine.teaching import run_student  # the engine's loop, above this module

    recorded = MarginRecorded(task, seed, loss)
    end: list[StudentState] = []
    run_student(
        task, recorded, {}, seed, task.steps, on_step=lambda s, *_: end.append(s.life.student)
    )
    return recorded.memory.mean(), end[-1]
