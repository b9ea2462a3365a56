"""Whether a pseudo-label agrees with the labeled samples near it (issue 33; RESULTS.md "A
signal the margins do not hold"): in the student's own representation (the input of its last
linear layer) after a round of training, the share of a pool sample's `k` nearest labeled
samples (cosine) whose true label is its pseudo-label. The labeled part is data a user has;
the student learned its features from it and from the pool, so a pseudo-label that its
labeled neighbours contradict is more often wrong — where the model is unsure too, and
apart from the student's margin on it (`scripts/pool_signals.py`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from l2t.engine.student_state import StudentState, forward
from l2t.engine.task import Task
from l2t.losses.labels import labels_of

NEIGHBOURS = 5  # labeled neighbours a pseudo-label is checked against
CHUNK = 2000  # pool samples compared at once (a CHUNK x labeled similarity matrix)


def representation(model: nn.Module, student: StudentState, x: Tensor) -> Tensor:
    """The input of the student's last linear layer for `x` (evaluation mode), unit length."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[Tensor] = []
    hook = last.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        with torch.no_grad():
            forward(model, student, x)
    finally:
        hook.remove()
    return nn.functional.normalize(seen[0].flatten(1), dim=1)


def neighbour_agreement(task: Task, student: StudentState, k: int = NEIGHBOURS) -> Tensor:
    """Per pool sample, the share of its `k` nearest labeled samples whose label is its
    pseudo-label (the pool in the order of the task's training split after the labeled part)."""
    n = task.splits.labeled
    pseudo = labels_of(task.train_targets)[n : n + task.splits.pool]
    return (neighbour_labels(task, student, k) == pseudo[:, None]).float().mean(dim=1)


def neighbour_labels(task: Task, student: StudentState, k: int = NEIGHBOURS) -> Tensor:
    """(pool, k): the true labels of each pool sample's `k` nearest labeled samples."""
    splits = task.splits
    n = splits.labeled
    labels = labels_of(task.train_targets)[:n]
    labeled = representation(task.model, student, splits.x_train[:n])
    nearest = []
    for start in range(n, n + splits.pool, CHUNK):
        stop = min(start + CHUNK, n + splits.pool)
        pool = representation(task.model, student, splits.x_train[start:stop])
        nearest.append(labels[(pool @ labeled.T).topk(min(k, n), dim=1).indices])
    return torch.cat(nearest)


def margin_and_neighbours(margins: Tensor, agreement: Tensor) -> Tensor:
    """The score `aum_knn_drop` drops the lowest of: the pool's rank by mean margin plus its
    rank by the labeled neighbours' agreement (0 the lowest; ties by position)."""
    return (_ranks(margins) + _ranks(agreement)).float()


def _ranks(scores: Tensor) -> Tensor:
    return scores.argsort(stable=True).argsort()
