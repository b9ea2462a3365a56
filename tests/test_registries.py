"""The config's choice lists name exactly what the registries hold (issue 32: they were copied
by hand and drifted). A new teacher, estimator, fixed loss, composite point, student or compare
method registered in its file and not offered by the config (or the reverse) fails here."""

import dataclasses

import pytest

from agents import Teacher
from agents.fixed_loss import FIXED_LOSSES
from l2t.commands.compare import METHODS
from l2t.config import Config, EstimatorConfig, LossNetConfig, TeacherConfig
from l2t.engine.students import STUDENTS
from l2t.estimators import ESTIMATORS
from l2t.losses.composite import POINTS
from l2t.losses.dln import PAIR_LOSSES


def _choices(cls: type, name: str) -> set[str]:
    return set({f.name: f for f in dataclasses.fields(cls)}[name].metadata["choices"])


@pytest.mark.parametrize(
    ("cls", "key", "registry"),
    [
        (TeacherConfig, "agent", set(Teacher.registry) - {"schedule"}),
        (EstimatorConfig, "kind", set(ESTIMATORS)),
        (TeacherConfig, "fixed_loss", set(FIXED_LOSSES) - {"base"}),
        (LossNetConfig, "base", {"auto", *POINTS}),
        (LossNetConfig, "init", {*PAIR_LOSSES, "random"}),
        (Config, "student", set(STUDENTS)),
    ],
)
def test_a_config_choice_list_is_its_registry(cls, key, registry):
    assert _choices(cls, key) == registry


def test_every_compare_method_is_named_once_and_every_fixed_loss_is_a_method():
    assert len(METHODS) == len(set(METHODS))
    missing = {loss for loss in FIXED_LOSSES if loss not in ("kd", "base")} - set(METHODS)
    assert not missing, f"fixed losses that compare cannot run: {sorted(missing)}"
