"""Replaying a recorded loss schedule: the loss parameters a teacher produced, looked up by
training progress. No meta-gradients, no teacher network: as cheap as a fixed loss."""

from __future__ import annotations

import torch
from torch import Tensor

from agents.base import Teacher
from envs.student_training import StudentTrainingEnv
from l2t.schedule import Schedule


class ScheduleTeacher(Teacher):
    kind = "schedule"
    phi: Tensor  # (records, n_phi), a buffer so it saves and moves with the teacher

    def __init__(self, phi_shapes: list[tuple[int, ...]], progress: list[float]) -> None:
        super().__init__(phi_shapes=[tuple(s) for s in phi_shapes], progress=list(progress))
        self.schedule = Schedule([tuple(s) for s in phi_shapes], list(progress))
        n_phi = sum(torch.Size(s).numel() for s in phi_shapes)
        self.register_buffer("phi", torch.zeros(len(progress), n_phi))

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> ScheduleTeacher:
        teacher = cls(schedule.phi_shapes, schedule.progress)
        teacher.phi.copy_(torch.stack(schedule.phi))
        return teacher

    def start_episode(self, env: StudentTrainingEnv) -> None:
        shapes = [tuple(p.shape) for p in env.base_phi]
        if shapes != self.schedule.phi_shapes:
            raise ValueError(
                f"the schedule's loss parameters have shapes {self.schedule.phi_shapes}; "
                f"this environment's have {shapes} (set loss.family / loss.hidden / "
                "loss.layers as in the teacher's run)"
            )
        self.schedule.phi = list(self.phi.to(env.device))

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        phi = self.schedule.phi_at(env.progress, env.device)
        return {"diverged": float(env.train_with(env.loss_fn(phi), teacher_set=True))}
