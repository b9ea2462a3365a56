"""One Markdown table from several `l2t compare` runs of the same setting and seeds: the
baselines once, then each teacher's rows, every row against the best baseline (paired
difference, 95% interval, t). Usage:

    python scripts/estimator_table.py [--against METHOD] NAME=COMPARE_DIR [NAME=COMPARE_DIR ...]

`--against base_dln` compares with the teacher's own fixed base loss instead. Every run
must hold the same cross-entropy students (one setting); a baseline that differs between
runs (a base loss of another `loss.init`) gets a row per run, named after it.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from l2t.commands.compare import BASELINES, format_paired, paired_stats, win_rule


def main(args: list[str]) -> None:
    against = None
    if args[:1] == ["--against"]:
        against, args = args[1], args[2:]
    runs = [arg.split("=", 1) for arg in args]
    baselines: dict[str, list[float]] = {}
    teachers: dict[str, list[float]] = {}
    for name, directory in runs:
        results = json.loads((Path(directory) / "results.json").read_text())
        for method, data in results.items():
            accs = data["test_acc"]
            if method in BASELINES:
                if method == "ce" and baselines.get("ce", accs) != accs:
                    raise SystemExit(f"{directory}: cross-entropy differs: not one setting")
                if baselines.get(method, accs) != accs:  # e.g. another base loss (loss.init)
                    method = f"{method} ({name})"
                baselines[method] = accs
            else:
                teachers[f"{name}, {method.removeprefix('teacher_')}"] = accs
    best = against or max(baselines, key=lambda m: statistics.fmean(baselines[m]))
    print(f"Paired against {best}; {win_rule(len(baselines[best]))}.\n")
    print(f"| method | test acc % | Δ vs {best} (pt) | 95% interval | paired t | p | wins |")
    print("|---|---|---|---|---|---|---|")
    for name, accs in {**baselines, **teachers}.items():
        mean, std = statistics.fmean(accs) * 100, statistics.stdev(accs) * 100
        if name == best:
            label = "reference" if against else "best baseline"
            print(f"| **{name}** | {mean:.2f} ± {std:.2f} | ({label}) | | | | |")
            continue
        paired = paired_stats(accs, baselines[best])
        interval, t_text, p_text = format_paired(paired)
        wins = sum(a > b for a, b in zip(accs, baselines[best]))
        print(
            f"| {name} | {mean:.2f} ± {std:.2f} | {paired.mean * 100:+.2f} | {interval} | "
            f"{t_text} | {p_text} | {wins}/{len(accs)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
