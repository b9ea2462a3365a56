"""L2T-style teacher (Fan et al. 2018): a stochastic policy over loss parameters trained
with REINFORCE from the environment's rewards, through the standard numpy API only — so it
runs unchanged on any gymnasium env with `Box` spaces.

Policy: a Gaussian over the action, mean `tanh(MLP(obs))`, learned per-dimension std;
actions are clipped to the action space. Update after each episode with the return-to-go
minus a per-time-step moving-average baseline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from agents.base import Teacher
from envs.episode import run_episode
from envs.student_training import StudentTrainingEnv
from l2t.config import LossNetConfig, TeacherConfig
from l2t.engine.schedule import Schedule
from l2t.engine.teaching import EpisodeResult


class ReinforceTeacher(Teacher):
    kind = "reinforce"
    optimizer: torch.optim.Optimizer  # set in __init__: REINFORCE steps it every teacher step
    baseline: Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        lr: float = 1e-2,
        hidden: int = 32,
        init_std: float = 0.3,
        baseline_decay: float = 0.9,
        max_steps: int = 10_000,
    ) -> None:
        super().__init__()
        self.mean_net = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, act_dim)
        )
        last = self.mean_net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # start at action 0: the base loss
        nn.init.zeros_(last.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.register_buffer("baseline", torch.zeros(max_steps))
        self.baseline_decay = baseline_decay
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        self._reset_trajectory()

    trained_by_estimator = False  # it learns from its own episodes in the env
    acts_in_env = True
    families = ("dln", "parametric")  # its action is the env's flat action

    @classmethod
    def from_settings(
        cls, t: TeacherConfig, loss: LossNetConfig, base: list[Tensor], env: Any = None
    ) -> ReinforceTeacher:
        return cls.for_env(env, lr=t.lr, hidden=t.hidden, init_std=t.init_std)

    @classmethod
    def for_env(cls, env: gym.Env, **hparams: Any) -> ReinforceTeacher:
        obs_space, act_space = env.observation_space, env.action_space
        assert isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)
        return cls(int(np.prod(obs_space.shape)), int(np.prod(act_space.shape)), **hparams)

    def _reset_trajectory(self) -> None:
        self.log_probs: list[Tensor] = []
        self.observed: list[Tensor] = []  # what each log-prob is of: to rebuild them on resume
        self.samples: list[Tensor] = []
        self.rewards: list[float] = []
        self.obs: np.ndarray | None = None
        self.params: list[Tensor] | None = None

    def distribution(self, obs: np.ndarray) -> torch.distributions.Normal:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).flatten()
        return torch.distributions.Normal(torch.tanh(self.mean_net(x)), self.log_std.exp())

    def predict(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, Tensor]:
        """An action for `obs` (clipped to [-1, 1]) and its log-probability under the policy."""
        action, _, log_prob = self._sample(obs, deterministic)
        return action, log_prob

    def _sample(self, obs: np.ndarray, deterministic: bool) -> tuple[np.ndarray, Tensor, Tensor]:
        dist = self.distribution(obs)
        sample = (dist.mean if deterministic else dist.sample()).detach()
        return sample.clamp(-1, 1).numpy(), sample, dist.log_prob(sample).sum()

    def _act(self, env: gym.Env, learn: bool) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        """One env step with the policy; at the end of an episode, learn from it."""
        assert self.obs is not None
        observed = torch.as_tensor(np.asarray(self.obs, dtype=np.float32))
        action, sample, log_prob = self._sample(self.obs, deterministic=not learn)
        self.obs, reward, terminated, truncated, info = env.step(action)
        self.log_probs.append(log_prob)
        self.observed.append(observed)
        self.samples.append(sample)
        self.rewards.append(float(reward))
        done = bool(terminated or truncated)
        if done and learn:
            self.update()
        return action, float(reward), done, info

    def update(self) -> float:
        """One REINFORCE step on the finished trajectory; returns its return."""
        returns = torch.tensor(np.cumsum(self.rewards[::-1])[::-1].copy(), dtype=torch.float32)
        n = len(returns)
        advantages = returns - self.baseline[:n]
        with torch.no_grad():
            decay = self.baseline_decay
            self.baseline[:n] = decay * self.baseline[:n] + (1 - decay) * returns
        loss = -(torch.stack(self.log_probs) * advantages).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        total = float(returns[0]) if n else 0.0
        self._reset_trajectory()
        return total

    def learn(self, env: gym.Env, episodes: int, seed: int = 0) -> list[float]:
        """Train on any gymnasium env with Box spaces; returns each episode's return."""
        history = []
        for episode in range(episodes):
            self._reset_trajectory()
            self.obs, _ = env.reset(seed=seed + episode)
            episode_return, done = 0.0, False
            while not done:
                _, reward, done, _ = self._act(env, learn=True)
                episode_return += reward
            history.append(episode_return)
        return history

    # -- teaching through the environment (envs/episode.py) --------------------------------
    def teach(
        self,
        env: StudentTrainingEnv,
        seed: int,
        eval_every: int,
        test: tuple[Tensor, Tensor] | None = None,
        schedule: Schedule | None = None,
    ) -> EpisodeResult:
        """Train a fresh student (seeded) in `env` with the policy's mean actions, frozen;
        the loss parameters it sets go into `schedule` by progress."""
        self.start_episode(env)

        def step(env: StudentTrainingEnv) -> dict[str, float]:
            progress_before = env.progress
            info = self.teacher_step(env, learn=False)
            if schedule is not None and self.params is not None:
                schedule.record(progress_before, self.params)
            return info

        return run_episode(env, step, seed, eval_every, test)

    def learn_episode(
        self,
        env: StudentTrainingEnv,
        seed: int,
        eval_every: int,
        on_step: Callable[[dict[str, Any], EpisodeResult], None],
        saved: dict[str, Any] | None = None,
    ) -> EpisodeResult:
        """One student in `env` while the agent learns from it (REINFORCE's step at its end);
        `saved` (an `in_hand` of an episode stopped part way) continues that episode."""
        resumed = None
        if saved is None:
            self.start_episode(env)
        else:
            env.restore(saved["env"])
            self.load_episode_state(saved["teacher"])
            torch.set_rng_state(saved["torch_rng"])
            resumed = EpisodeResult(**saved["result"])
        step = lambda e: self.teacher_step(e, learn=True)  # noqa: E731
        return run_episode(env, step, seed, eval_every, on_step=on_step, resume=resumed)

    def in_hand(self, env: StudentTrainingEnv, result: EpisodeResult) -> dict[str, Any]:
        """An episode stopped part way, as data: the student, what the agent holds about it,
        the curve so far and the random stream of its actions (`learn_episode` resumes it)."""
        return {
            "env": env.snapshot(),
            "teacher": self.episode_state(),
            "result": dataclasses.asdict(result),
            "torch_rng": torch.get_rng_state(),
        }

    def start_episode(self, env: StudentTrainingEnv) -> None:
        self._reset_trajectory()

    def current_params(self) -> list[Tensor] | None:
        return self.params

    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        if self.obs is None:  # first step of a student: what its reset returned
            self.obs = env.observation()
        action, _, _, info = self._act(env, learn)
        self.params = [p.detach() for p in env.params_from_action(action)]
        std = self.log_std.detach().exp().mean().item()
        return {"std": std, "diverged": float(info.get("diverged", 0.0))}

    def episode_state(self) -> dict[str, Any]:
        """The trajectory so far; its log-probabilities are recomputed on load (the policy
        does not change within an episode), so they need no autograd graph in the file."""
        return {
            "observed": self.observed,
            "samples": self.samples,
            "rewards": self.rewards,
            "obs": None if self.obs is None else torch.as_tensor(self.obs),
            "params": self.params,
        }

    def load_episode_state(self, state: dict[str, Any]) -> None:
        self._reset_trajectory()
        self.observed, self.samples = list(state["observed"]), list(state["samples"])
        self.rewards = [float(r) for r in state["rewards"]]
        self.log_probs = [
            self.distribution(o.numpy()).log_prob(s).sum()
            for o, s in zip(self.observed, self.samples)
        ]
        self.obs = None if state["obs"] is None else state["obs"].numpy()
        self.params = None if state["params"] is None else list(state["params"])
