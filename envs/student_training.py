"""Student training as a gymnasium environment: one env step is one teacher step.

A step trains the student for K = `unroll.steps` updates under the loss the action sets.
Two ways to drive it:
- the standard numpy API (`reset`, `step(action)`): the action in [-1, 1]^n sets the DLN
  weights `phi = phi_0 + beta * action`; first-order steps, cheap; for RL teachers;
- the differentiable functional step (`functional_step(phi)`): `phi` is a list of tensors
  that may require grad; returns the validation loss after a differentiable unroll, for
  gradient-based teachers (L2T-DLN's LSTM, L2T-DLF's MLP).

Observation (a `Box`): the student state `[progress, train loss / log C, val loss / log C,
val accuracy, log(1 + mean gradient norm)]`. Reward: the change of validation accuracy over
the step (so an episode's return is final minus initial validation accuracy). `terminated`
when the student's budget of `steps` updates is spent. The test split is not reachable from
here: teachers never see it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from l2t.config import Config, from_dict
from l2t.data import Splits, load_data, sample_batches
from l2t.device import resolve_device
from l2t.evaluation import accuracy
from l2t.loss_network import DynamicLossNetwork, dln_loss
from l2t.students import build_student
from l2t.unroll import LossFn, Unrolled, commit, train_steps, unroll

STATE_NAMES = ("progress", "train_loss", "val_loss", "val_acc", "grad_norm")
STATE_HIGH = np.array([1.0, 10.0, 10.0, 1.0, 10.0], dtype=np.float32)


@dataclass
class FunctionalStep:
    """Result of `functional_step`: `val_loss` is differentiable w.r.t. the given `phi`."""

    val_loss: Tensor
    val_acc: float
    train_loss: float
    diverged: bool  # the loss produced non-finite values; the student fell back to phi_0


def base_loss_network(cfg: Config) -> list[Tensor]:
    """The DLN's starting weights `phi_0`: fitted to the pairwise logistic loss (seeded)."""
    torch.manual_seed(cfg.seed)
    network = DynamicLossNetwork(cfg.loss.hidden, cfg.loss.layers)
    if cfg.loss.init == "pairwise_logistic":
        network.fit_pairwise_logistic(cfg.loss.init_steps, seed=cfg.seed)
    return [w.detach().clone() for w in network.phi]


