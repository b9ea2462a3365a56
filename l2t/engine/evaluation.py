"""Accuracy of logits against labels."""

from __future__ import annotations

from torch import Tensor


def accuracy(logits: Tensor, targets: Tensor) -> float:
    return (logits.argmax(dim=1) == targets).float().mean().item()
