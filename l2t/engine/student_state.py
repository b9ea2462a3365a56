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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, overload

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
    # float16 autocast's dynamic loss scale, [scale, finite steps at it] (None: not used)
    loss_scale: Tensor | None = None

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
            self.loss_scale,
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


AUTOCAST = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SCALE_START = 2.0**16  # float16's loss scale, as torch.amp.GradScaler starts and grows it
SCALE_GROWTH_STEPS = 2000


class MixedPrecision:
    """The first-order unrolls' autocast (docs/design.md §3): the student's forward in
    `dtype`, its loss in float32 (as `F.cross_entropy` is under autocast), parameters and
    SGD in float32. float16 gradients underflow without a loss scale, so with float16 the
    loss is scaled and the gradients unscaled; a step whose gradients overflow is skipped and
    the scale halved, and after `SCALE_GROWTH_STEPS` finite steps it doubles — what
    `torch.amp.GradScaler` does, as values (the scale travels in `StudentState.loss_scale`,
    one per member under `vmap`) and without a host sync. Second-order unrolls stay float32:
    their meta-gradients are sums over many steps, where low precision compounds."""

    def __init__(self, dtype: torch.dtype | None, device_type: str) -> None:
        self.dtype, self.device_type = dtype, device_type
        self.scaled = dtype == torch.float16

    def forward(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def full(self, logits: Tensor) -> Tensor:
        """The logits the loss reads: float32 under autocast, else as they are."""
        return logits if self.dtype is None else logits.float()

    def start(self, state: StudentState, device: torch.device) -> Tensor | None:
        """The loss scale an unroll from `state` starts at (None without float16)."""
        if not self.scaled:
            return None
        if state.loss_scale is not None:
            return state.loss_scale
        return torch.tensor([SCALE_START, 0.0], device=device)

    def scale_loss(self, loss: Tensor, scale: Tensor | None) -> Tensor:
        return loss if scale is None else loss * scale[0]

    def unscale(
        self, grads: tuple[Tensor, ...], scale: Tensor | None
    ) -> tuple[tuple[Tensor, ...], Tensor | None]:
        """The true gradients and whether they are all finite (None: not checked)."""
        if scale is None:
            return grads, None
        unscaled = tuple(g / scale[0] for g in grads)
        ok = torch.stack([torch.isfinite(g).all() for g in unscaled]).all()
        return unscaled, ok


def next_scale(scale: Tensor, ok: Tensor) -> Tensor:
    """GradScaler's update as values: halve after an overflow, double after
    `SCALE_GROWTH_STEPS` finite steps in a row."""
    grown = scale[1] + 1 >= SCALE_GROWTH_STEPS
    value = torch.where(ok, torch.where(grown, scale[0] * 2, scale[0]), scale[0] * 0.5)
    count = torch.where(ok & ~grown, scale[1] + 1, torch.zeros_like(scale[1]))
    return torch.stack([value, count])


@overload
def skip_unless(ok: Tensor | None, new: Tensor, old: Tensor | None) -> Tensor: ...
@overload
def skip_unless(ok: Tensor | None, new: None, old: Tensor | None) -> None: ...
def skip_unless(ok: Tensor | None, new: Tensor | None, old: Tensor | None) -> Tensor | None:
    """`new`, or `old` where a float16 step overflowed (no momentum yet reads as zeros,
    which `sgd_update` treats alike); a momentum `new` of None (plain SGD) stays None."""
    if ok is None or new is None:
        return new
    return torch.where(ok, new, torch.zeros_like(new) if old is None else old)


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
    autocast: torch.dtype | None = None,
) -> StudentState:
    """`len(x_batches)` SGD steps from `state` under `loss_fn`; `state` is not changed.

    With `create_graph` the returned parameters are differentiable functions of `state`'s
    parameters and of whatever `loss_fn` depends on (second order through every step): the
    greedy and truncated-backprop estimators need that. Without it each step is first order
    (fixed losses, replayed schedules, evolution strategies) and no graph is kept.
    `backend` calls the student functionally with `torch.func.functional_call` (`func`) or
    `higher`'s monkey-patched module (`higher`); both give the same numbers (a test).
    A `Lookahead` loss is given each step's learning rate and the validation batch `val`.
    `autocast` (a dtype): first-order steps under mixed precision (`MixedPrecision`; a
    `Lookahead` loss stays float32).
    """
    if not create_graph:
        amp = MixedPrecision(autocast, x_batches.device.type)
        return _unroll_first_order(model, state, loss_fn, (x_batches, y_batches), sgd, val, amp)
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
    val: tuple[Tensor, Tensor] | None,
    amp: MixedPrecision,
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

    scale = amp.start(state, x_batches.device)
    for x, y in zip(x_batches, y_batches):
        with torch.enable_grad():
            if isinstance(loss_fn, Lookahead):
                loss = _lookahead_loss(loss_fn, forward, params, x, y, sgd, val)
                grads, ok = torch.autograd.grad(loss, params), None
            else:
                with amp.forward():
                    logits = model(x)
                loss = loss_fn(amp.full(logits), y)
                scaled = torch.autograd.grad(amp.scale_loss(loss, scale), params)
                grads, ok = amp.unscale(scaled, scale)
        for i, (w, g) in enumerate(zip(params, grads)):
            new, m = sgd_update(w, g, momentum[i], sgd)
            w.copy_(skip_unless(ok, new, w))
            momentum[i] = skip_unless(ok, m, momentum[i])
        if scale is not None and ok is not None:
            scale = next_scale(scale, ok)
        total += loss.detach()
    params_out = {n: p.detach().clone() for n, p in named.items()}
    buffers_out = {n: b.detach().clone() for n, b in buffers.items()}
    end = end_state(state, params_out, buffers_out, names, momentum, total, x_batches, sgd)
    if scale is not None:
        end.loss_scale = scale
    return end


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
        start.loss_scale,
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
