"""Evaluating a student: accuracy and cross-entropy on a whole split, in eval mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def accuracy(logits: Tensor, targets: Tensor) -> float:
    return (logits.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def evaluate(student: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Accuracy and mean cross-entropy of `student` on (x, y), BatchNorm in eval mode."""
    was_training = student.training
    student.eval()
    logits = torch.cat([student(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    student.train(was_training)
    return {"acc": accuracy(logits, y), "loss": F.cross_entropy(logits, y).item()}
