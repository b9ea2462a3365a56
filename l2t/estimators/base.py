"""What every outer-gradient estimator shares (docs/design.md §3): it owns a population of
student lifetimes (and, for evolution strategies, their perturbations), advances them with
the policy at the parameters it is given, and returns a gradient for `theta`. It never
steps an optimizer: the outer loop (`l2t/commands/training.py`) does, so an all-reduce across
processes has exactly one place to go.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from l2t.config import ConfigError, EstimatorConfig
from l2t.engine.lifetime import Lifetime, Observation, Policy, Step, Theta, advance, start
from l2t.engine.population import advance_together
from l2t.engine.seeds import student_index, student_seed
from l2t.engine.student_state import state_from_dict, state_to_dict
from l2t.engine.task import Task


@dataclass
class EstimatorSettings:
    population: int  # lifetimes (greedy, tbptt) or antithetic pairs (pes, es) per estimate
    horizon: int  # teacher steps per truncation (tbptt, pes)
    sigma: float  # perturbation scale (pes, es)
    objective: str  # val_loss | val_acc
    objective_from: float  # training progress from which validation metrics count (pes, es)
    seed: int  # seeds the students and the perturbations
    stagger: bool = True  # start a truncated population spread over the students' budget
    max_divergences: int = 20  # teacher steps in a row that may break students, then stop
    rank: int = 0  # this process's share of the population: members rank, rank + world, ...
    world: int = 1  # processes sharing the population (l2t/io/distributed.py)
    vmap: bool = False  # advance the population's students together (l2t/engine/population.py)
    # per-element perturbation scales of named parameters (the control teacher's per-control
    # sigma, `estimator.sigma_controls`); every other parameter: `sigma`
    sigma_of: dict[str, Tensor] = field(default_factory=dict)


class Diverged(RuntimeError):
    """Students kept breaking: the run stops (the CLI says so in one line, exit 1)."""


class Estimator(ABC):
    """An outer-gradient estimator over a population of lifetimes (one file each). Its
    facts, which `check` reads: whether its population counts antithetic pairs (and may
    perturb with a sigma per control), whether it can train the population together
    (`estimator.vmap`), whether its meta-objective must have a gradient."""

    antithetic: ClassVar[bool] = False
    vmappable: ClassVar[bool] = True
    needs_gradient: ClassVar[bool] = True
    default_population: ClassVar[int] = 1  # `estimator.population=0`

    @classmethod
    def check(cls, e: EstimatorConfig) -> None:
        """Refuse, in one line, the `estimator:` settings it cannot run (before data loads)."""
        if e.sigma_controls and not cls.antithetic:
            raise ConfigError(
                "estimator.sigma_controls sets the control teacher's perturbation per control: "
                "teacher.agent=control with estimator.kind=pes|es"
            )
        if e.vmap and not cls.vmappable:
            raise ConfigError(
                f"estimator.vmap=true advances students one teacher step at a time (estimator.kind"
                f"=pes|es|greedy); {e.kind} differentiates through several steps of each student: "
                "use estimator.vmap=false"
            )
        if e.objective == "val_acc" and cls.needs_gradient:
            raise ConfigError(
                f"estimator.objective=val_acc has no gradient; estimator.kind={e.kind} needs "
                "val_loss (pes and es can use either)"
            )

    def __init__(self, task: Task | Sequence[Task], policy: Policy, cfg: EstimatorSettings) -> None:
        # several tasks: one teacher for several student architectures (`students_mix`);
        # they share the budget, so `self.task` answers for all but the architecture
        self.tasks = [task] if isinstance(task, Task) else list(task)
        self.task, self.policy, self.cfg = self.tasks[0], policy, cfg
        self.updates = 0  # estimates made so far
        self.diverged = 0  # teacher steps whose loss broke a student (retaken under the base)
        self.in_a_row = 0  # of them, the latest consecutive ones

    def counters(self) -> dict[str, int]:
        return {"updates": self.updates, "diverged": self.diverged, "in_a_row": self.in_a_row}

    def load_counters(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.diverged = int(state.get("diverged", 0))  # checkpoints from before the counters
        self.in_a_row = int(state.get("in_a_row", 0))

    def advance(
        self, theta: Theta, life: Lifetime, differentiable: bool = False, chain: bool = False
    ) -> Step:
        """One teacher step of `life`, counting a divergence; too many in a row stop the run."""
        step = advance(self.task_of(life.seed), self.policy, theta, life, differentiable, chain)
        self.count(step)
        return step

    def count(self, step: Step) -> None:
        """Count a step whose loss broke its student; too many in a row stop the run."""
        self.diverged += int(step.diverged)
        self.in_a_row = self.in_a_row + 1 if step.diverged else 0
        if self.in_a_row >= self.cfg.max_divergences:
            raise Diverged(
                f"{self.in_a_row} teacher steps in a row broke their students (NaN, inf or a "
                "validation loss above 10 ln C) though each was retaken under the base loss: "
                "lower optim.lr (the student's), teacher.lr or teacher.beta; "
                "max_divergences sets how many in a row are tolerated"
            )

    @abstractmethod
    def estimate(self, theta: Theta) -> tuple[Theta, dict[str, float]]:
        """A gradient of the meta-objective at `theta` (same keys), and scalars to log."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (tensors and numbers only)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    # -- shared by the estimators ---------------------------------------------------------
    def members(self) -> range:
        """The population members this process runs; the population's estimate is the sum of
        every process's (each divides by the whole population's size)."""
        return range(self.cfg.rank, self.cfg.population, self.cfg.world)

    def task_of(self, seed: int) -> Task:
        """The task of a training student: population member i teaches the (i mod n)-th of
        the n architectures, whichever process runs it."""
        member = student_index(seed) % self.cfg.population
        return self.tasks[member % len(self.tasks)]

    def staggered(self, theta: Theta) -> list[Lifetime]:
        """This process's first members: spread over the budget unless one window spans it
        (member i first advanced, first order and unperturbed, through i / n of its budget),
        so a population spans early, middle and late training from the first update."""
        n = self.cfg.population
        spread = self.cfg.stagger and self.cfg.horizon < self.task.teacher_steps
        lives = [self.new_student(theta, i) for i in self.members()]
        steps = [int(i / n * self.task.teacher_steps) if spread else 0 for i in self.members()]
        return self.run_all([theta] * len(lives), lives, steps)[0]

    def new_student(self, theta: Theta, number: int) -> Lifetime:
        """Training student `number` of the run (member i's g-th is i + g * students, so a
        member's students do not depend on which process runs it)."""
        seed = student_seed(self.cfg.seed, "train", number)
        return start(self.task_of(seed), self.policy, seed)

    def successor(self, theta: Theta, life: Lifetime) -> Lifetime:
        """The next student of the member whose student `life` finished its budget."""
        return self.new_student(theta, student_index(life.seed) + self.cfg.population)

    def weight(self, life: Lifetime) -> float:
        """How much the step that brought `life` where it is counts in the meta-objective:
        the steps from `objective_from` on share weight 1 per lifetime."""
        first = int(self.cfg.objective_from * self.task.teacher_steps)
        counted = self.task.teacher_steps - first
        return 1.0 / counted if life.t > first else 0.0

    def run(self, theta: Theta, life: Lifetime, steps: int) -> tuple[Lifetime, Tensor]:
        """Advance `life` by up to `steps` teacher steps (first order) under `theta`;
        returns it and its weighted meta-objective over those steps."""
        total = torch.zeros((), device=self.task.device)
        for _ in range(steps):
            if life.done(self.task):
                break
            step = self.advance(theta, life)
            life = step.life
            total = total + self.weight(life) * self.metric(step.val_loss, step.val_acc)
        return life, total

    def run_all(
        self, thetas: Sequence[Theta], lives: Sequence[Lifetime], steps: Sequence[int] | int
    ) -> tuple[list[Lifetime], list[Tensor]]:
        """`run` for each life j under `thetas[j]` (up to `steps[j]` teacher steps): one
        after another, or with `vmap` all together, a teacher step at a time, one batched
        call per architecture (l2t/engine/population.py)."""
        todo = [steps] * len(lives) if isinstance(steps, int) else list(steps)
        if not self.cfg.vmap:
            done = [self.run(theta, life, n) for theta, life, n in zip(thetas, lives, todo)]
            return [life for life, _ in done], [total for _, total in done]
        lives = list(lives)
        totals = [torch.zeros((), device=self.task.device) for _ in lives]
        for t in range(max(todo, default=0)):
            active = [j for j, life in enumerate(lives) if t < todo[j] and not life.done(self.task)]
            taken = self.advance_all([thetas[j] for j in active], [lives[j] for j in active])
            for j, step in zip(active, taken):
                lives[j] = step.life
                totals[j] = totals[j] + self.weight(step.life) * self.metric(
                    step.val_loss, step.val_acc
                )
        return lives, totals

    def advance_all(
        self, thetas: Sequence[Theta], lives: Sequence[Lifetime], chain: bool = False
    ) -> list[Step]:
        """One teacher step of every life together (`population.advance_together`), one
        batched call per architecture, counting divergences as `advance` does."""
        steps: list[Step | None] = [None] * len(lives)
        by_task: dict[int, list[int]] = {}
        for j, life in enumerate(lives):
            by_task.setdefault(id(self.task_of(life.seed)), []).append(j)
        for group in by_task.values():
            task = self.task_of(lives[group[0]].seed)
            together = [thetas[j] for j in group], [lives[j] for j in group]
            for j, step in zip(group, advance_together(task, self.policy, *together, chain)):
                self.count(step)
                steps[j] = step
        return [s for s in steps if s is not None]

    def metric(self, val_loss: Tensor, val_acc: Tensor) -> Tensor:
        """The meta-objective's term (lower is better)."""
        return val_loss if self.cfg.objective == "val_loss" else -val_acc

    def perturbation(self, theta: Theta, pair: int) -> Theta:
        """sigma * N(0, I) for `pair` at this update: a pure function of (seed, update,
        pair), so resume needs no generator state and PES and ES draw the same noise."""
        generator = torch.Generator().manual_seed(
            (self.cfg.seed << 32) + (self.updates << 12) + pair
        )
        return {
            name: (self.sigma(name) * torch.randn(p.shape, generator=generator)).to(p.device)
            for name, p in theta.items()
        }

    def sigma(self, name: str) -> float | Tensor:
        """The perturbation scale of parameter `name` (per element where `sigma_of` has it)."""
        return self.cfg.sigma_of.get(name, self.cfg.sigma)


