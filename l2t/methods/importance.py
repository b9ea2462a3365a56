"""Importance-weighted KD on an unlabeled pool (docs/design.md §6): each pool sample's KD loss
weighted by the probability that its pseudo-label is right.

Importance reweighting under label noise (Liu & Tao, TPAMI 2016) makes a loss on noisy
labels unbiased for the clean one with the weight p(y = y~ | x) / p(y~ | x); a model's hard
pseudo-label is a function of x, so the weight is alpha(x) = p(the pseudo-label is right |
x). It is estimated as SLaM estimates it (`l2t/methods/slam.py`): the model's accuracy at
its margin, fit on the trusted split by isotonic regression. This is the principle the
weighted-distillation paper (Iliopoulos et al., NeurIPS 2022) names in its abstract; that
paper's own estimator of the weights is not in the sources this project has, so this row is
not a reproduction of it. The labeled part keeps weight 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from l2t.engine.student_state import LossFn
from l2t.losses.labels import soft_kl
from l2t.methods.slam import Isotonic, margins


def with_trust(targets: Tensor, labeled: int, alpha: Isotonic) -> Tensor:
    """Training targets (N, 1 + C) with a last column: each sample's weight, 1 on the labeled
    part (the first `labeled`), alpha(the model's margin) on the pool — computed once, as
    data, not in every step's loss."""
    trust = torch.ones(len(targets), 1, dtype=targets.dtype, device=targets.device)
    trust[labeled:, 0] = alpha(margins(targets[labeled:, 1:]))
    return torch.cat([targets, trust], dim=1)


def importance_kd_loss(weight: float, temperature: float) -> LossFn:
    """(logits, targets with their weight, `with_trust`) -> the batch's mean of per-sample KD,
    `(1 - a) CE + a T^2 KL`, each sample's multiplied by its weight."""

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        labels, model, trust = targets[:, 0].long(), targets[:, 1:-1], targets[:, -1]
        ce = F.cross_entropy(logits, labels, reduction="none")
        kl = soft_kl(logits, model, temperature)
        per_sample = (1 - weight) * ce + weight * temperature**2 * kl
        return (trust * per_sample).mean()

    return loss
