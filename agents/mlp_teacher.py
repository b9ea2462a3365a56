"""L2T-DLF's teacher (Wu et al. 2018): an MLP maps the student state to loss parameters and
is trained by reverse-mode differentiation through the student's (unrolled) updates.

With `loss.family=parametric` (its natural setting) it outputs the four coefficients of a
mixture of classic losses; with `dln` it outputs bounded offsets of all DLN weights. As a
policy (docs/design.md §3) it is the pure `propose(theta, state, obs)`, so every estimator
can train it; it observes the student state only (first order under ES and PES).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from agents.base import Teacher
from envs.student_training import STATE_NAMES, StudentTrainingEnv
from l2t.lifetime import Observation, TeacherState, Theta
from l2t.parametric_loss import BASE_COEFFICIENTS
from l2t.student_state import LossFn
from l2t.task import Task, params_from_action


class MLPTeacher(Teacher):
    kind = "mlp"
    observes_gradient = False
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
        super().__init__(
            n_params=n_params, lr=lr, hidden=hidden, family=family, beta=beta, phi_shapes=shapes
        )
        self.family, self.beta, self.phi_shapes = family, beta, shapes
        base = BASE_COEFFICIENTS if family == "parametric" else [0.0] * n_params
        self.register_buffer("base_phi", torch.tensor(base, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(len(STATE_NAMES), hidden),
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
        self.params: list[Tensor] | None = None

    @classmethod
    def for_env(cls, env: StudentTrainingEnv, **hparams: Any) -> MLPTeacher:
        shapes = [tuple(p.shape) for p in env.base_phi]
        family, beta = env.cfg.loss.family, env.cfg.teacher.beta
        teacher = cls(env.n_phi, family=family, beta=beta, phi_shapes=shapes, **hparams)
        teacher.base_phi.copy_(torch.cat([p.flatten() for p in env.base_phi]))
        return teacher.to(env.device)

    def forward(self, student_state: Tensor) -> Tensor:
        """An action in [-1, 1]^n; differentiable in the network's parameters."""
        return torch.tanh(self.net(student_state))

    def params_from_action(self, action: Tensor) -> list[Tensor]:
        """The env's mapping (`l2t.task.params_from_action`) around this teacher's base."""
        sizes = [torch.Size(s).numel() for s in self.phi_shapes]
        base = [c.view(s) for c, s in zip(self.base_phi.split(sizes), self.phi_shapes)]
        return params_from_action(self.family, base, self.beta, action)

    # -- the policy (docs/design.md §3) ----------------------------------------------------
    def theta(self) -> Theta:
        return {name: p.detach() for name, p in self.named_parameters()}

    def initial_state(self) -> TeacherState:
        return {}

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        return self.params_from_action(functional_call(self, theta, (obs.student,))), state

    def base_params(self) -> list[Tensor]:
        return self.params_from_action(torch.zeros_like(self.base_phi))

    def loss_fn(self, task: Task, params: list[Tensor]) -> LossFn:
        return task.loss_fn(params)

    # -- learning by itself through the gymnasium environment -----------------------------
    def start_episode(self, env: StudentTrainingEnv) -> None:
        self.params = None

    def current_params(self) -> list[Tensor] | None:
        return self.params

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        state = torch.as_tensor(env.student_state(), device=env.device)
        with torch.set_grad_enabled(learn):
            params = self.params_from_action(self(state))
        self.params = [p.detach() for p in params]
        if not learn:  # a frozen teacher needs no meta-gradient: first-order steps suffice
            return {"diverged": float(env.train_with(env.loss_fn(self.params), teacher_set=True))}
        result = env.functional_step(params)
        if not result.diverged:
            self.optimizer.zero_grad(set_to_none=True)
            result.val_loss.backward()
            self.optimizer.step()
        return {"val_loss": result.val_loss.item(), "diverged": float(result.diverged)}

    def extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
