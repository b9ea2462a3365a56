"""The teacher a run's `Config` names, built around its base loss, its estimator's
population, and the refusals of a config the teacher or estimator cannot run, each one
line, before anything loads — read from the facts each class carries (`agents/base.py`,
`l2t/estimators/base.py`; docs/design.md §3)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from agents import Teacher
from l2t.config import Config, ConfigError, EstimatorConfig
from l2t.estimators import ESTIMATORS


def teacher_kind(cfg: Config) -> type[Teacher]:
    """The teacher class `teacher.agent` names, or the one it defers to under the run's
    family (`Teacher.defers_to`: the default LSTM's place is the control teacher's under the
    composite family, so the default agent works with every family)."""
    kind = Teacher.registry[cfg.teacher.agent]
    other = kind.defers_to.get(cfg.loss.family)
    return Teacher.registry[other] if other else kind


def teacher(cfg: Config, base: list[Tensor], env: Any = None) -> Teacher:
    """The teacher `teacher.agent` names, around the base loss parameters `base` (the
    REINFORCE agent sized for the gymnasium environment `env` it acts in)."""
    try:
        return teacher_kind(cfg).from_settings(cfg.teacher, cfg.loss, base, env)
    except ValueError as exc:  # the agent does not fit the configured loss family
        raise ConfigError(str(exc)) from None


def check(cfg: Config) -> None:
    """Refuse, in one line, a run the configured teacher or estimator cannot do."""
    kind, agent = teacher_kind(cfg), cfg.teacher.agent
    family = cfg.loss.family
    if kind.families and family not in kind.families:
        setters = "|".join(k for k, c in kind.registry.items() if family in c.families)
        raise ConfigError(
            f"teacher.agent={agent} sets the {' or '.join(kind.families)} family, not "
            f"loss.family={family}; the {family} family is set by teacher.agent={setters}"
        )
    if cfg.select_students == 0 and kind.trained_by_estimator:
        raise ConfigError(
            "select_students=0 scores a teacher by its own learning episode, which a teacher "
            f"trained by an estimator (agent={agent}) does not have; use select_students>=1"
        )
    if cfg.students_mix and not kind.trained_by_estimator:
        raise ConfigError(
            "students_mix spreads a population of students over architectures; "
            f"teacher.agent={agent} learns from one student: use agent=lstm|mlp|control"
        )
    if cfg.teacher.mix_range > 0 and not (kind.can_set_mix and cfg.distill.model):
        raise ConfigError(
            "teacher.mix_range sets the mix of a model's soft labels: it needs distill.model "
            f"and teacher.agent=lstm; got distill.model='{cfg.distill.model}', "
            f"teacher.agent={agent}"
        )
    if cfg.estimator.sigma_controls and not kind.sigma_per_control:
        raise ConfigError(
            "estimator.sigma_controls sets the control teacher's perturbation per control: "
            "teacher.agent=control with estimator.kind=pes|es"
        )
    if kind.trained_by_estimator:
        ESTIMATORS[cfg.estimator.kind].check(cfg.estimator)


def population(e: EstimatorConfig) -> int:
    """The population the estimator runs: `estimator.population`, or its kind's default."""
    return e.population or ESTIMATORS[e.kind].default_population
