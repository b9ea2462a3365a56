"""L2T-DLF's teacher (Wu et al. 2018): an MLP maps the student state to loss parameters and
is trained by reverse-mode differentiation through the student's (unrolled) updates.

With `loss.family=parametric` (its natural setting) it outputs the four coefficients of a
mixture of classic losses; with `dln` it outputs bounded offsets of all DLN weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from agents.base import Teacher
from envs.student_training import STATE_NAMES, StudentTrainingEnv


class MLPTeacher(Teacher):
    kind = "mlp"

    def __init__(self, n_params: int, lr: float = 1e-3, hidden: int = 32) -> None:
        super().__init__(n_params=n_params, lr=lr, hidden=hidden)
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
        return cls(env.n_phi, **hparams).to(env.device)

    def propose(self, student_state: Tensor) -> Tensor:
        """An action in [-1, 1]^n (the env maps it to loss parameters); differentiable."""
        return torch.tanh(self.net(student_state))

    def start_episode(self, env: StudentTrainingEnv) -> None:
        self.params = None

    def current_params(self) -> list[Tensor] | None:
        return self.params

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        state = torch.as_tensor(env.student_state(), device=env.device)
        with torch.set_grad_enabled(learn):
            params = env.params_from_action(self.propose(state))
        self.params = [p.detach() for p in params]
        if not learn:  # a frozen teacher needs no meta-gradient: first-order steps suffice
            env.train_with(env.loss_fn(self.params))
            return {}
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
