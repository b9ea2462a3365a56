"""L2T-DLN's teacher: a coordinate-wise LSTM that sets the DLN weights `phi`.

Per DLN weight it sees the preprocessed validation gradient `g = dL_val/dphi` (Andrychowicz
et al. 2016; zeros with `observe=state`, which needs no second-order unroll), the student
state broadcast to every coordinate, and the weight's base value `phi_0` (so coordinates
differ even without `g`), and outputs one number per weight; with `scale > 0` a second head
reads the coordinates' mean state and sets one loss scale `exp(scale * tanh(.))` for the
whole loss (multiplying the DLN's last layer: the loss is linear in it) — a learning-rate
schedule the bounded offsets cannot express; with `mix_range > 0` (distillation) a third
head sets the mix of the model's soft labels, `sigmoid(logit(mix_0) + mix_range * tanh(.))`,
appended to the DLN weights as one 0-dim tensor (docs/design.md §6):
- `param=offset` (default): `phi = phi_0 + beta * tanh(out)`, a bounded offset around the
  base loss. Measured (../shared/DESIGN.md §1): the authors' increments accumulate and collapse
  students; bounded offsets do not.
- `param=increment` (the authors'): `phi <- phi - alpha * tanh(out)`, bounded per step,
  restarted from `phi_0` with every student.

As a policy (docs/design.md §3) it is the pure `propose(theta, state, obs)`, used by every
outer-gradient estimator (`l2t/estimators/`) and by frozen teachers (`l2t/engine/teaching.py`);
`update` and `bptt` set how it learns while it teaches (`l2t/estimators/online.py`, the
paper's procedure).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from agents.base import Teacher
from l2t.config import LossNetConfig, TeacherConfig
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.student_state import FEATURE_NAMES

OBSERVATIONS = ("grad", "state")

GRAD_PREPROCESS_P = 10.0


def preprocess_gradient(g: Tensor, p: float = GRAD_PREPROCESS_P) -> Tensor:
    """(n,) -> (n, 2): `(log|g|/p, sign g)` if `|g| >= e^-p`, else `(-1, e^p g)`."""
    big = g.abs() >= math.exp(-p)
    log_part = torch.where(big, g.abs().clamp_min(1e-38).log() / p, -torch.ones_like(g))
    sign_part = torch.where(big, g.sign(), math.exp(p) * g)
    return torch.stack([log_part, sign_part], dim=1)


def lstm_cell(cell: nn.LSTMCell, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """`cell(x, (h, c))` written out: the same numbers on the CPU (tested), and unlike the
    fused `lstm_cell` it vmaps (a population advanced together, l2t/engine/population.py) and has
    a double backward on every device (cuDNN's has none)."""
    gates = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


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
        observe: str = "grad",
        scale: float = 0.0,
        mix_range: float = 0.0,
    ) -> None:
        super().__init__()
        if observe not in OBSERVATIONS:
            raise ValueError(f"teacher.observe must be grad or state; got '{observe}'")
        if update not in ("fused", "three_stage"):
            raise ValueError(f"teacher.update must be fused or three_stage; got '{update}'")
        if param not in ("offset", "increment"):
            raise ValueError(f"teacher.param must be offset or increment; got '{param}'")
        self.phi_shapes = [tuple(s) for s in phi_shapes]
        self.sizes = [math.prod(s) for s in self.phi_shapes]
        self.sets_mix = mix_range > 0  # then the last of phi_shapes is the mix's ()
        self.coordinates = sum(self.sizes) - self.sets_mix  # DLN weights, one LSTM row each
        self.update, self.param = update, param
        self.alpha, self.beta, self.bptt = alpha, beta, bptt
        self.observes_gradient = observe == "grad"
        self.register_buffer("base_phi", torch.zeros(sum(self.sizes)))
        self.cells = nn.ModuleList(
            [nn.LSTMCell(3 + len(FEATURE_NAMES), hidden), nn.LSTMCell(hidden, hidden)]
        )
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)  # the untrained teacher is its base loss, exactly
        nn.init.zeros_(self.head.bias)
        self.scale = scale
        self.scale_head: nn.Linear | None = None
        if scale > 0:  # one loss scale for all pairs, from the mean state of the coordinates
            self.scale_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.scale_head.weight)
            nn.init.zeros_(self.scale_head.bias)
        self.mix_range = mix_range
        self.mix_head: nn.Linear | None = None
        if self.sets_mix:  # starts at distill.mix, like the scale head at 1
            self.mix_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.mix_head.weight)
            nn.init.zeros_(self.mix_head.bias)
        self.optimizer = torch.optim.Adam(self.learnable(), lr=lr)

    can_set_mix = True

    families = ("dln",)
    defers_to: ClassVar[dict[str, str]] = {"composite": "control"}  # the default agent fits all

    @classmethod
    def from_settings(
        cls, t: TeacherConfig, loss: LossNetConfig, base: list[Tensor], env: Any = None
    ) -> Teacher:
        keys = ("update", "param", "alpha", "beta", "lr", "hidden", "bptt", "observe")
        hparams = {k: getattr(t, k) for k in (*keys, "scale", "mix_range")}
        return cls.around(base, loss.family, **hparams)

    @classmethod
    def around(cls, base: list[Tensor], family: str = "dln", **hparams: Any) -> LSTMTeacher:
        """A teacher of the base loss parameters `base` (a DLN's `phi_0`, l2t.losses.base_loss)."""
        if family != "dln":
            raise ValueError("the lstm teacher sets a dynamic loss network; use loss.family=dln")
        teacher = cls([tuple(p.shape) for p in base], **hparams).to(base[0].device)
        teacher.base_phi.copy_(torch.cat([p.flatten() for p in base]))
        return teacher

    def learnable(self) -> list[nn.Parameter]:
        heads = [h for h in (self.head, self.scale_head, self.mix_head) if h is not None]
        return [*self.cells.parameters(), *(p for h in heads for p in h.parameters())]

    def initial_state(self) -> TeacherState:
        """Zero LSTM states and the base loss: what the teacher starts every student with."""
        n, size = self.coordinates, int(self.hparams["hidden"])
        zeros = self.base_phi.new_zeros(n, size)
        state = {f"{k}{i}": zeros for i in range(len(self.cells)) for k in ("h", "c")}
        return {**state, "phi": self.base_phi.clone()}

    def split(self, flat: Tensor) -> list[Tensor]:
        return [c.view(s) for c, s in zip(flat.split(self.sizes), self.phi_shapes)]

    # -- the policy (docs/design.md §3) ----------------------------------------------------
    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        """Loss parameters and the next teacher state; a pure function of its arguments."""
        flat, state = functional_call(self, theta, (state, obs.student, obs.grad))
        return self.split(flat), state

    def base_params(self) -> list[Tensor]:
        return self.split(self.base_phi)

    def forward(
        self, state: TeacherState, student: Tensor, grad: Tensor | None
    ) -> tuple[Tensor, TeacherState]:
        n = self.coordinates
        base = self.base_phi[:n]
        if grad is None or not self.observes_gradient:
            grad = torch.zeros_like(self.base_phi)
        features = torch.cat(
            [
                preprocess_gradient(grad[:n]),
                student.expand(n, -1),
                base[:, None] / base.abs().mean(),
            ],
            dim=1,
        )
        new_state: TeacherState = {}
        x = features
        for i, cell in enumerate(self.cells):
            h, c = lstm_cell(cast(nn.LSTMCell, cell), x, state[f"h{i}"], state[f"c{i}"])
            new_state[f"h{i}"], new_state[f"c{i}"] = h, c
            x = h
        out = torch.tanh(self.head(x).squeeze(1))
        if self.param == "offset":
            phi = base + self.beta * out
        else:
            phi = state["phi"][:n].detach() - self.alpha * out
        if self.scale_head is not None:  # the DLN is linear in its last layer: a loss scale
            log_scale = self.scale * torch.tanh(self.scale_head(x.mean(dim=0)))
            last = self.sizes[len(self.sizes) - 1 - self.sets_mix]
            phi = torch.cat([phi[:-last], phi[-last:] * log_scale.exp()])
        if self.mix_head is not None:
            logit = torch.logit(self.base_phi[n:]) + self.mix_range * torch.tanh(
                self.mix_head(x.mean(dim=0))
            )
            phi = torch.cat([phi, torch.sigmoid(logit)])
        return phi, {**new_state, "phi": phi}
