"""Replaying a recorded loss schedule: the loss parameters a teacher produced, looked up by
training progress. No meta-gradients, no teacher network: as cheap as a fixed loss."""

from __future__ import annotations

import torch
from torch import Tensor

from agents.base import Teacher
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.schedule import Schedule


class ScheduleTeacher(Teacher):
    kind = "schedule"
    phi: Tensor  # (records, n_phi), a buffer so it saves and moves with the teacher

    def __init__(self, phi_shapes: list[tuple[int, ...]], progress: list[float]) -> None:
        super().__init__()
        self.schedule = Schedule([tuple(s) for s in phi_shapes], list(progress))
        n_phi = sum(torch.Size(s).numel() for s in phi_shapes)
        self.register_buffer("phi", torch.zeros(len(progress), n_phi))
        self.base: list[Tensor] = []  # the run's base loss: where a broken step is retaken

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> ScheduleTeacher:
        teacher = cls(schedule.phi_shapes, schedule.progress)
        teacher.phi.copy_(torch.stack(schedule.phi))
        return teacher

    def around(self, base: list[Tensor]) -> ScheduleTeacher:
        """This schedule over the run's base loss `base`; it replays only on the loss network
        it was recorded for."""
        shapes = [tuple(p.shape) for p in base]
        if shapes != self.schedule.phi_shapes:
            raise ValueError(
                f"the schedule's loss parameters have shapes {self.schedule.phi_shapes}; "
                f"this task's have {shapes} (set loss.family / loss.hidden / "
                "loss.layers as in the teacher's run)"
            )
        self.base = list(base)
        return self

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        self.schedule.phi = list(self.phi)
        return self.schedule.phi_at(obs.progress, self.phi.device), state

    def base_params(self) -> list[Tensor]:
        return self.base
