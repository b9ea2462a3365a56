"""Online reweighting on the trusted set as compare rows (`l2t/methods/reweighting.py`):
Meta-Weight-Net and L2RW on cross-entropy as published, both on the composite base point
(`*_base`), and the composite's own weight net moved by the lookahead (`meta_base`);
`*_trainval`: the student also trains on the trusted split it looks ahead on."""

from __future__ import annotations

from l2t.commands.compare.method import Chosen, Method, Student, on_base_point
from l2t.config import Config, ConfigError
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.losses.composite import parse_ranges
from l2t.methods import reweighting

ROWS = ("mwnet", "l2rw", "mwnet_base", "l2rw_base", "meta_base")


class Reweighted(Method):
    names = (*ROWS, *(f"{m}_trainval" for m in ROWS))
    baseline = False  # the weights learn from the trusted split while the student trains

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        if "_base" in name and not on_base_point(cfg):
            raise ConfigError(f"{name} works on the composite base point: loss.family=composite")

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        method, _, data = self.name.partition("_")
        base = None
        if data.startswith("base"):
            assert s.task.composite is not None
            ranges = parse_ranges(s.cfg.loss.ranges)
            base = reweighting.BasePoint(s.task.composite, s.base, ranges)
        task = s.task_for(self.name)

        def student(seed: int) -> EpisodeResult:  # the weights' state lives in the policy
            policy = reweighting.Reweighted(task, method, seed, base)
            return run_student(task, policy, {}, seed, s.cfg.eval_every, s.test)

        return student
