"""A small real task with a known short-horizon bias (Wu et al. 2018's noisy quadratic):
linear regression where one input direction has 100x the curvature of the other, trained by
SGD on noisy mini-batches, and a one-parameter teacher that sets the loss scale (an
effective learning rate). A look K steps ahead is dominated by the high-curvature
direction's noise floor, which a smaller scale lowers at once; the loss at the end of a long
run needs the low-curvature direction to converge, which needs a larger scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from l2t.data.splits import Splits
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.student_state import SGD, LossFn
from l2t.engine.task import Task

CURVATURE = (1.0, 0.01)


def _mse(z: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (z.squeeze(-1) - y).pow(2).mean()


def quadratic_task(steps: int = 300, k: int = 5, noise: float = 1.0) -> Task:
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor(CURVATURE).sqrt()
    target = torch.tensor([1.0, 10.0])

    def split(n: int, noisy: bool) -> tuple[Tensor, Tensor]:
        x = torch.randn(n, 2, generator=generator) * scale
        y = x @ target
        return x, y + noise * torch.randn(n, generator=generator) if noisy else y

    x_train, y_train = split(4000, True)
    x_val, y_val = split(1000, False)

    def build() -> nn.Module:
        model = nn.Linear(2, 1, bias=False)
        nn.init.zeros_(model.weight)
        return model

    splits = Splits("quadratic", 2, x_train, y_train, x_val, y_val, x_val, y_val)
    return Task(splits, build, SGD(lr=0.3), steps, k, batch_size=4, criterion=_mse)


class LossScalePolicy(nn.Module):
    """theta = {log_scale}: the student's loss is exp(log_scale) * MSE."""

    observes_gradient = False
    teacher_set = True

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))

    def initial_state(self) -> TeacherState:
        return {}

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        return [theta["log_scale"].exp()], state

    def base_params(self) -> list[Tensor]:
        return [torch.ones(())]

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> LossFn:
        return lambda z, y: params[0] * _mse(z, y)
