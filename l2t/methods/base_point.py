"""The composite family's base point, chosen on validation (docs/design.md §6).

Every fixed loss of the family x the learning rates a user would try x a constant or
cosine schedule: each candidate trains `TUNING_STUDENTS` students of its own (none of the
compared ones) and is scored by their mean final validation accuracy; the best becomes the
run's `loss.base`, `optim.lr` and `optim.cosine`. The teacher starts there, so it starts
at the best fixed baseline the same tuning budget finds — the `base` row of `compare`.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from agents.fixed_loss import FixedLossTeacher
from l2t.config import Config, parts, varied
from l2t.data.splits import Splits
from l2t.engine.seeds import student_seed
from l2t.engine.teaching import run_student
from l2t.io import progress
from l2t.losses.families import FAMILIES, CompositeFamily

LR_GRID = (0.03, 0.05, 0.1, 0.2, 0.3)  # what a user would try for a tuned learning rate
TUNING_STUDENTS = 2
GRID_LOSSES = ("ce", "label_smoothing", "sce", "gce")  # and kd with a model to learn from


@dataclass
class Candidate:
    loss: str  # the fixed loss (a point of l2t.losses.composite)
    lr: float
    cosine: bool  # the learning rate annealed to 0 along a cosine
    val_acc: float = 0.0  # mean final validation accuracy of the tuning students

    @property
    def name(self) -> str:
        return f"{self.loss}, lr {self.lr}, {'cosine' if self.cosine else 'constant'}"


def tuning_seeds(run_seed: int) -> list[int]:
    """The students that choose a baseline's hyper-parameters: none of the compared ones."""
    return [student_seed(run_seed, "tuning", i) for i in range(TUNING_STUDENTS)]


def at(cfg: Config, candidate: Candidate) -> Config:
    """`cfg` with the composite family at `candidate`'s point, learning rate and schedule."""
    loss = {"family": CompositeFamily.name, "base": candidate.loss}
    return varied(cfg, {"loss": loss, "optim": {"lr": candidate.lr, "cosine": candidate.cosine}})


def score(cfg: Config, splits: Splits, candidate: Candidate) -> float:
    """The mean final validation accuracy of the tuning students at `candidate`."""
    changed = at(cfg, candidate)
    task = parts.task(changed, splits)
    fixed = FixedLossTeacher("base", [p.to(task.device) for p in parts.base_loss(changed)])
    seeds = tuning_seeds(cfg.seed)
    return statistics.fmean(run_student(task, fixed, {}, s, cfg.steps).val_acc for s in seeds)


def grid(cfg: Config) -> list[Candidate]:
    losses = GRID_LOSSES + (("kd",) if cfg.distill.model else ())
    return [Candidate(loss, lr, c) for loss in losses for lr in LR_GRID for c in (False, True)]


def composite_auto(cfg: Config) -> bool:
    """Whether `cfg` asks for the base point chosen here (`loss.base=auto`)."""
    return FAMILIES[cfg.loss.family].set_by_controls and cfg.loss.base == "auto"


def choose_base(cfg: Config, splits: Splits) -> tuple[Config, list[dict[str, Any]]]:
    """`cfg` at the best candidate of the grid (unchanged unless `loss.base=auto`), and
    every candidate's score, best first (what `base_point.json` records)."""
    if not composite_auto(cfg):
        return cfg, []
    candidates = grid(cfg)
    students = len(candidates) * TUNING_STUDENTS
    with progress.phase("choosing the base point", students * cfg.steps):
        for candidate in candidates:
            candidate.val_acc = score(cfg, splits, candidate)
    ranked = sorted(candidates, key=lambda c: -c.val_acc)  # stable: ties keep grid order
    best = ranked[0]
    print(
        f"base point: {best.name} (validation accuracy {best.val_acc:.4f}, best of "
        f"{len(candidates)} on {TUNING_STUDENTS} tuning students each)"
    )
    return at(cfg, best), [asdict(c) for c in ranked]
