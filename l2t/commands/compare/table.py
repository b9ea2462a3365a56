"""The tables `l2t compare` writes: each method's test accuracy as mean ± std over seeds,
and the paired difference against cross-entropy, the dln base loss and the best baseline,
with its 95% interval and t (RESULTS.md's rule for a win)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import NamedTuple

from scipy.stats import t as student_t
from scipy.stats import ttest_rel

from l2t.commands.compare.method import Method
from l2t.config import Config
from l2t.engine.teaching import EpisodeResult

WIN_T = 2.5  # the project's bar for a claimed win (RESULTS.md), raised where df need it


@dataclass
class MethodResult:
    name: str
    results: list[EpisodeResult] = field(default_factory=list)

    @property
    def test_accs(self) -> list[float]:
        return [r.test_acc for r in self.results if r.test_acc is not None]


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _paired(accs: list[float], reference: list[float] | None) -> tuple[str, str]:
    if reference is None:
        return "", ""
    diffs = [a - b for a, b in zip(accs, reference)]
    return f"{statistics.fmean(diffs) * 100:+.2f} pt", f"{sum(d > 0 for d in diffs)}/{len(diffs)}"


class Paired(NamedTuple):
    mean: float  # the mean paired difference
    half: float  # the half-width of its 95% interval
    t: float  # the paired t statistic
    p: float  # its two-sided p-value


def paired_stats(accs: list[float], reference: list[float]) -> Paired:
    """The paired t-test of `accs` against `reference` (`scipy.stats.ttest_rel`): the mean
    difference, its 95% interval's half-width, t and the two-sided p. With fewer than two
    seeds, or differences without spread (equal up to float noise), the interval, t and p
    are undefined: NaN, printed "n/a"."""
    diffs = [a - b for a, b in zip(accs, reference)]
    mean = statistics.fmean(diffs)
    spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    if spread <= 1e-9:  # accuracies differ by multiples of 1/N; below that is float noise
        return Paired(mean, math.nan, math.nan, math.nan)
    test = ttest_rel(accs, reference)
    low, _ = test.confidence_interval(0.95)
    return Paired(mean, mean - float(low), float(test.statistic), float(test.pvalue))


def critical_t(seeds: int) -> float:
    """The two-sided 95% critical value of Student's t for `seeds` paired differences."""
    return float(student_t.ppf(0.975, seeds - 1))


def win_rule(seeds: int) -> str:
    """The table's rule for a win, following the degrees of freedom, and a warning when
    too few seeds make every claim weak."""
    if seeds < 2:
        return "one seed: no interval, no claim"
    bar = max(WIN_T, critical_t(seeds))
    rule = (
        f"a win needs t >= {bar:.2f} (95% interval above 0 with {seeds - 1} df, and t >= {WIN_T})"
    )
    return rule + ("; fewer than 5 seeds: every claim here is weak" if seeds < 5 else "")


def format_paired(paired: Paired) -> tuple[str, str, str]:
    """The interval, t and p as the tables print them (pt), "n/a" where undefined."""
    mean, half, t, p = paired
    if math.isnan(t):
        return "n/a", "n/a (identical)" if abs(mean) < 1e-9 else "n/a (no spread)", "n/a"
    interval = f"[{(mean - half) * 100:+.2f}, {(mean + half) * 100:+.2f}]"
    return interval, f"{t:+.2f}", f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def best_baseline(results: dict[str, MethodResult]) -> str | None:
    """The baseline (no teacher) with the highest mean test accuracy: what to beat."""
    baselines = [m for m in results if Method.registry[m].baseline and results[m].test_accs]
    return max(baselines, key=lambda m: statistics.fmean(results[m].test_accs), default=None)


def results_table(results: dict[str, MethodResult], cfg: Config) -> str:
    """Markdown: mean ± std per method, and paired differences against cross-entropy and
    against the fixed base loss (the baseline a learned teacher must beat)."""
    ce = results["ce"].test_accs if "ce" in results else None
    base = results["base_dln"].test_accs if "base_dln" in results else None
    n_seeds = len(next(iter(results.values())).results)
    lines = [
        f"dataset={cfg.dataset} student={cfg.student} steps={cfg.steps} "
        f"lr={cfg.optim.lr} batch={cfg.optim.batch_size} seeds={n_seeds}"
        + (f" label_noise={cfg.label_noise} ({cfg.label_noise_kind})" if cfg.label_noise else ""),
        "",
        "| method | test acc % (mean ± std) | min | max | Δ vs CE (paired) | beats CE "
        "| Δ vs base loss (paired) | beats base loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        accs = r.test_accs
        mean, std = _stats(accs)
        vs_ce = _paired(accs, ce if name != "ce" else None)
        vs_base = _paired(accs, base if name != "base_dln" else None)
        lines.append(
            f"| {name} | {mean * 100:.2f} ± {std * 100:.2f} | {min(accs) * 100:.2f} | "
            f"{max(accs) * 100:.2f} | {vs_ce[0]} | {vs_ce[1]} | {vs_base[0]} | {vs_base[1]} |"
        )
    if any(m.endswith("_trainval") or m == "ce_val" for m in results):
        lines += [
            "",
            "Data: rows ending `_trainval` trained on train + the trusted val split "
            f"(val_size={cfg.val_size}), `ce_val` on the val split alone, every other row on "
            "train only; a student trained on val is not judged on it (test only).",
        ]
    oracles = [m for m in results if Method.registry[m].reads_hidden_labels]
    if oracles:
        lines += [
            "",
            f"Oracle rows ({', '.join(f'`{m}`' for m in oracles)}) read the unlabeled pool's "
            "hidden true labels, which no user has: they measure the headroom and are never "
            "the best baseline.",
        ]
    best = best_baseline(results)
    if best is not None and len(results) > 1:
        reference = results[best].test_accs
        # with `oracle_drop`: the share of its headroom over the best baseline a row takes
        headroom = None
        if "oracle_drop" in results:
            gap = paired_stats(results["oracle_drop"].test_accs, reference)[0]
            headroom = gap if gap > 0 else None  # no headroom: no share
        share = " share of oracle_drop's headroom |" if headroom else ""
        lines += [
            "",
            f"Against the best baseline, `{best}` (paired over seeds; {win_rule(len(reference))}):",
            "",
            "| method | Δ test acc (pt) | 95% interval | paired t | p | wins |" + share,
            "|---|---|---|---|---|---|" + ("---|" if headroom else ""),
        ]
        for name, r in results.items():
            if name == best:
                continue
            paired = paired_stats(r.test_accs, reference)
            interval, t_text, p_text = format_paired(paired)
            wins = sum(a > b for a, b in zip(r.test_accs, reference))
            taken = f" {paired.mean / headroom:+.0%} |" if headroom else ""
            lines.append(
                f"| {name} | {paired.mean * 100:+.2f} | {interval} | {t_text} | {p_text} "
                f"| {wins}/{len(reference)} |" + taken
            )
    return "\n".join(lines) + "\n"


def results_csv(results: dict[str, MethodResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "seed_index", "test_acc", "val_acc"])
    for name, r in results.items():
        for i, x in enumerate(r.results):
            writer.writerow([name, i, x.test_acc, x.val_acc])
    return buffer.getvalue()
