"""Student-label mixing (SLaM, Kontonis et al., NeurIPS 2023) on an unlabeled pool: a
forward loss correction of the model's pseudo-labels (docs/design.md §6).

Its noise model: the model's label of a pool sample x is the true class with probability
alpha(x), else one of the other classes of the model's top k. So the student's prediction
f(x) passes through that noise before it meets the model's label:

    mix(f; alpha, k) = alpha f + (1 - alpha) (1 - f) * top_k(model(x)) / (k - 1)

and the student minimizes the cross-entropy of the model's soft label (at temperature T)
against mix(f) — where the model is likely wrong, the student's own prediction takes the
blame. alpha(x) is the model's accuracy at its margin (top-1 minus top-2 probability), fit
on the trusted split by isotonic regression, as the paper estimates it from validation data;
k and T are chosen on validation (`compare`'s `slam` row). The labeled part keeps plain
cross-entropy on its true labels. Not reproduced: the paper's per-sample k(x) (one k per
run here; how it estimates k(x) is not in the sources this project has).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from l2t.engine.student_state import LossFn

ALPHA_FLOOR = 0.01  # alpha never 0: mix stays > 0 outside the top k, the loss finite


def margins(logits: Tensor) -> Tensor:
    """(N,) the model's top-1 minus its top-2 probability: how sure it is."""
    top = logits.softmax(dim=1).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


@dataclass(frozen=True)
class Isotonic:
    """A non-decreasing step function of one variable, fit by pool-adjacent-violators."""

    edges: Tensor  # (B,) where each block starts, increasing
    values: Tensor  # (B,) its mean target

    @classmethod
    def fit(cls, x: Tensor, y: Tensor) -> Isotonic:
        order = x.argsort()
        blocks: list[list[float]] = []  # [start, sum of targets, count]
        for xi, yi in zip(x[order].tolist(), y[order].double().tolist()):
            blocks.append([xi, yi, 1.0])
            while (
                len(blocks) > 1 and blocks[-2][1] * blocks[-1][2] >= blocks[-1][1] * blocks[-2][2]
            ):
                _, total, count = blocks.pop()
                blocks[-1][1] += total
                blocks[-1][2] += count
        edges = torch.tensor([b[0] for b in blocks], dtype=x.dtype, device=x.device)
        values = torch.tensor([b[1] / b[2] for b in blocks], dtype=x.dtype, device=x.device)
        return cls(edges, values)

    def __call__(self, x: Tensor) -> Tensor:
        at = torch.searchsorted(self.edges, x.contiguous(), right=True) - 1
        return self.values[at.clamp_min(0)]


def fit_alpha(model_logits: Tensor, labels: Tensor) -> Isotonic:
    """alpha(margin): the model's accuracy on the trusted split as a non-decreasing
    function of its margin."""
    return Isotonic.fit(margins(model_logits), (model_logits.argmax(dim=1) == labels).float())


def with_pool_flag(targets: Tensor, labeled: int) -> Tensor:
    """Training targets (N, 1 + C) with a last column: 1 for the pool's samples, 0 for the
    labeled part (the first `labeled`), so the loss treats each as SLaM does."""
    flag = torch.zeros(len(targets), 1, dtype=targets.dtype, device=targets.device)
    flag[labeled:] = 1
    return torch.cat([targets, flag], dim=1)


def slam_loss(alpha: Isotonic, k: int, temperature: float) -> LossFn:
    """(logits, targets with the pool flag) -> the batch's mean loss: cross-entropy on the
    labeled samples, the corrected soft-label cross-entropy on the pool's."""

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        labels, model, pool = targets[:, 0].long(), targets[:, 1:-1], targets[:, -1] > 0
        ce = F.cross_entropy(logits, labels, reduction="none")
        f = logits.softmax(dim=1)
        a = alpha(margins(model)).clamp(ALPHA_FLOOR, 1.0)[:, None]
        top = torch.zeros_like(f).scatter_(1, model.topk(k, dim=1).indices, 1.0)
        mix = a * f + (1 - a) * (1 - f) * top / (k - 1)
        soft = (model / temperature).softmax(dim=1)
        corrected = -(soft * mix.clamp_min(torch.finfo(mix.dtype).tiny).log()).sum(dim=1)
        return torch.where(pool, corrected, ce).mean()

    return loss
