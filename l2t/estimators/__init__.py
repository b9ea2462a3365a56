"""Outer-gradient estimators, one file each (docs/design.md §3): `estimator.kind=`
greedy | tbptt | pes | es."""

from l2t.estimators.base import Diverged, Estimator, EstimatorSettings
from l2t.estimators.es import ES
from l2t.estimators.greedy import Greedy
from l2t.estimators.pes import PES
from l2t.estimators.tbptt import TruncatedBackprop

ESTIMATORS: dict[str, type[Estimator]] = {
    "greedy": Greedy,
    "tbptt": TruncatedBackprop,
    "pes": PES,
    "es": ES,
}

__all__ = [
    "ES",
    "ESTIMATORS",
    "PES",
    "Diverged",
    "Estimator",
    "EstimatorSettings",
    "Greedy",
    "TruncatedBackprop",
]
