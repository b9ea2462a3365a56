"""One student's lifetime through the environment, for agents that act in it (the REINFORCE
teacher, any gymnasium agent): reset, a step per teacher step, the val (and test) accuracy
every `eval_every` student steps. Policies (agents with `propose`) train their students on
the lifetime path instead (l2t/engine/teaching.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from envs.student_training import StudentTrainingEnv
from l2t.engine.teaching import EpisodeResult, accuracy_of
from l2t.io import progress, threads

StepFn = Callable[[StudentTrainingEnv], dict[str, float] | None]


def run_episode(
    env: StudentTrainingEnv,
    step_fn: StepFn,
    seed: int,
    eval_every: int,
    test: tuple[Tensor, Tensor] | None = None,
    on_step: Callable[[dict[str, Any], EpisodeResult], None] | None = None,
    resume: EpisodeResult | None = None,
) -> EpisodeResult:
    """Train a fresh student (seeded) in `env` to the end of its budget. `on_step` receives
    each teacher step's record and the result so far; `resume`, the result of an episode
    stopped part way (its env put back with `env.restore`), continues that episode."""
    if resume is None:
        env.reset(seed=seed)
    result = resume if resume is not None else EpisodeResult()

    def evaluate_now() -> None:
        assert env.student is not None
        point: dict[str, float] = {"step": env.t}
        point["val_acc"] = accuracy_of(env.task, env.student, env.splits.x_val, env.splits.y_val)
        if test is not None:
            point["test_acc"] = accuracy_of(env.task, env.student, *test)
        result.curve.append(point)

    while not env.done:
        if env.t >= result.next_eval:
            evaluate_now()
            result.next_eval += eval_every
        threads.rebalance()
        before = env.t
        info = step_fn(env) or {}
        progress.tick(env.t - before)
        result.diverged_steps += int(info.get("diverged", 0))
        if on_step is not None:
            on_step({"step": env.t, **env.state, **info}, result)
    evaluate_now()
    result.val_acc = result.curve[-1]["val_acc"]
    result.test_acc = result.curve[-1].get("test_acc")
    return result
