"""A parametric loss family for teachers that set a few coefficients instead of a network
(L2T-DLF, Wu et al. 2018, and the REINFORCE teacher): a non-negative mixture of classic
classification losses. Coefficients `[1, 0, 0, 0]` are plain cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from l2t.losses.dln import pairwise_logistic_loss, pairwise_logistic_per_sample
from l2t.losses.fixed import focal_loss, focal_per_sample
from l2t.losses.labels import labels_of

TERMS = ("cross_entropy", "pairwise_logistic", "uniform_ce", "focal")
BASE_COEFFICIENTS = (1.0, 0.0, 0.0, 0.0)
BOUND = 1.0  # an action in [-1, 1] moves each coefficient by at most this much


def loss_terms(logits: Tensor, targets: Tensor) -> Tensor:
    """The family's basis losses, stacked in the order of `TERMS`."""
    targets = labels_of(targets)
    log_p = F.log_softmax(logits, dim=1)
    return torch.stack(
        [
            F.nll_loss(log_p, targets),
            pairwise_logistic_loss(logits, targets),
            -log_p.mean(dim=1).mean(),  # cross-entropy to the uniform label: label smoothing
            focal_loss(logits, targets),
        ]
    )


def parametric_loss(coefficients: Tensor, logits: Tensor, targets: Tensor) -> Tensor:
    return (coefficients * loss_terms(logits, targets)).sum()


def parametric_per_sample(coefficients: Tensor, logits: Tensor, targets: Tensor) -> Tensor:
    """(B,): each sample's mixture; its mean is `parametric_loss`."""
    labels = labels_of(targets)
    log_p = F.log_softmax(logits, dim=1)
    terms = torch.stack(
        [
            -log_p.gather(1, labels[:, None]).squeeze(1),
            pairwise_logistic_per_sample(logits, labels),
            -log_p.mean(dim=1),
            focal_per_sample(logits, labels),
        ],
        dim=1,
    )
    return terms @ coefficients


def coefficients_from_unit(unit: Tensor) -> Tensor:
    """Map [-1, 1]^4 to coefficients `max(base + BOUND * unit, 0)` (a loss never rewards
    making a term worse, so no mixture is unbounded below)."""
    base = torch.tensor(BASE_COEFFICIENTS, device=unit.device, dtype=unit.dtype)
    return (base + BOUND * unit).clamp_min(0.0)
