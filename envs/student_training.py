"""Student training as a gymnasium environment: one env step is one teacher step.

A thin adapter over `l2t.engine.task.Task` and `l2t.engine.lifetime` (docs/design.md §3) for RL code
(the REINFORCE teacher, any gymnasium agent): a step is `lifetime.advance` of a policy
whose parameters are the action, so an env student trains exactly as a student of every
other path does (the same data, SGD, divergence guard). Below the commands, nothing imports it.

A step trains the student for K = `unroll.steps` updates under the loss the action sets.
The loss comes from one of two families (`loss.family`):
- `dln`: the dynamic loss network; the loss parameters are its weights `phi`, and an
  action `a` in [-1, 1]^n sets `phi = phi_0 + teacher.beta * a` (a bounded offset);
- `parametric`: four coefficients of a mixture of classic losses (`l2t.losses.parametric`);
  `a` in [-1, 1]^4 sets `max([1, 0, 0, 0] + a, 0)` (cross-entropy at a = 0).
`reset(seed=s)` gives the student of seed `s` — the same initialization and batches an
estimator's or `l2t compare`'s student of seed `s` gets.

Observation (a flat `Box`): the student features every teacher observes
(`l2t.engine.student_state.features`: `[progress, train loss / log C, val loss / log C, val
accuracy, log(1 + update norm)]`), then, with `observe_loss_state` (default), the loss
state, statistics of the validation gradient g w.r.t. the loss parameters through the
step's K student updates (a second-order unroll, as every teacher observing g has it):
`[mean(g) / rms(g), log10 rms(g), fraction of g > 0, log10 max|g|]`.
Reward: the change of validation accuracy over the step, so an episode's return is the
final minus the initial validation accuracy (`val_batch=0` evaluates the whole val split:
less noise). `terminated` when the student's budget of `steps` updates is spent;
`truncated` only by a `TimeLimit` (`gymnasium.make(..., max_episode_steps=N)`).
The test split is not reachable from here: teachers never see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from l2t.config import Config, parts, varied
from l2t.data.splits import Splits
from l2t.engine.lifetime import Lifetime, Observation, TeacherState, Theta, advance, start
from l2t.engine.student_state import (
    FEATURE_HIGH,
    FEATURE_NAMES,
    LossFn,
    StudentState,
    state_from_dict,
    state_to_dict,
)
from l2t.engine.students import build_student
from l2t.engine.task import Task, params_from_action
from l2t.io.device import resolve_device

LOSS_STATE_NAMES = ("g_mean_over_rms", "g_log10_rms", "g_frac_positive", "g_log10_max")
_STATE_LOW = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
_STATE_HIGH = np.array(FEATURE_HIGH, dtype=np.float32)
_LOSS_LOW = np.array([-1.0, -12.0, 0.0, -12.0], dtype=np.float32)
_LOSS_HIGH = np.array([1.0, 4.0, 1.0, 4.0], dtype=np.float32)
_VAL_ACC = FEATURE_NAMES.index("val_acc")


class ActionPolicy:
    """The `lifetime.Policy` the env drives: its parameters are the action, `{"action": a}`,
    mapped to loss parameters by `l2t.engine.task.params_from_action` around the base `phi_0`."""

    teacher_set = True  # an action's loss is judged broken by the validation loss too

    def __init__(self, family: str, base: list[Tensor], beta: float, observes_gradient: bool):
        self.family, self.base, self.beta = family, base, beta
        self.observes_gradient = observes_gradient

    def initial_state(self) -> TeacherState:
        return {}

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        return params_from_action(self.family, self.base, self.beta, theta["action"]), state

    def base_params(self) -> list[Tensor]:
        return self.base

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> LossFn:
        return task.loss_fn(params)


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
        self.cfg = varied(config or Config(), overrides)
        self.device = resolve_device(self.cfg.device)
        if splits is None:
            splits = parts.splits(self.cfg, self.device)
        self.splits = splits
        build_student(self.cfg.student, splits.input_shape, splits.num_classes)  # validates
        params = base_phi if base_phi is not None else parts.base_loss(self.cfg)
        self.base_phi = [p.to(self.device) for p in params]
        self.n_phi = sum(p.numel() for p in self.base_phi)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.n_phi,), dtype=np.float32)
        low, high = _STATE_LOW, _STATE_HIGH
        if self.cfg.observe_loss_state:
            low, high = np.concatenate([low, _LOSS_LOW]), np.concatenate([high, _LOSS_HIGH])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.task = parts.task(self.cfg, splits)
        self.teacher_steps = self.task.teacher_steps
        self.policy = ActionPolicy(
            self.cfg.loss.family, self.base_phi, self.cfg.teacher.beta, self.cfg.observe_loss_state
        )
        self.life: Lifetime | None = None  # the student's lifetime; each step replaces it
        self.state: dict[str, float] = {}  # train/val loss, val accuracy, update norm

    @property
    def student(self) -> StudentState | None:
        return None if self.life is None else self.life.student

    @property
    def t(self) -> int:
        """Student steps taken."""
        return 0 if self.life is None else self.life.student.step

    @property
    def progress(self) -> float:
        return self.t / self.cfg.steps

    @property
    def done(self) -> bool:
        return self.t >= self.cfg.steps

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A fresh student: `seed` is the student's seed (its initialization and every
        batch, as in `l2t.engine.task.Task`), so an env student and an estimator's student of the
        same seed are the same; without a seed one is drawn from the env's generator."""
        super().reset(seed=seed)
        student_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.life = start(self.task, self.policy, student_seed)
        # before any step the train loss stands for the val loss (lifetime.start)
        val_acc = self.life.obs.student[_VAL_ACC]
        self._record(self.life.student.train_loss, val_acc)
        return self.observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """K student updates under the loss the action sets; see the module docstring."""
        if self.life is None:
            raise RuntimeError("call reset() before step()")
        before = self.state["val_acc"]
        flat = torch.as_tensor(action, dtype=torch.float32, device=self.device)
        if flat.shape != (self.n_phi,):
            raise ValueError(f"action must have shape ({self.n_phi},); got {tuple(flat.shape)}")
        step = advance(self.task, self.policy, {"action": flat.clamp(-1, 1)}, self.life)
        self.life = step.life
        self._record(step.val_loss, step.val_acc)
        reward = self.state["val_acc"] - before
        info = {**self._info(), "diverged": float(step.diverged)}
        return self.observation(), reward, self.done, False, info

    def params_from_action(self, action: np.ndarray | Tensor) -> list[Tensor]:
        """Map an action in [-1, 1]^n to loss parameters (see the module docstring)."""
        flat = torch.as_tensor(action, dtype=torch.float32, device=self.device).clamp(-1, 1)
        return params_from_action(self.cfg.loss.family, self.base_phi, self.cfg.teacher.beta, flat)

    def observation(self) -> np.ndarray:
        """The current observation (the one the last `reset` or `step` returned)."""
        if self.life is None:
            raise RuntimeError("call reset() before observation()")
        student = self.life.obs.student.cpu().numpy()
        if not self.cfg.observe_loss_state:
            return student
        grad = self.life.obs.grad
        stats = np.zeros(len(LOSS_STATE_NAMES), np.float32) if grad is None else _stats(grad)
        return np.concatenate([student, stats]).astype(np.float32)

    def snapshot(self) -> dict[str, Any]:
        """The episode so far as plain data (a mid-episode checkpoint); `restore` puts it back.
        The coming batches are not stored: they follow from the student's seed and step."""
        if self.life is None:
            raise RuntimeError("call reset() before snapshot()")
        obs = self.life.obs
        return {
            "seed": self.life.seed,
            "t": self.life.t,
            "student": state_to_dict(self.life.student),
            "obs": {"student": obs.student, "grad": obs.grad, "progress": obs.progress},
            "state": dict(self.state),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        obs = Observation(**snapshot["obs"])
        student = state_from_dict(snapshot["student"])
        self.life = Lifetime(int(snapshot["seed"]), int(snapshot["t"]), student, {}, obs)
        self.state = dict(snapshot["state"])

    def _record(self, val_loss: Tensor, val_acc: Tensor) -> None:
        assert self.life is not None
        student = self.life.student
        self.state = {
            "train_loss": student.train_loss.item(),
            "val_loss": val_loss.item(),
            "val_acc": val_acc.item(),
            "update_norm": student.update_norm.item(),
        }

    def _info(self) -> dict[str, Any]:
        return {"t": self.t, **self.state}


def _stats(g: Tensor) -> np.ndarray:
    """The loss state: statistics of the flat gradient `g` (see the module docstring)."""
    rms = g.pow(2).mean().sqrt()
    stats = [
        (g.mean() / (rms + 1e-30)).item(),
        torch.log10(rms + 1e-12).item(),
        (g > 0).float().mean().item(),
        torch.log10(g.abs().max() + 1e-12).item(),
    ]
    return np.clip(np.array(stats, dtype=np.float32), _LOSS_LOW, _LOSS_HIGH)
