"""Baselines that do not learn: a fixed loss for the student's whole life."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from agents.base import Teacher
from envs.student_training import StudentTrainingEnv
from l2t.parametric_loss import focal_loss

FIXED_LOSSES = ("ce", "label_smoothing", "focal", "base_dln")


class FixedLossTeacher(Teacher):
    """`ce`, `label_smoothing` (eps), `focal` (gamma), or `base_dln` (the DLN's fixed phi_0)."""

    kind = "fixed"

    def __init__(self, loss: str = "ce", smoothing: float = 0.1, gamma: float = 2.0) -> None:
        super().__init__(loss=loss, smoothing=smoothing, gamma=gamma)
        if loss not in FIXED_LOSSES:
            raise ValueError(f"unknown fixed loss '{loss}'; allowed: {', '.join(FIXED_LOSSES)}")
        self.loss, self.smoothing, self.gamma = loss, smoothing, gamma

    def loss_fn(self, env: StudentTrainingEnv, logits: Tensor, targets: Tensor) -> Tensor:
        if self.loss == "ce":
            return F.cross_entropy(logits, targets)
        if self.loss == "label_smoothing":
            return F.cross_entropy(logits, targets, label_smoothing=self.smoothing)
        if self.loss == "focal":
            return focal_loss(logits, targets, self.gamma)
        return env.base_loss(logits, targets)

    def start_episode(self, env: StudentTrainingEnv) -> None:
        return None

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        env.train_with(lambda z, y: self.loss_fn(env, z, y))
        return {}
