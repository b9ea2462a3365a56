"""L2T-DLF's teacher (Wu et al. 2018): an MLP maps the student state to loss parameters and
is trained by reverse-mode differentiation through the student's (unrolled) updates.

With `loss.family=parametric` (its natural setting) it outputs the four coefficients of a
mixture of classic losses; with `dln` it outputs bounded offsets of all DLN weights. As a
policy (docs/design.md §3) it is the pure `propose(theta, state, obs)`, so every estimator
can train it, and frozen it trains students on the same path (l2t/engine/teaching.py); it
observes the student state only (first order under ES and PES).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from agents.base import Teacher
from l2t.config import LossNetConfig, TeacherConfig
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.student_state import FEATURE_NAMES
from l2t.engine.task import params_from_action
from l2t.losses.parametric import BASE_COEFFICIENTS


class MLPTeacher(Teacher):
    kind = "mlp"
    base_phi: Tensor  # flat base loss parameters, a buffer so it saves with the teacher

    def __init__(
        self,
        n_params: int,
        lr: float = 1e-3,
        hidden: int = 32,
        family: str = "parametric",
        beta: float = 0.02,
        phi_shapes: list[tuple[int, ...]] | None = None,
    ) -> None:
        shapes = [tuple(s) for s in phi_shapes] if phi_shapes else [(n_params,)]
        super().__init__()
        self.family, self.beta, self.phi_shapes = family, beta, shapes
        base = BASE_COEFFICIENTS if family == "parametric" else [0.0] * n_params
        self.register_buffer("base_phi", torch.tensor(base, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(len(FEATURE_NAMES), hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, n_params),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # start as the base loss: unit action 0
        nn.init.zeros_(last.bias)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)

    families = ("dln", "parametric")  # set by actions (the composite: by controls)

    @classmethod
    def from_settings(
        cls, t: TeacherConfig, loss: LossNetConfig, base: list[Tensor], env: Any = None
    ) -> MLPTeacher:
        return cls.around(base, loss.family, t.beta, lr=t.lr, hidden=t.hidden)

    @classmethod
    def around(cls, base: list[Tensor], family: str, beta: float, **hparams: Any) -> MLPTeacher:
        """A teacher of the base loss parameters `base` of the loss `family`."""
        shapes = [tuple(p.shape) for p in base]
        n_params = sum(p.numel() for p in base)
        teacher = cls(n_params, family=family, beta=beta, phi_shapes=shapes, **hparams)
        teacher.base_phi.copy_(torch.cat([p.flatten() for p in base]))
        return teacher.to(base[0].device)

    def forward(self, student_state: Tensor) -> Tensor:
        """An action in [-1, 1]^n; differentiable in the network's parameters."""
        return torch.tanh(self.net(student_state))

    def params_from_action(self, action: Tensor) -> list[Tensor]:
        """The env's mapping (`l2t.engine.task.params_from_action`) around this teacher's base."""
        sizes = [torch.Size(s).numel() for s in self.phi_shapes]
        base = [c.view(s) for c, s in zip(self.base_phi.split(sizes), self.phi_shapes)]
        return params_from_action(self.family, base, self.beta, action)

    # -- the policy (docs/design.md §3) ----------------------------------------------------
    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        return self.params_from_action(functional_call(self, theta, (obs.student,))), state

    def base_params(self) -> list[Tensor]:
        return self.params_from_action(torch.zeros_like(self.base_phi))
