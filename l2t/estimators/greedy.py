"""The greedy hypergradient of L2T-DLN (the paper's): the validation loss one teacher step
(K student steps) ahead, differentiated through the unroll into `theta` — truncated
backprop with a window of one teacher step. Cheap, and biased towards the short horizon
(Wu et al. 2018): it rewards whatever lowers the loss K steps ahead, e.g. larger steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from l2t.engine.lifetime import Policy
from l2t.engine.task import Task
from l2t.estimators.base import EstimatorSettings
from l2t.estimators.tbptt import TruncatedBackprop


class Greedy(TruncatedBackprop):
    vmappable = True  # one teacher step per lifetime: the population can advance together

    def __init__(self, task: Task | Sequence[Task], policy: Policy, cfg: EstimatorSettings) -> None:
        super().__init__(task, policy, replace(cfg, horizon=1))
