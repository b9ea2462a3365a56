"""`meta_correct`: each pool sample's loss moved towards a corrected label by a net learned
online on the trusted batch, MLC's manner (`l2t/methods/correction.py`); its learning rate
chosen on validation, as `meta_trust`'s."""

from __future__ import annotations

from l2t.commands.compare.trust import Trust
from l2t.engine.task import Task
from l2t.methods.correction import Corrected
from l2t.methods.reweighting import BasePoint, Reweighted


class Correct(Trust):
    names = ("meta_correct",)

    def policy(self, task: Task, seed: int, base: BasePoint) -> Reweighted:
        return Corrected(task, seed, base)
