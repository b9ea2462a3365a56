"""Baselines that do not learn: a fixed loss for the student's whole life, as a policy with
no parameters (it trains on the same path as every teacher, l2t/engine/teaching.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from agents.base import Teacher
from l2t.config import LossNetConfig, TeacherConfig
from l2t.data.distill import kd_loss
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.student_state import LossFn
from l2t.engine.task import Task
from l2t.losses.fixed import FIXED_LOSSES, fixed_loss


class FixedLossTeacher(Teacher):
    """A loss of `l2t.losses.fixed` (cross-entropy, its variants, the noise-robust losses),
    `kd` (vanilla distillation at the task's `mix` and `temperature`), `base_dln` (the
    DLN at its base weights `base`) or `base` (the loss family at its base point `base`:
    for the composite family, the point chosen on validation). Only a non-finite student
    counts as broken; it is then retaken under `base`, the base loss (docs/design.md §3)."""

    kind = "fixed"
    teacher_set = False
    unsaved = ("base",)  # tensors: the run's base loss, given again where it is loaded
    trained_by_estimator = False  # it learns nothing

    @classmethod
    def from_settings(
        cls, t: TeacherConfig, loss: LossNetConfig, base: list[Tensor], env: Any = None
    ) -> FixedLossTeacher:
        return cls(t.fixed_loss, base)

    def __init__(self, loss: str = "ce", base: Sequence[Tensor] = ()) -> None:
        super().__init__()
        if loss not in FIXED_LOSSES:
            raise ValueError(f"unknown fixed loss '{loss}'; allowed: {', '.join(FIXED_LOSSES)}")
        self.loss = loss
        self.base = list(base)  # the base loss parameters (base_dln, and the retake)

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        return (self.base_params() if self.loss in ("base_dln", "base") else []), state

    def base_params(self) -> list[Tensor]:
        if not self.base:
            raise ValueError(f"the fixed loss {self.loss} was given no base loss parameters")
        return self.base

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> LossFn:
        """No parameters: the fixed loss itself; parameters: the DLN they set."""
        if params:
            return task.loss_fn(params)
        if self.loss == "kd":
            return lambda z, y: kd_loss(z, y, task.mix, task.temperature)
        return lambda z, y: fixed_loss(self.loss, z, y)