def antithetic(
    theta: Theta,
    losses: Sequence[Tensor],
    directions: Sequence[Theta],
    sigma: Callable[[str], float | Tensor],
    n: int,
) -> tuple[Theta, dict[str, float]]:
    """ES and PES's one combine: `sum_j (L+_j - L-_j) d_j / (2 sigma^2) / n` over this
    process's pairs (losses in +, - order; `n` the whole population, so processes' sums
    add up; `sigma` per parameter, per element where it is a tensor: each coordinate's
    own Gaussian), and the mean |L+ - L-| to log."""
    total = {name: torch.zeros_like(p) for name, p in theta.items()}
    scale = {name: _on(sigma(name), p.device) for name, p in theta.items()}
    differences = []
    for j, direction in enumerate(directions):
        difference = losses[2 * j] - losses[2 * j + 1]
        for name, value in direction.items():
            total[name] += difference / (2 * scale[name] ** 2) * value
        differences.append(abs(difference.item()))
    spread = sum(differences) / n
    return {k: v / n for k, v in total.items()}, {"mean_abs_difference": spread}


def shifted(theta: Theta, eps: Theta, sign: float) -> Theta:
    return {name: p + sign * eps[name] for name, p in theta.items()}


def lifetime_to_dict(life: Lifetime) -> dict[str, Any]:
    return {
        "seed": life.seed,
        "t": life.t,
        "student": state_to_dict(life.student),
        "teacher": life.teacher,
        "obs": {"student": life.obs.student, "grad": life.obs.grad, "progress": life.obs.progress},
    }


def lifetime_from_dict(data: dict[str, Any]) -> Lifetime:
    student = state_from_dict(data["student"])
    saved = data["obs"]
    obs = Observation(saved["student"], saved["grad"], float(saved.get("progress", 0.0)))
    return Lifetime(int(data["seed"]), int(data["t"]), student, dict(data["teacher"]), obs)


def _on(value: float | Tensor, device: torch.device) -> float | Tensor:
    return value.to(device) if isinstance(value, Tensor) else value
