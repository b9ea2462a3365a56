"""`meta_trust`: the base point's per-sample loss weighted by a net over what a teacher sees
of each sample, learned online on the trusted batch (`l2t/methods/trust.py`); with an
unlabeled pool and a model (its features are the model's confidence and margin)."""

from __future__ import annotations

from l2t.commands.compare.method import Chosen, Student, on_base_point
from l2t.commands.compare.pool import PoolMethod
from l2t.config import Config, ConfigError
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.losses.composite import parse_ranges
from l2t.methods.reweighting import BasePoint
from l2t.methods.trust import TrustWeighted


class Trust(PoolMethod):
    names = ("meta_trust", "meta_trust_trainval")
    baseline = False  # the weights learn from the trusted split while the student trains

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        super().check(name, cfg)
        if not on_base_point(cfg):
            raise ConfigError(f"{name} works on the composite base point: loss.family=composite")

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        assert s.task.composite is not None
        base = BasePoint(s.task.composite, s.base, parse_ranges(s.cfg.loss.ranges))
        task = s.task_for(self.name)

        def student(seed: int) -> EpisodeResult:  # the net's state lives in the policy
            return run_student(
                task, TrustWeighted(task, seed, base), {}, seed, s.cfg.eval_every, s.test
            )

        return student
