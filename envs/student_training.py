"""Student training as a gymnasium environment: one env step is one teacher step.

A step trains the student for K = `unroll.steps` updates under the loss the action sets.
The loss comes from one of two families (`loss.family`):
- `dln`: the dynamic loss network; the loss parameters are its weights `phi`, and an
  action `a` in [-1, 1]^n sets `phi = phi_0 + teacher.beta * a` (a bounded offset);
- `parametric`: four coefficients of a mixture of classic losses (`l2t.parametric_loss`);
  `a` in [-1, 1]^4 sets `max([1, 0, 0, 0] + a, 0)` (cross-entropy at a = 0).

The student is a `StudentState` of a `l2t.task.Task` (docs/design.md §3): the env is a thin
adapter that holds the current state and replaces it each step. `reset(seed=s)` gives the
student of seed `s` — the same initialization and batches an estimator's or `l2t compare`'s
student of seed `s` gets.

Two ways to drive it:
- the standard numpy API (`reset(seed=...)`, `step(action)`), for RL teachers and any
  gymnasium code;
- the differentiable functional step (`functional_step(params)`): loss parameters as
  tensors that may require grad in, the validation loss after a differentiable K-step
  unroll out (second order through the steps), for gradient-based teachers.

Observation (a flat `Box`): the student features every teacher observes
(`l2t.student_state.features`: `[progress, train loss / log C, val loss / log C, val
accuracy, log(1 + update norm)]`), then, with `observe_loss_state` (default),
the loss state, statistics of the validation gradient g w.r.t. the loss parameters through
the last of the step's K student updates (the others first order, so a step costs about K
plain updates): `[mean(g) / rms(g), log10 rms(g), fraction of g > 0, log10 max|g|]`.
Reward: the change of validation accuracy over the step, so an episode's return is the
final minus the initial validation accuracy (`val_batch=0` evaluates the whole val split:
less noise). `terminated` when the student's budget of `steps` updates is spent;
`truncated` only by a `TimeLimit` (`gymnasium.make(..., max_episode_steps=N)`).
The test split is not reachable from here: teachers never see it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from l2t.base_loss import base_loss_params
from l2t.config import Config, from_dict
from l2t.data import load_splits
from l2t.device import resolve_device
from l2t.evaluation import accuracy
from l2t.splits import Splits
from l2t.student_state import (
    FEATURE_HIGH,
    FEATURE_NAMES,
    SGD,
    LossFn,
    StudentState,
    features,
    forward,
    state_from_dict,
    state_to_dict,
    unroll,
    validate,
)
from l2t.students import build_student
from l2t.task import Task, params_from_action

LOSS_STATE_NAMES = ("g_mean_over_rms", "g_log10_rms", "g_frac_positive", "g_log10_max")
_STATE_LOW = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
_STATE_HIGH = np.array(FEATURE_HIGH, dtype=np.float32)
_LOSS_LOW = np.array([-1.0, -12.0, 0.0, -12.0], dtype=np.float32)
_LOSS_HIGH = np.array([1.0, 4.0, 1.0, 4.0], dtype=np.float32)


@dataclass
class FunctionalStep:
    """Result of `functional_step`: `val_loss` is differentiable w.r.t. the given params."""

    val_loss: Tensor
    val_acc: float
    train_loss: float
    diverged: bool  # the loss made the student non-finite; it took the base loss instead


class StudentTrainingEnv(gym.Env):
    """`gymnasium.make("l2t/StudentTraining-v0", dataset=..., student=..., ...)`.

    Keyword arguments are config keys (see `l2t.config.Config`; sections as dicts, e.g.
    `optim={"lr": 0.05}`). `splits` and `base_phi` let a caller share already-loaded data
    and fitted base loss parameters between environments.
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
        self.cfg = from_dict(overrides, copy.deepcopy(config) if config else Config())
        self.device = resolve_device(self.cfg.device)
        if splits is None:
            splits = load_splits(self.cfg, self.device)
        self.splits = splits
        build_student(self.cfg.student, splits.input_shape, splits.num_classes)  # validates
        params = base_phi if base_phi is not None else base_loss_params(self.cfg)
        self.base_phi = [p.to(self.device) for p in params]
        self.phi_shapes = [tuple(p.shape) for p in self.base_phi]
        self.n_phi = sum(p.numel() for p in self.base_phi)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.n_phi,), dtype=np.float32)
        low, high = _STATE_LOW, _STATE_HIGH
        if self.cfg.observe_loss_state:
            low, high = np.concatenate([low, _LOSS_LOW]), np.concatenate([high, _LOSS_HIGH])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.task = Task.from_config(self.cfg, splits)
        self.teacher_steps = self.task.teacher_steps
        self.student: StudentState | None = None  # a value; each step replaces it
        self.student_seed = 0
        self.lr = self.cfg.optim.lr  # settable between steps (annealed schedules)
        self.t = 0
        self.state: dict[str, float] = {}
        self.loss_state = np.zeros(len(LOSS_STATE_NAMES), dtype=np.float32)

    # -- episode state ---------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A fresh student: `seed` is the student's seed (its initialization and every
        batch, as in `l2t.task.Task`), so an env student and an estimator's student of the
        same seed are the same; without a seed one is drawn from the env's generator."""
        super().reset(seed=seed)
        self.student_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.student = self.task.init(self.student_seed)
        self.lr = self.cfg.optim.lr
        self.t = 0
        self._draw_batches()
        val_loss, val_acc = (x.item() for x in self._validate(self.student))
        # before any step the train loss is unknown; the val loss is its best estimate
        self.student.train_loss = torch.tensor(val_loss, device=self.device)
        self.state = {"train_loss": val_loss, "val_loss": val_loss, "val_acc": val_acc}
        self.state["update_norm"] = 0.0
        self.loss_state = np.zeros(len(LOSS_STATE_NAMES), dtype=np.float32)
        return self._observation(), self._info()

    def snapshot(self) -> dict[str, Any]:
        """The episode so far as plain data (a mid-episode checkpoint); `restore` puts it back.
        The coming batches are not stored: they follow from the student's seed and step."""
        if self.student is None:
            raise RuntimeError("call reset() before snapshot()")
        return {
            "seed": self.student_seed,
            "student": state_to_dict(self.student),
            "lr": self.lr,
            "state": dict(self.state),
            "loss_state": torch.from_numpy(self.loss_state.copy()),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.student_seed = int(snapshot["seed"])
        self.student = state_from_dict(snapshot["student"])
        self.t = self.student.step
        self.lr = float(snapshot["lr"])
        self.state = dict(snapshot["state"])
        self.loss_state = snapshot["loss_state"].numpy().copy()
        if not self.done:
            self._draw_batches()

    @property
    def progress(self) -> float:
        return self.t / self.cfg.steps

    @property
    def done(self) -> bool:
        return self.t >= self.cfg.steps

    def _draw_batches(self) -> None:
        """The K train batches and the val batch of the coming teacher step, fixed so that
        every unroll of one teacher step (three-stage update) sees the same data."""
        batches = self.task.batches(self.student_seed, self.t // self.task.k)
        self.x_batches, self.y_batches = batches.x, batches.y
        self.x_val, self.y_val = batches.x_val, batches.y_val

    def _validate(self, student: StudentState) -> tuple[Tensor, Tensor]:
        """`student`'s loss and accuracy on the val batch of the coming teacher step."""
        with torch.no_grad():
            return validate(self.task.model, student, self.x_val, self.y_val)

    def evaluate(self, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
        """The current student's accuracy on (x, y), BatchNorm in evaluation mode."""
        if self.student is None:
            raise RuntimeError("call reset() before evaluate()")
        with torch.no_grad():
            chunks = [
                forward(self.task.model, self.student, x[i : i + batch_size])
                for i in range(0, len(x), batch_size)
            ]
        return accuracy(torch.cat(chunks), y)

    def student_state(self) -> np.ndarray:
        """The student features every teacher observes (`l2t.student_state.features`)."""
        if self.student is None:
            raise RuntimeError("call reset() before student_state()")
        val_loss, val_acc = (torch.tensor(self.state[k]) for k in ("val_loss", "val_acc"))
        obs = features(self.student, val_loss, val_acc, self.cfg.steps, self.splits.num_classes)
        return obs.cpu().numpy()

    def observation(self) -> np.ndarray:
        """The current observation (the one the last `reset` or `step` returned)."""
        return self._observation()

    def _observation(self) -> np.ndarray:
        if not self.cfg.observe_loss_state:
            return self.student_state()
        return np.concatenate([self.student_state(), self.loss_state]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"t": self.t, **self.state}

    # -- loss parameters ---------------------------------------------------------------
    def loss_fn(self, params: list[Tensor]) -> LossFn:
        """The student's loss for loss parameters of this env's family."""
        return self.task.loss_fn(params)

    def base_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.loss_fn(self.base_phi)(logits, targets)

    def params_from_action(self, action: np.ndarray | Tensor) -> list[Tensor]:
        """Map an action in [-1, 1]^n to loss parameters (see the module docstring)."""
        flat = torch.as_tensor(action, dtype=torch.float32, device=self.device)
        if flat.shape != (self.n_phi,):
            raise ValueError(f"action must have shape ({self.n_phi},); got {tuple(flat.shape)}")
        family, beta = self.cfg.loss.family, self.cfg.teacher.beta
        return params_from_action(family, self.base_phi, beta, flat.clamp(-1, 1))

    # -- the two ways to step ----------------------------------------------------------
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """K student updates under the loss the action sets; see the module docstring."""
        before = self.state.get("val_acc")
        if before is None:
            raise RuntimeError("call reset() before step()")
        params = self.params_from_action(action)
        if self.cfg.observe_loss_state:
            diverged = self._train_and_observe(params)
        else:
            diverged = self.train_with(self.loss_fn(params), teacher_set=True)
        reward = self.state["val_acc"] - before
        info = {**self._info(), "diverged": float(diverged)}
        return self._observation(), reward, self.done, False, info

    def _train_and_observe(self, params: list[Tensor]) -> bool:
        """K steps under `params`, and the loss state from `g` through the last of them only:
        K - 1 first-order steps and one second-order step cost about as much as K plain
        steps, where `g` through all K would cost a whole second-order unroll."""
        assert self.student is not None
        leaves = [p.detach().requires_grad_() for p in params]
        loss, model, k = self.loss_fn(leaves), self.task.model, len(self.x_batches)
        start = self.student
        mid = start
        if k > 1:
            mid = unroll(model, start, loss, self.x_batches[:-1], self.y_batches[:-1], self._sgd())
        end = unroll(
            model,
            mid,
            loss,
            self.x_batches[-1:],
            self.y_batches[-1:],
            self._sgd(),
            create_graph=True,
            backend=self.cfg.unroll.backend,
        )
        val_loss, _ = validate(model, end, self.x_val, self.y_val)
        if self.task.broken(end.finite, val_loss):
            self.train_with(self.base_loss)  # the divergence guard
            return True
        grads = torch.autograd.grad(val_loss, leaves)
        self.loss_state = _gradient_statistics(torch.cat([g.flatten() for g in grads]))
        moved = sum((end.params[n].detach() - p).pow(2).sum() for n, p in start.params.items())
        train_loss = (mid.train_loss * (k - 1) + end.train_loss) / k if k > 1 else end.train_loss
        update_norm = torch.as_tensor(moved).sqrt() / (self.lr * k)
        self._advance(replace(end.detach(), train_loss=train_loss, update_norm=update_norm))
        return False

    def _sgd(self) -> SGD:
        return SGD(self.lr, self.cfg.optim.momentum, self.cfg.optim.weight_decay)

    def train_with(self, loss_fn: LossFn, teacher_set: bool = False) -> bool:
        """K first-order updates under any loss (fixed losses, replayed schedules, actions);
        advances the episode. A loss that makes the student non-finite — or, for a loss a
        teacher set, broken as `Task.broken` says — is undone and the student takes the
        steps under the base loss instead (the divergence guard); returns whether it was.
        A fixed loss is never judged by its loss value: a baseline stays itself."""
        if self.student is None:
            raise RuntimeError("call reset() before stepping the environment")
        model, start = self.task.model, self.student
        new = unroll(model, start, loss_fn, self.x_batches, self.y_batches, self._sgd())
        checked = self._validate(new)
        broken = self.task.broken(new.finite, checked[0]) if teacher_set else not bool(new.finite)
        if broken:
            new = unroll(model, start, self.base_loss, self.x_batches, self.y_batches, self._sgd())
            checked = self._validate(new)
        self._advance(new, checked)
        return broken

    def functional_step(self, params: list[Tensor], commit_result: bool = True) -> FunctionalStep:
        """A differentiable unroll from the current student under the loss `params` set.

        Returns the validation cross-entropy after the K steps (differentiable w.r.t.
        `params`). With `commit_result` the student takes the unroll's end state and the
        episode advances; without it (stage 1 of the three-stage update) nothing changes.
        If the loss drives the student to non-finite values, the student instead takes K
        ordinary steps under the base loss (the divergence guard), `diverged` set.
        """
        if self.student is None:
            raise RuntimeError("call reset() before functional_step()")
        new = unroll(
            self.task.model,
            self.student,
            self.loss_fn(params),
            self.x_batches,
            self.y_batches,
            self._sgd(),
            create_graph=True,
            backend=self.cfg.unroll.backend,
        )
        val_loss, val_acc = validate(self.task.model, new, self.x_val, self.y_val)
        diverged = self.task.broken(new.finite, val_loss)
        if commit_result:
            if diverged:
                self.train_with(self.base_loss)
            else:
                self._advance(new.detach())
        return FunctionalStep(val_loss, val_acc.item(), new.train_loss.item(), diverged)

    def _advance(self, new: StudentState, checked: tuple[Tensor, Tensor] | None = None) -> None:
        """`new` becomes the student; `checked`: its val-batch loss and accuracy if known."""
        self.student = new
        self.t = new.step
        val_loss, val_acc = (x.item() for x in checked or self._validate(new))
        self.state = {
            "train_loss": new.train_loss.item(),
            "val_loss": val_loss,
            "val_acc": val_acc,
            "update_norm": new.update_norm.item(),
        }
        if not self.done:
            self._draw_batches()


def _gradient_statistics(g: Tensor) -> np.ndarray:
    rms = g.pow(2).mean().sqrt()
    stats = [
        (g.mean() / (rms + 1e-30)).item(),
        torch.log10(rms + 1e-12).item(),
        (g > 0).float().mean().item(),
        torch.log10(g.abs().max() + 1e-12).item(),
    ]
    return np.clip(np.array(stats, dtype=np.float32), _LOSS_LOW, _LOSS_HIGH)
