"""One student lifetime under any teacher: the episode loop every method shares (meta-
training episodes, frozen teachers, replayed schedules and fixed-loss baselines), so all of
them get the same data, budget and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

from l2t import progress, threads

if TYPE_CHECKING:  # envs depends on l2t; importing it here at run time would be a cycle
    from envs.student_training import StudentTrainingEnv

StepFn = Callable[["StudentTrainingEnv"], dict[str, float] | None]


@dataclass
class EpisodeResult:
    curve: list[dict[str, float]] = field(default_factory=list)  # step, val_acc[, test_acc]
    val_acc: float = 0.0
    test_acc: float | None = None
    diverged_steps: int = 0
    next_eval: int = 0  # the student step of the next evaluation (a run in progress)


def run_student(
    env: StudentTrainingEnv,
    step_fn: StepFn,
    seed: int,
    eval_every: int,
    test: tuple[Tensor, Tensor] | None = None,
    on_step: Callable[[dict[str, Any], EpisodeResult], None] | None = None,
    resume: EpisodeResult | None = None,
) -> EpisodeResult:
    """Train a fresh student (seeded) to the end of its budget, one teacher step at a time.

    Every `eval_every` student steps and at the end, the whole val split (and the test
    split, when given, for reporting only) is evaluated into `curve`. `on_step` receives
    each teacher step's record and the result so far. `resume`, the result of an episode
    stopped part way (its env put back with `env.restore`), continues that episode.
    """
    if resume is None:
        env.reset(seed=seed)
    result = resume if resume is not None else EpisodeResult()

    def evaluate_now() -> None:
        point: dict[str, float] = {"step": env.t}
        point["val_acc"] = env.evaluate(env.splits.x_val, env.splits.y_val)
        if test is not None:
            point["test_acc"] = env.evaluate(*test)
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
