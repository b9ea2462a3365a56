"""L2T-DLN's teacher: a coordinate-wise LSTM that sets the DLN weights `phi`.

Per DLN weight it sees the preprocessed validation gradient `g = dL_val/dphi` (Andrychowicz
et al. 2016) and the student state broadcast to every coordinate, and outputs one number:
- `param=offset` (default): `phi = phi_0 + beta * tanh(out)`, a bounded offset around the
  base loss. Measured (DESIGN.md §1): the authors' increments accumulate and collapse
  students; bounded offsets do not.
- `param=increment` (the authors'): `phi <- phi - alpha * tanh(out)`, bounded per step,
  restarted from `phi_0` with every student.

The teacher learns from the validation loss after the K-step unroll under its `phi`:
- `update=three_stage` (the authors'): unroll with the current `phi` for `g` (stage 2),
  propose `phi'`, unroll again from the same student state with `phi'` (stage 3), commit it;
- `update=fused` (ours): the stage-3 unroll of step t already gives the `g` of step t+1
  (w.r.t. `phi'`), so each teacher step is one unroll. Both gradients come from one
  `autograd.grad` call over the teacher's and the DLN's parameters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from agents.base import Teacher
from envs.student_training import STATE_NAMES, StudentTrainingEnv

GRAD_PREPROCESS_P = 10.0


def preprocess_gradient(g: Tensor, p: float = GRAD_PREPROCESS_P) -> Tensor:
    """(n,) -> (n, 2): `(log|g|/p, sign g)` if `|g| >= e^-p`, else `(-1, e^p g)`."""
    big = g.abs() >= math.exp(-p)
    log_part = torch.where(big, g.abs().clamp_min(1e-38).log() / p, -torch.ones_like(g))
    sign_part = torch.where(big, g.sign(), math.exp(p) * g)
    return torch.stack([log_part, sign_part], dim=1)


class LSTMTeacher(Teacher):
    kind = "lstm"
    base_phi: Tensor  # flat phi_0, a buffer so it moves and saves with the teacher

    def __init__(
        self,
        phi_shapes: list[tuple[int, ...]],
        update: str = "fused",
        param: str = "offset",
        alpha: float = 1e-3,
        beta: float = 0.02,
        lr: float = 1e-3,
        hidden: int = 20,
        bptt: int = 1,
    ) -> None:
        super().__init__(
            phi_shapes=[tuple(s) for s in phi_shapes],
            update=update,
            param=param,
            alpha=alpha,
            beta=beta,
            lr=lr,
            hidden=hidden,
            bptt=bptt,
        )
        if update not in ("fused", "three_stage"):
            raise ValueError(f"teacher.update must be fused or three_stage; got '{update}'")
        if param not in ("offset", "increment"):
            raise ValueError(f"teacher.param must be offset or increment; got '{param}'")
        self.phi_shapes = [tuple(s) for s in phi_shapes]
        self.sizes = [math.prod(s) for s in self.phi_shapes]
        self.update, self.param = update, param
        self.alpha, self.beta, self.bptt = alpha, beta, bptt
        self.register_buffer("base_phi", torch.zeros(sum(self.sizes)))
        self.cells = nn.ModuleList(
            [nn.LSTMCell(2 + len(STATE_NAMES), hidden), nn.LSTMCell(hidden, hidden)]
        )
        self.head = nn.Linear(hidden, 1)
        with torch.no_grad():  # start as the base loss: tanh(out) ~ 0
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
        self.optimizer = torch.optim.Adam(self.learnable(), lr=lr)
        self.steps_in_window = 0
        self._reset_episode_state()

    # -- construction helpers ------------------------------------------------------------
    @classmethod
    def for_env(cls, env: StudentTrainingEnv, **hparams: Any) -> LSTMTeacher:
        if env.cfg.loss.family != "dln":
            raise ValueError("the lstm teacher sets a dynamic loss network; use loss.family=dln")
        teacher = cls([tuple(p.shape) for p in env.base_phi], **hparams).to(env.device)
        teacher.base_phi.copy_(torch.cat([p.flatten() for p in env.base_phi]))
        return teacher

    def learnable(self) -> list[nn.Parameter]:
        return [*self.cells.parameters(), *self.head.parameters()]

    def _reset_episode_state(self) -> None:
        n = sum(self.sizes)
        device = self.base_phi.device
        size = int(self.hparams["hidden"])
        self.hidden: list[tuple[Tensor, Tensor]] = [
            (torch.zeros(n, size, device=device), torch.zeros(n, size, device=device))
            for _ in self.cells
        ]
        self.phi_flat = self.base_phi.clone()
        self.grad_flat = torch.zeros(n, device=device)

    def start_episode(self, env: StudentTrainingEnv) -> None:
        self._reset_episode_state()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_in_window = 0

    def split(self, flat: Tensor) -> list[Tensor]:
        return [c.view(s) for c, s in zip(flat.split(self.sizes), self.phi_shapes)]

    def current_params(self) -> list[Tensor]:
        return self.split(self.phi_flat.detach())

    # -- the teacher ---------------------------------------------------------------------
    def propose(self, grad_flat: Tensor, student_state: Tensor) -> Tensor:
        """New flat `phi` from the loss state and student state; differentiable in theta."""
        n = grad_flat.numel()
        features = torch.cat([preprocess_gradient(grad_flat), student_state.expand(n, -1)], dim=1)
        new_hidden = []
        x = features
        for cell, (h, c) in zip(self.cells, self.hidden):
            h, c = cell(x, (h, c))
            new_hidden.append((h, c))
            x = h
        self.hidden = new_hidden
        out = torch.tanh(self.head(x).squeeze(1))
        if self.param == "offset":
            return self.base_phi + self.beta * out
        return self.phi_flat.detach() - self.alpha * out

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        state = torch.as_tensor(env.student_state(), device=self.base_phi.device)
        if self.update == "three_stage":
            phi = self.phi_flat.detach().requires_grad_()
            probe = env.functional_step(self.split(phi), commit_result=False)
            (grad,) = torch.autograd.grad(probe.val_loss, phi)
            self.grad_flat = grad.detach()
        with torch.set_grad_enabled(learn):
            new_phi = self.propose(self.grad_flat, state)
        if not learn:
            new_phi.requires_grad_(self.update == "fused")
        result = env.functional_step(self.split(new_phi))
        if result.diverged:
            self._reset_episode_state()
            self.optimizer.zero_grad(set_to_none=True)
            self.steps_in_window = 0
            return {"val_loss": float("nan"), "diverged": 1.0}
        params = self.learnable() if learn else []
        self.steps_in_window += 1
        end_of_window = self.steps_in_window >= self.bptt or env.done
        wrt = ([new_phi] if self.update == "fused" else []) + params
        if wrt:  # one autograd.grad call for the teacher's and the DLN's gradients
            grads = list(
                torch.autograd.grad(result.val_loss, wrt, retain_graph=learn and not end_of_window)
            )
            if self.update == "fused":
                self.grad_flat = grads.pop(0).detach()
            for p, g in zip(params, grads):
                p.grad = g if p.grad is None else p.grad + g
        if learn and end_of_window:
            if all(torch.isfinite(p.grad).all() for p in params if p.grad is not None):
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.hidden = [(h.detach(), c.detach()) for h, c in self.hidden]
            self.steps_in_window = 0
        self.phi_flat = new_phi.detach()
        return {"val_loss": result.val_loss.item(), "diverged": 0.0}

    def extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
