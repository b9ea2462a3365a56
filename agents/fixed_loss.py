"""Baselines that do not learn: a fixed loss for the student's whole life."""

from __future__ import annotations

from torch import Tensor

from agents.base import Teacher
from envs.student_training import StudentTrainingEnv
from l2t.distill import kd_loss
from l2t.fixed_losses import LOSSES, fixed_loss

FIXED_LOSSES = (*LOSSES, "kd", "base_dln")


class FixedLossTeacher(Teacher):
    """A loss of `l2t.fixed_losses` (cross-entropy, its variants, the noise-robust losses),
    `kd` (vanilla distillation at the env's `distill.mix` and `distill.temperature`), or
    `base_dln` (the DLN's fixed phi_0)."""

    kind = "fixed"

    def __init__(self, loss: str = "ce") -> None:
        super().__init__(loss=loss)
        if loss not in FIXED_LOSSES:
            raise ValueError(f"unknown fixed loss '{loss}'; allowed: {', '.join(FIXED_LOSSES)}")
        self.loss = loss

    def loss_fn(self, env: StudentTrainingEnv, logits: Tensor, targets: Tensor) -> Tensor:
        if self.loss == "base_dln":
            return env.base_loss(logits, targets)
        if self.loss == "kd":
            distill = env.cfg.distill
            return kd_loss(logits, targets, distill.mix, distill.temperature)
        return fixed_loss(self.loss, logits, targets)

    def start_episode(self, env: StudentTrainingEnv) -> None:
        return None

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        return {"diverged": float(env.train_with(lambda z, y: self.loss_fn(env, z, y)))}
