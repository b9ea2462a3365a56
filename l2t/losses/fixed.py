"""Fixed losses: the baselines a learned loss must beat (docs/design.md §6).

Each takes logits (B, C) and labels (B,) and returns the batch mean. Besides cross-entropy
and its classic variants, the losses designed for noisy labels — bounded or
self-correcting where cross-entropy keeps pulling confidently wrong samples towards their
given label — with the hyper-parameters their papers recommend.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from l2t.losses.labels import labels_of, one_hot

GCE_Q = 0.7  # Zhang & Sabuncu 2018
SCE_ALPHA, SCE_BETA, SCE_LOG_ZERO = 0.1, 1.0, -4.0  # Wang et al. 2019 (A = log 0 := -4)
BOOTSTRAP_BETA = 0.95  # Reed et al. 2015, soft bootstrapping
SMOOTHING = 0.1
FOCAL_GAMMA = 2.0


def _log_p_target(logits: Tensor, targets: Tensor) -> Tensor:
    return F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)


def focal_loss(logits: Tensor, targets: Tensor, gamma: float = FOCAL_GAMMA) -> Tensor:
    """Lin et al. 2017: cross-entropy down-weighted by (1 - p_y)^gamma."""
    return focal_per_sample(logits, targets, gamma).mean()


def focal_per_sample(logits: Tensor, targets: Tensor, gamma: float = FOCAL_GAMMA) -> Tensor:
    """(B,): each sample's focal loss."""
    log_p = _log_p_target(logits, targets)
    return -((1 - log_p.exp()) ** gamma) * log_p


def generalized_ce(logits: Tensor, targets: Tensor, q: float = GCE_Q) -> Tensor:
    """GCE: (1 - p_y^q) / q. Cross-entropy as q -> 0, MAE (bounded, noise-tolerant) at
    q = 1; a sample the model is sure is another class contributes a gradient ~ p_y^q."""
    p_y = _log_p_target(logits, targets).exp()
    return ((1 - p_y.pow(q)) / q).mean()


def symmetric_ce(
    logits: Tensor, targets: Tensor, alpha: float = SCE_ALPHA, beta: float = SCE_BETA
) -> Tensor:
    """SCE: alpha * CE + beta * RCE, with the reverse cross-entropy -sum_k p_k log t_k of
    the one-hot label t, log 0 taken as A = -4: RCE = -A (1 - p_y)."""
    log_p = _log_p_target(logits, targets)
    reverse = -SCE_LOG_ZERO * (1 - log_p.exp())
    return (-alpha * log_p + beta * reverse).mean()


def soft_bootstrap(logits: Tensor, targets: Tensor, beta: float = BOOTSTRAP_BETA) -> Tensor:
    """Soft bootstrapping: cross-entropy to beta * label + (1 - beta) * the model's own
    prediction, -sum_k (beta t_k + (1 - beta) p_k) log p_k (the prediction term is not
    detached, as in the paper)."""
    log_p = F.log_softmax(logits, dim=1)
    target = beta * one_hot(targets, logits.shape[1], log_p.dtype) + (1 - beta) * log_p.exp()
    return -(target * log_p).sum(dim=1).mean()


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits, targets)


def label_smoothing(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits, targets, label_smoothing=SMOOTHING)


LOSSES = {  # a new fixed loss is a function and its entry: a config choice and a compare row
    "ce": cross_entropy,
    "label_smoothing": label_smoothing,
    "focal": focal_loss,
    "gce": generalized_ce,
    "sce": symmetric_ce,
    "bootstrap": soft_bootstrap,
}
ROBUST = ("gce", "sce", "bootstrap")  # designed for noisy labels: compared by default under noise
# every loss a fixed teacher keeps: these, vanilla KD (l2t/data/distill.py), the DLN at its base
# weights, and the run's family at its base point
FIXED_LOSSES = (*LOSSES, "kd", "base_dln", "base")


def fixed_loss(name: str, logits: Tensor, targets: Tensor) -> Tensor:
    """The fixed loss `name` (a key of `LOSSES`) of the batch; targets may carry soft labels
    (`l2t.losses.labels`), which these losses ignore."""
    return LOSSES[name](logits, labels_of(targets))
