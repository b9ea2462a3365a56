"""The student as a value: `StudentState` and the pure `unroll` (docs/design.md §3).

Estimators need many students at once, perturbed copies of one student, and gradients that
span several teacher steps; a module mutated in place allows none of that. Here a student
is its tensors — parameters, BatchNorm buffers, momentum buffers, step counter — and the
architecture is a stateless template called through `torch.func.functional_call`.

Nothing in `unroll` synchronises with the host: losses, the update norm and the divergence
flag stay tensors on the device; the caller reads them once per teacher step, if at all.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

LossFn = Callable[[Tensor, Tensor], Tensor]
Forward = Callable[[list[Tensor], Tensor], Tensor]  # (parameters, inputs) -> logits
BACKENDS = ("func", "higher")

# progress, train loss / log C, val loss / log C, val accuracy, log(1 + update norm)
FEATURE_NAMES = ("progress", "train_loss", "val_loss", "val_acc", "update_norm")
FEATURE_HIGH = (1.0, 10.0, 10.0, 1.0, 10.0)


@dataclass(frozen=True)
class SGD:
    """Plain SGD as torch.optim.SGD does it (no dampening, no Nesterov)."""

    lr: float | Tensor  # a 0-dim tensor inside the vmapped population: one rate per member
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class SGDStep:
    """What a `Lookahead` loss sees of one SGD step: the student as a function of its
    parameters, those parameters, the batch, the step's learning rate and the teacher step's
    validation batch."""

    forward: Forward
    params: list[Tensor]
    x: Tensor
    y: Tensor
    lr: float | Tensor
    x_val: Tensor
    y_val: Tensor


class Lookahead(ABC):
    """A training loss that reads the student, not only its logits: the reweighting
    methods' one-step lookahead on the teacher step's validation batch (l2t/methods/reweighting.py).
    `unroll` calls `objective` at every SGD step in place of `loss_fn(logits, y)`, so these
    methods train on the same step function as every other (docs/design.md §3)."""

    @abstractmethod
    def objective(self, step: SGDStep) -> Tensor:
        """The loss of this SGD step on its batch, differentiable in `step.params`."""


Loss = LossFn | Lookahead  # what a student trains under: a loss of its logits, or a lookahead


@dataclass
class StudentState:
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]  # BatchNorm running statistics
    momentum: dict[str, Tensor]  # SGD momentum buffers; empty before the first step
    step: int  # student updates taken (known on the host without a sync)
    train_loss: Tensor  # mean training loss of the last unroll (0-dim, on the device)
    update_norm: Tensor  # |w_end - w_start| / (lr K) of the last unroll: the mean step size
    finite: Tensor  # bool: the last unroll left every loss and parameter finite

    def detach(self) -> StudentState:
        """The same values with no autograd history: where a truncation ends."""
        return StudentState(
            {n: p.detach() for n, p in self.params.items()},
            {n: b.detach() for n, b in self.buffers.items()},
            {n: m.detach() for n, m in self.momentum.items()},
            self.step,
            self.train_loss.detach(),
            self.update_norm.detach(),
            self.finite,
        )


def state_to_dict(s: StudentState) -> dict[str, Any]:
    """A plain dict of tensors and numbers: how a checkpoint holds a student (as data)."""
    return dict(vars(s))


def state_from_dict(s: dict[str, Any]) -> StudentState:
    return StudentState(**{**s, "step": int(s["step"])})


def state_of(module: nn.Module) -> StudentState:
    """A student state holding a copy of `module`'s current weights and buffers."""
    params = {n: p.detach().clone() for n, p in module.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
    zero = next(iter(params.values())).new_zeros(())
    return StudentState(params, buffers, {}, 0, zero, zero, zero.new_ones((), dtype=torch.bool))


def unroll(
    model: nn.Module,
    state: StudentState,
    loss_fn: Loss,
    x_batches: Tensor,
    y_batches: Tensor,
    sgd: SGD,
    create_graph: bool = False,
    backend: str = "func",
    val: tuple[Tensor, Tensor] | None = None,
) -> StudentState:
    """`len(x_batches)` SGD steps from `state` under `loss_fn`; `state` is not changed.

    With `create_graph` the returned parameters are differentiable functions of `state`'s
    parameters and of whatever `loss_fn` depends on (second order through every step): the
    greedy and truncated-backprop estimators need that. Without it each step is first order
    (fixed losses, replayed schedules, evolution strategies) and no graph is kept.
    `backend` calls the student functionally with `torch.func.functional_call` (`func`) or
    `higher`'s monkey-patched module (`higher`); both give the same numbers (a test).
    A `Lookahead` loss is given each step's learning rate and the validation batch `val`.
    """
    if not create_graph:
        return _unroll_first_order(model, state, loss_fn, (x_batches, y_batches), sgd, val)
    if backend not in BACKENDS:
        raise ValueError(f"unknown unroll backend '{backend}'; allowed: {', '.join(BACKENDS)}")
    names = list(state.params)
    params = [_leaf(p) for p in state.params.values()]
    buffers = {n: b.clone() for n, b in state.buffers.items()}  # BatchNorm updates them in place
    momentum = [state.momentum.get(n) for n in names]
    total = torch.zeros((), device=x_batches.device)
    model.train()
    call = _functional(model, names, buffers, backend)
    for x, y in zip(x_batches, y_batches):
        with torch.enable_grad():  # the student's own gradient, also under no_grad
            if isinstance(loss_fn, Lookahead):
                forward = lambda ps, inputs: call(inputs, ps)  # noqa: E731
                loss = _lookahead_loss(loss_fn, forward, params, x, y, sgd, val)
            else:
                loss = loss_fn(call(x, params), y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
        new_params = []
        for i, (p, g) in enumerate(zip(params, grads)):
            p, momentum[i] = sgd_update(p, g, momentum[i], sgd)
            new_params.append(p)
        params = new_params
        total = total + loss.detach()
    if backend == "higher":
        buffers = call.buffers()  # type: ignore[attr-defined]
    return end_state(
        state, dict(zip(names, params)), buffers, names, momentum, total, x_batches, sgd
    )


def sgd_update(
    p: Tensor, g: Tensor, previous: Tensor | None, sgd: SGD
) -> tuple[Tensor, Tensor | None]:
    """One torch.optim.SGD step of one tensor, as values: the new tensor and its momentum
    buffer (None without momentum, or before the first step)."""
    if sgd.weight_decay:
        g = g + sgd.weight_decay * p
    if sgd.momentum:
        g = g if previous is None else sgd.momentum * previous + g
        return p - sgd.lr * g, g
    return p - sgd.lr * g, previous


class _HigherCall:
    """`higher`'s functional module over the template (BatchNorm buffers loaded into it)."""

    def __init__(self, model: nn.Module, buffers: dict[str, Tensor]) -> None:
        import higher

        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        self.names = list(buffers)
        self.fmodel = higher.monkeypatch(model, copy_initial_weights=True)

    def __call__(self, x: Tensor, params: list[Tensor]) -> Tensor:
        return self.fmodel(x, params=params)

    def buffers(self) -> dict[str, Tensor]:
        return {n: b.detach().clone() for n, b in zip(self.names, self.fmodel.buffers())}


def _functional(
    model: nn.Module, names: list[str], buffers: dict[str, Tensor], backend: str
) -> Callable[[Tensor, list[Tensor]], Tensor]:
    if backend == "higher":
        return _HigherCall(model, buffers)
    return lambda x, params: functional_call(model, {**dict(zip(names, params)), **buffers}, (x,))


def _lookahead_loss(
    loss_fn: Lookahead,
    forward: Forward,
    params: list[Tensor],
    x: Tensor,
    y: Tensor,
    sgd: SGD,
    val: tuple[Tensor, Tensor] | None,
) -> Tensor:
    if val is None:
        raise ValueError("a Lookahead loss needs the validation batch: unroll(..., val=...)")
    return loss_fn.objective(SGDStep(forward, params, x, y, sgd.lr, *val))


@torch.no_grad()
def _unroll_first_order(
    model: nn.Module,
    state: StudentState,
    loss_fn: Loss,
    data: tuple[Tensor, Tensor],
    sgd: SGD,
    val: tuple[Tensor, Tensor] | None = None,
) -> StudentState:
    """The same steps with no graph: the state is loaded into the template module, each
    step's `sgd_update` copied into it, and read back (measured: `functional_call`'s
    re-parametrisation per step costs more than a small student's whole step)."""
    x_batches, y_batches = data
    named = dict(model.named_parameters())
    for name, p in named.items():
        p.copy_(state.params[name])
    for name, b in model.named_buffers():
        b.copy_(state.buffers[name])
    params: list[Tensor] = list(named.values())
    momentum = [state.momentum[n].clone() if n in state.momentum else None for n in named]
    total = torch.zeros((), device=x_batches.device)
    model.train()
    names = list(named)
    buffers = dict(model.named_buffers())

    def forward(weights: list[Tensor], inputs: Tensor) -> Tensor:
        return functional_call(model, {**dict(zip(names, weights)), **buffers}, (inputs,))

    for x, y in zip(x_batches, y_batches):
        with torch.enable_grad():
            if isinstance(loss_fn, Lookahead):
                loss = _lookahead_loss(loss_fn, forward, params, x, y, sgd, val)
            else:
                loss = loss_fn(model(x), y)
            grads = torch.autograd.grad(loss, params)
        for i, (w, g) in enumerate(zip(params, grads)):
            new, momentum[i] = sgd_update(w, g, momentum[i], sgd)
            w.copy_(new)
        total += loss.detach()
    params_out = {n: p.detach().clone() for n, p in named.items()}
    buffers_out = {n: b.detach().clone() for n, b in buffers.items()}
    return end_state(state, params_out, buffers_out, names, momentum, total, x_batches, sgd)


def end_state(
    start: StudentState,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    names: list[str],
    momentum: list[Tensor | None],
    total_loss: Tensor,
    x_batches: Tensor,
    sgd: SGD,
) -> StudentState:
    """The state after an unroll, with its mean loss, step size and finiteness (on device)."""
    k = len(x_batches)
    moved = sum((p.detach() - start.params[n].detach()).pow(2).sum() for n, p in params.items())
    finite = torch.stack([torch.isfinite(p).all() for p in params.values()]).all()
    return StudentState(
        params,
        buffers,
        {n: m for n, m in zip(names, momentum) if m is not None},
        start.step + k,
        total_loss / k,
        torch.as_tensor(moved).sqrt() / (sgd.lr * k),
        finite & torch.isfinite(total_loss),
    )


def _leaf(p: Tensor) -> Tensor:
    """A tensor to differentiate the training loss by: the tensor itself if it carries a
    history (truncated backprop), else a copy that starts one."""
    return p if p.requires_grad else p.detach().requires_grad_()


def forward(model: nn.Module, state: StudentState, x: Tensor) -> Tensor:
    """The student's logits in evaluation mode (BatchNorm uses the running statistics)."""
    was_training = model.training
    model.eval()
    try:
        return functional_call(model, {**state.params, **state.buffers}, (x,))
    finally:
        model.train(was_training)


def validate(
    model: nn.Module,
    state: StudentState,
    x: Tensor,
    y: Tensor,
    criterion: LossFn = F.cross_entropy,
) -> tuple[Tensor, Tensor]:
    """The validation loss (differentiable where the state is) and accuracy, as tensors."""
    logits = forward(model, state, x)
    accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
    return criterion(logits, y), accuracy


def features(
    state: StudentState, val_loss: Tensor, val_acc: Tensor, budget: int, num_classes: int
) -> Tensor:
    """The student-state observation, on the device, the same on every path: `[progress,
    train loss / log C, val loss / log C, val accuracy, log(1 + update norm)]`, clipped to
    `[0, FEATURE_HIGH]` (a non-finite value reads as the upper bound)."""
    log_c = math.log(num_classes)
    device = val_loss.device
    raw = torch.stack(
        [
            torch.tensor(state.step / budget, device=device),
            state.train_loss.detach() / log_c,
            val_loss.detach() / log_c,
            val_acc.detach().float(),
            torch.log1p(state.update_norm.detach()),
        ]
    )
    high = torch.tensor(FEATURE_HIGH, device=device)
    return torch.minimum(torch.nan_to_num(raw, nan=10.0, posinf=10.0).clamp_min(0.0), high)
