"""Which teacher a run keeps (docs/design.md §5): "never below the base point" as a property
of selection, not a hope.

Every teacher, the untrained one first, teaches the same `select_students` held-out
students (same seeds, so the comparison is paired). A trained teacher replaces the
untrained one only when a one-sided paired t-test says it beats it: p < `select_level`.
One mean compared with another is not enough: a student's seed-to-seed spread (about 1 pt
on MNIST-1D) is larger than what PES moves, so the higher mean of five students kept
teachers that were worse than their start on students no table used (issue 32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import ttest_rel


@dataclass(frozen=True)
class Verdict:
    mean: float  # the candidate's mean final validation accuracy over the selection students
    difference: float  # its mean paired difference to the untrained teacher's students
    p: float  # one-sided paired p that it is better (nan: not tested)
    accepted: bool  # it may replace the untrained teacher

    def reason(self, level: float) -> str:
        """One line for the log: why the candidate is or is not kept."""
        if math.isnan(self.p):
            return f"mean {self.mean:.4f} (no paired test: one selection student)"
        verdict = "<" if self.accepted else ">="
        return (
            f"mean {self.mean:.4f}, {self.difference:+.4f} vs the untrained teacher, "
            f"one-sided paired p {self.p:.3g} {verdict} select_level {level:g}"
        )


def paired_p(candidate: Sequence[float], reference: Sequence[float]) -> float:
    """One-sided p of a paired t-test that `candidate` is better than `reference`. Equal
    differences have no spread, and the t-test no answer; there the sign test's p stands in
    (0.5^n when every student gained the same, 1 when none gained)."""
    differences = [a - b for a, b in zip(candidate, reference)]
    if len(differences) < 2:
        return math.nan
    if max(differences) - min(differences) <= 1e-12:
        return 0.5 ** len(differences) if differences[0] > 0 else 1.0
    return float(ttest_rel(candidate, reference, alternative="greater").pvalue)


def judge(candidate: Sequence[float], untrained: Sequence[float] | None, level: float) -> Verdict:
    """The verdict on a trained teacher's selection scores against the untrained teacher's
    (`untrained` None: a run from before paired selection, judged by its mean alone).
    `level` 1 accepts any candidate (the best mean then wins, as before)."""
    mean = sum(candidate) / len(candidate)
    if untrained is None:
        return Verdict(mean, math.nan, math.nan, True)
    difference = mean - sum(untrained) / len(untrained)
    p = paired_p(candidate, untrained)
    accepted = level >= 1 or (not math.isnan(p) and p < level)
    return Verdict(mean, difference, p, accepted)
