"""The teacher of the composite loss family (docs/design.md §6): an LSTM over the student
state sets a few bounded controls around the base point (the loss scale, the terms'
weights, label smoothing, the weight net's output layer; `loss.ranges` names them).

Its output head starts at zero, so the untrained teacher *is* its base point: its
students are bit-identical to the fixed baseline's (a test). It observes the student state
only, so it learns first order under PES and ES, with a population large enough for a
handful of controls, and once trained needs no validation split to teach.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call

from agents.base import Teacher
from agents.lstm_teacher import lstm_cell
from l2t.config import LossNetConfig, TeacherConfig
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.student_state import FEATURE_NAMES
from l2t.losses.composite import control_rows, controlled_size, params_from_unit, parse_ranges


class ControlTeacher(Teacher):
    kind = "control"
    base_phi: Tensor  # the base point's loss parameters, flat (saved with the teacher)

    def __init__(
        self, phi_shapes: list[tuple[int, ...]], ranges: str, lr: float = 1e-3, hidden: int = 20
    ) -> None:
        super().__init__()
        self.phi_shapes = [tuple(s) for s in phi_shapes]
        self.ranges = parse_ranges(ranges)
        self.controls = controlled_size(self.ranges)
        if self.controls == 0:
            raise ValueError("loss.ranges moves no control: the teacher would have nothing to set")
        self.register_buffer("base_phi", torch.zeros(sum(math.prod(s) for s in self.phi_shapes)))
        self.cell = nn.LSTMCell(len(FEATURE_NAMES), hidden)
        self.head = nn.Linear(hidden, self.controls)
        nn.init.zeros_(self.head.weight)  # the untrained teacher is its base point, exactly
        nn.init.zeros_(self.head.bias)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    sigma_per_control = True

    families = ("composite",)

    @classmethod
    def from_settings(
        cls, t: TeacherConfig, loss: LossNetConfig, base: list[Tensor], env: Any = None
    ) -> ControlTeacher:
        return cls.around(base, loss.ranges, lr=t.lr, hidden=t.hidden)

    @classmethod
    def around(cls, base: list[Tensor], ranges: str, **hparams: Any) -> ControlTeacher:
        """A teacher of the composite base point `base` (l2t.config.parts.base_loss)."""
        teacher = cls([tuple(p.shape) for p in base], ranges, **hparams)
        teacher.base_phi.copy_(torch.cat([p.flatten() for p in base]))
        return teacher.to(base[0].device)

    def sigma_of(self, sigma: float, per_control: dict[str, float]) -> dict[str, Tensor]:
        """PES/ES perturbation scales of the output head (`estimator.sigma_controls`): the
        rows that set a named control get its sigma, every other parameter `sigma`."""
        if not per_control:
            return {}
        rows = control_rows(self.ranges)
        weight = torch.full_like(self.head.weight, sigma, device="cpu")
        bias = torch.full_like(self.head.bias, sigma, device="cpu")
        for name, value in per_control.items():
            weight[rows[name]] = value
            bias[rows[name]] = value
        return {"head.weight": weight, "head.bias": bias}

    def base_params(self) -> list[Tensor]:
        sizes = [math.prod(s) for s in self.phi_shapes]
        return [c.view(s) for c, s in zip(self.base_phi.split(sizes), self.phi_shapes)]

    def initial_state(self) -> TeacherState:
        zeros = self.base_phi.new_zeros(1, self.cell.hidden_size)
        return {"h": zeros, "c": zeros}

    def forward(self, state: TeacherState, student: Tensor) -> tuple[Tensor, TeacherState]:
        """The unit controls in [-1, 1]^n and the next LSTM state."""
        h, c = lstm_cell(cast(nn.LSTMCell, self.cell), student[None], state["h"], state["c"])
        return torch.tanh(self.head(h)).squeeze(0), {"h": h, "c": c}

    # -- the policy (docs/design.md §3) ----------------------------------------------------
    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        unit, state = functional_call(self, theta, (state, obs.student))
        return params_from_unit(self.base_params(), self.ranges, unit), state
