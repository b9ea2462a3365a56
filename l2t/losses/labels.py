"""Training targets as one tensor per batch: hard labels (B,), or, with distillation, the
label and a model's logits packed as floats (B, 1 + C) (docs/design.md §6).

One tensor keeps batches, unrolls and every estimator unchanged whether or not a model
teaches: only the losses look inside, through these functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pack(labels: Tensor, model_logits: Tensor) -> Tensor:
    """(N,) labels and (N, C) logits -> (N, 1 + C) targets (labels exact as floats)."""
    return torch.cat([labels[:, None].to(model_logits.dtype), model_logits], dim=1)


def labels_of(targets: Tensor) -> Tensor:
    """The hard labels (B,) of a batch's targets."""
    return targets if targets.ndim == 1 else targets[:, 0].long()


def model_logits_of(targets: Tensor) -> Tensor | None:
    """The teaching model's logits (B, C), or None without distillation."""
    return None if targets.ndim == 1 else targets[:, 1:]


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """`F.one_hot(labels, num_classes).to(dtype)` as a comparison, which `torch.func.vmap`
    batches (`F.one_hot` has no batching rule): a vmapped population can distill."""
    classes = torch.arange(num_classes, device=labels.device)
    return (labels[..., None] == classes).to(dtype)


def soft_labels(
    targets: Tensor, num_classes: int, temperature: float, mix: float | Tensor
) -> Tensor:
    """`(1 - mix) * onehot(y) + mix * softmax(model_logits / T)`; the one-hot label alone
    when the targets carry no model."""
    logits = model_logits_of(targets)
    if logits is None:
        return one_hot(targets, num_classes, torch.float32)
    onehot = one_hot(labels_of(targets), num_classes, logits.dtype)
    return (1 - mix) * onehot + mix * F.softmax(logits / temperature, dim=1)


def soft_kl(logits: Tensor, model_logits: Tensor, temperature: float) -> Tensor:
    """(B,): each sample's `KL(softmax(m / T) || softmax(z / T))`, KD's soft term before its
    `T^2` (the composite's kd term, `importance_kd`)."""
    return F.kl_div(
        F.log_softmax(logits / temperature, dim=1),
        F.log_softmax(model_logits / temperature, dim=1),
        reduction="none",
        log_target=True,
    ).sum(dim=1)