class StudentTrainingEnv(gym.Env):
    """`gymnasium.make("l2t/StudentTraining-v0", dataset=..., student=..., ...)`.

    Keyword arguments are config keys (see `l2t.config.Config`; sections as dicts, e.g.
    `optim={"lr": 0.05}`). `splits` and `base_phi` let a caller share already-loaded data
    and a fitted base loss between environments.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it an instance attribute)

    def __init__(
        self,
        config: Config | None = None,
        splits: Splits | None = None,
        base_phi: list[Tensor] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.cfg = from_dict(overrides, config if config is not None else Config())
        self.device = resolve_device(self.cfg.device)
        if splits is None:
            splits = load_data(
                self.cfg.dataset,
                self.cfg.seed,
                self.device,
                self.cfg.data_dir,
                self.cfg.val_size,
                self.cfg.train_size,
            )
        self.splits = splits
        build_student(self.cfg.student, splits.input_shape, splits.num_classes)  # validates
        self.base_phi = [
            p.to(self.device)
            for p in (base_phi if base_phi is not None else base_loss_network(self.cfg))
        ]
        self.phi_shapes = [tuple(p.shape) for p in self.base_phi]
        self.n_phi = sum(p.numel() for p in self.base_phi)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.n_phi,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(
            np.zeros(len(STATE_NAMES), dtype=np.float32), STATE_HIGH, dtype=np.float32
        )
        self.teacher_steps = math.ceil(self.cfg.steps / self.cfg.unroll.steps)
        self.student: torch.nn.Module | None = None
        self.optimizer: torch.optim.SGD | None = None
        self.generator = torch.Generator()
        self.t = 0

    # -- episode state ---------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        student_seed = int(self.np_random.integers(2**31 - 1))
        torch.manual_seed(student_seed)
        self.generator.manual_seed(student_seed)
        self.student = build_student(
            self.cfg.student, self.splits.input_shape, self.splits.num_classes
        ).to(self.device)
        self.optimizer = torch.optim.SGD(
            self.student.parameters(),
            lr=self.cfg.optim.lr,
            momentum=self.cfg.optim.momentum,
            weight_decay=self.cfg.optim.weight_decay,
        )
        self.t = 0
        self._draw_batches()
        val_loss, val_acc = self._validate()
        self.state = {
            "train_loss": val_loss,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "grad_norm": 0.0,
        }
        return self._observation(), self._info()

    @property
    def progress(self) -> float:
        return self.t / self.cfg.steps

    @property
    def done(self) -> bool:
        return self.t >= self.cfg.steps

    def _draw_batches(self) -> None:
        """The K train batches and the val batch of the coming teacher step, fixed so that
        every unroll of one teacher step (three-stage update) sees the same data."""
        k = min(self.cfg.unroll.steps, self.cfg.steps - self.t)
        idx = sample_batches(
            len(self.splits.y_train), self.cfg.optim.batch_size, k, self.generator, self.device
        )
        self.x_batches, self.y_batches = self.splits.x_train[idx], self.splits.y_train[idx]
        n_val = len(self.splits.y_val)
        if self.cfg.val_batch and self.cfg.val_batch < n_val:
            vidx = sample_batches(n_val, self.cfg.val_batch, 1, self.generator, self.device)[0]
            self.x_val, self.y_val = self.splits.x_val[vidx], self.splits.y_val[vidx]
        else:
            self.x_val, self.y_val = self.splits.x_val, self.splits.y_val

    def _validate(self) -> tuple[float, float]:
        assert self.student is not None
        with torch.no_grad():
            self.student.eval()
            logits = self.student(self.x_val)
        return F.cross_entropy(logits, self.y_val).item(), accuracy(logits, self.y_val)

    def student_state(self) -> np.ndarray:
        """Normalized features of the student's training state (see the module docstring)."""
        log_c = math.log(self.splits.num_classes)
        raw = [
            self.progress,
            self.state["train_loss"] / log_c,
            self.state["val_loss"] / log_c,
            self.state["val_acc"],
            math.log1p(self.state["grad_norm"]),
        ]
        return np.clip(np.nan_to_num(np.array(raw, dtype=np.float32), nan=10.0), 0.0, STATE_HIGH)

    def _observation(self) -> np.ndarray:
        return self.student_state()

    def _info(self) -> dict[str, Any]:
        return {"t": self.t, **self.state}

    def phi_from_action(self, action: np.ndarray) -> list[Tensor]:
        """Map an action in [-1, 1]^n to DLN weights `phi_0 + beta * action`."""
        flat = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.device)
        if flat.shape != (self.n_phi,):
            raise ValueError(f"action must have shape ({self.n_phi},); got {tuple(flat.shape)}")
        chunks = flat.clamp(-1, 1).split([p.numel() for p in self.base_phi])
        return [
            base + self.cfg.teacher.beta * c.view_as(base) for base, c in zip(self.base_phi, chunks)
        ]

    # -- the two ways to step ----------------------------------------------------------
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """K first-order student updates under the DLN set by `action`."""
        phi = self.phi_from_action(action)
        before = self.state["val_acc"]
        self.train_with(lambda z, y: dln_loss(phi, z, y))
        return self._observation(), self.state["val_acc"] - before, self.done, False, self._info()

    def functional_step(self, phi: list[Tensor], commit_result: bool = True) -> FunctionalStep:
        """A differentiable unroll from the current student under `dln_loss(phi)`.

        Returns the validation cross-entropy after the K steps (differentiable w.r.t.
        `phi`). With `commit_result` the real student takes the unroll's end state and the
        episode advances; without it (stage 1 of the three-stage update) nothing changes.
        If the loss drives the student to non-finite values, the student instead takes K
        ordinary steps under `phi_0` (the divergence guard) and `diverged` is set.
        """
        if self.student is None or self.optimizer is None:
            raise RuntimeError("call reset() before functional_step()")
        result: Unrolled = unroll(
            self.student,
            self.optimizer,
            lambda z, y: dln_loss(phi, z, y),
            self.x_batches,
            self.y_batches,
            self.x_val,
            self.cfg.unroll.backend,
        )
        val_loss = F.cross_entropy(result.val_logits, self.y_val)
        diverged = not (math.isfinite(val_loss.item()) and _finite(result.params))
        val_acc = accuracy(result.val_logits, self.y_val)
        if commit_result:
            if diverged:
                self.train_with(self.base_loss)
            else:
                commit(self.student, self.optimizer, result)
                self._advance(result.train_loss, result.update_norm)
        return FunctionalStep(val_loss, val_acc, result.train_loss, diverged)

    def base_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return dln_loss(self.base_phi, logits, targets)

    def train_with(self, loss_fn: LossFn) -> None:
        """K first-order updates under any loss (fixed losses, replayed schedules, actions);
        advances the episode. A loss that makes the student non-finite is undone and the
        student takes the steps under the base loss `phi_0` instead."""
        if self.student is None or self.optimizer is None:
            raise RuntimeError("call reset() before stepping the environment")
        snapshot = _snapshot(self.student, self.optimizer)
        train_loss = train_steps(
            self.student, self.optimizer, loss_fn, self.x_batches, self.y_batches
        )
        if not math.isfinite(train_loss) or not _finite(self.student.parameters()):
            _restore(self.student, self.optimizer, snapshot)
            train_loss = train_steps(
                self.student, self.optimizer, self.base_loss, self.x_batches, self.y_batches
            )
        self._advance(train_loss, float("nan"))

    def _advance(self, train_loss: float, grad_norm: float) -> None:
        self.t += len(self.x_batches)
        val_loss, val_acc = self._validate()
        self.state = {
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "grad_norm": self.state["grad_norm"] if math.isnan(grad_norm) else grad_norm,
        }
        if not self.done:
            self._draw_batches()


def _finite(tensors: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _snapshot(student: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    return (
        {k: v.clone() for k, v in student.state_dict().items()},
        copy.deepcopy(optimizer.state_dict()),
    )


def _restore(student: torch.nn.Module, optimizer: torch.optim.Optimizer, snap: Any) -> None:
    student.load_state_dict(snap[0])
    optimizer.load_state_dict(snap[1])
