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
from l2t.losses.families import FAMILIES


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
        (LossNetConfig, "family", set(FAMILIES)),
        (Config, "student", set(STUDENTS)),
    ],
)
def test_a_config_choice_list_is_its_registry(cls, key, registry):
    assert _choices(cls, key) == registry


def test_every_compare_method_is_named_once_and_every_fixed_loss_is_a_method():
    assert len(METHODS) == len(set(METHODS))
    missing = {loss for loss in FIXED_LOSSES if loss not in ("kd", "base")} - set(METHODS)
    assert not missing, f"fixed losses that compare cannot run: {sorted(missing)}"


def test_a_new_compare_row_is_one_class_and_trains_beside_the_others(tiny_cfg, tmp_path):
    from l2t.commands.compare import compare, default_methods_for, parse_methods
    from l2t.commands.compare.method import Method
    from l2t.commands.compare.tuned import fixed_run

    class HalfRate(Method):  # cross-entropy at half the run's rate, run by default
        names = ("ce_half_rate",)

        @classmethod
        def by_default(cls, name, cfg, have_teacher):
            return True

        def student(self, chosen):
            run = fixed_run(self.setting, "ce", self.setting.cfg.optim.lr / 2, cosine=False)
            return lambda seed: run(seed, self.setting.test)

    try:
        assert "ce_half_rate" in default_methods_for(tiny_cfg, have_teacher=False)
        methods = parse_methods("ce,ce_half_rate", tiny_cfg, have_teacher=False)
        results = compare(tiny_cfg, methods, seeds=2, out=tmp_path)
        assert "| ce_half_rate |" in (tmp_path / "results.md").read_text()
        assert results["ce_half_rate"].test_accs != results["ce"].test_accs
        with pytest.raises(TypeError, match="registered twice"):
            type("Again", (Method,), {"names": ("ce_half_rate",)})
    finally:
        Method.registry.pop("ce_half_rate")


def test_a_row_the_config_cannot_train_is_refused_in_one_line(tiny_cfg):
    from l2t.commands.compare import parse_methods
    from l2t.config import ConfigError

    with pytest.raises(ConfigError, match="l2rw_base works on the composite base point"):
        parse_methods("ce,l2rw_base", tiny_cfg, have_teacher=False)
    with pytest.raises(ConfigError, match="teacher_online need teacher=RUN_DIR"):
        parse_methods("teacher_online", tiny_cfg, have_teacher=False)


def test_every_teacher_the_config_offers_builds_itself_from_its_settings():
    agents = _choices(TeacherConfig, "agent")
    built = Teacher.from_settings.__func__  # type: ignore[attr-defined]
    assert all(Teacher.registry[a].from_settings.__func__ is not built for a in agents)


def test_every_row_a_reproduce_script_names_is_registered():
    """The `methods=` lists of scripts/reproduce_*.sh name rows `compare` has (a renamed row
    would otherwise fail only hours into a reproduction)."""
    import re
    from pathlib import Path

    scripts = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("reproduce_*.sh"))
    named = {
        name
        for script in scripts
        for listed in re.findall(r"methods=([\w,${}/:]+)", script.read_text())
        for name in listed.split(",")
        if name and "$" not in name and "}" not in name
    }
    assert "meta_correct" in named and "aum_knn_drop" in named
    assert not named - set(METHODS), sorted(named - set(METHODS))
