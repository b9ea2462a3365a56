"""`l2t compare`: methods x seeds on the same data, initializations, batches and budget.

Every student of seed s starts from the same weights and sees the same batches whatever the
method, so differences are paired: the table reports each method's test accuracy as mean ±
std over seeds, and against cross-entropy the mean paired difference and the seeds it wins.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from l2t.checkpoint import atomic_write_json, atomic_write_text
from l2t.config import Config, ConfigError
from l2t.device import resolve_device
from l2t.teaching import EpisodeResult

FIXED_METHODS = ("ce", "ce_trainval", "label_smoothing", "focal", "base_dln")
TEACHER_METHODS = ("teacher_online", "teacher_learning", "teacher_schedule")
METHODS = FIXED_METHODS + TEACHER_METHODS
DEFAULT_METHODS = ",".join(METHODS)


@dataclass
class MethodResult:
    name: str
    results: list[EpisodeResult] = field(default_factory=list)

    @property
    def test_accs(self) -> list[float]:
        return [r.test_acc for r in self.results if r.test_acc is not None]


def parse_methods(text: str, have_teacher: bool) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown method(s) {unknown or text!r}; allowed: {', '.join(METHODS)}")
    needs_teacher = [m for m in methods if m in TEACHER_METHODS]
    if needs_teacher and not have_teacher:
        raise ConfigError(f"methods {', '.join(needs_teacher)} need teacher=RUN_DIR")
    return methods


def _method_runner(
    name: str, cfg: Config, run_dir: str | None, env: Any, trainval_env: Any
) -> Callable[[int], EpisodeResult]:
    """A function seed -> the method's finished student."""
    from agents import FixedLossTeacher
    from l2t.applying import load_teacher

    test = (env.splits.x_test, env.splits.y_test)
    if name == "teacher_learning":  # a fresh copy per student keeps learning on it (val only)
        assert run_dir is not None

        def learning(seed: int) -> EpisodeResult:
            teacher = load_teacher(run_dir, "online", env.device)
            return teacher.teach(env, seed, cfg.eval_every, test, learn=True)

        return learning
    if name in TEACHER_METHODS:
        assert run_dir is not None
        mode = "online" if name == "teacher_online" else "schedule"
        teacher = load_teacher(run_dir, mode, env.device)
        return lambda seed: teacher.teach(env, seed, cfg.eval_every, test)
    loss = {"ce_trainval": "ce"}.get(name, name)
    fixed = FixedLossTeacher(loss)
    target = trainval_env if name == "ce_trainval" else env
    return lambda seed: fixed.teach(target, seed, cfg.eval_every, test)


def compare(
    cfg: Config, methods: list[str], seeds: int, out: str | Path, run_dir: str | None = None
) -> dict[str, MethodResult]:
    """Train `seeds` students per method; write results.md, results.csv and plots to `out`."""
    from envs.student_training import base_loss_params
    from l2t.applying import base_phi_of, make_env
    from l2t.plots import plot_curves, plot_schedule
    from l2t.schedule import Schedule
    from l2t.training import EVAL_SEED_OFFSET, episode_seed

    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1; got {seeds}")
    device = resolve_device(cfg.device)
    base_phi = base_phi_of(run_dir, cfg, device) if run_dir else base_loss_params(cfg)
    env = make_env(cfg, base_phi)
    trainval_env = make_env(cfg, base_phi, env.splits.train_and_val())
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    results = {m: MethodResult(m) for m in methods}
    runners = {m: _method_runner(m, cfg, run_dir, env, trainval_env) for m in methods}
    with tqdm(total=len(methods) * seeds, desc="compare", disable=None) as bar:
        for s in range(seeds):
            seed = episode_seed(cfg.seed, EVAL_SEED_OFFSET + s)
            for m in methods:
                try:
                    results[m].results.append(runners[m](seed))
                except ValueError as exc:  # the teacher does not fit this student / data
                    raise ConfigError(str(exc)) from None
                bar.update(1)
    table = results_table(results, cfg)
    atomic_write_text(table, out / "results.md")
    atomic_write_text(results_csv(results), out / "results.csv")
    atomic_write_json(
        {
            m: {"test_acc": r.test_accs, "curves": [x.curve for x in r.results]}
            for m, r in results.items()
        },
        out / "results.json",
    )
    plot_curves(
        {m: [x.curve for x in r.results] for m, r in results.items()}, out / "plots" / "curves.png"
    )
    if run_dir and (Path(run_dir) / "schedule.pt").is_file():
        schedule = Schedule.load(Path(run_dir) / "schedule.pt")
        plot_schedule(schedule, base_phi, cfg.loss.family, out / "plots")
    print(table)
    return results


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _paired(accs: list[float], reference: list[float] | None) -> tuple[str, str]:
    if reference is None:
        return "", ""
    diffs = [a - b for a, b in zip(accs, reference)]
    return f"{statistics.fmean(diffs) * 100:+.2f} pt", f"{sum(d > 0 for d in diffs)}/{len(diffs)}"


def results_table(results: dict[str, MethodResult], cfg: Config) -> str:
    """Markdown: mean ± std per method, and paired differences against cross-entropy and
    against the fixed base loss (the baseline a learned teacher must beat)."""
    ce = results["ce"].test_accs if "ce" in results else None
    base = results["base_dln"].test_accs if "base_dln" in results else None
    n_seeds = len(next(iter(results.values())).results)
    lines = [
        f"dataset={cfg.dataset} student={cfg.student} steps={cfg.steps} "
        f"lr={cfg.optim.lr} batch={cfg.optim.batch_size} seeds={n_seeds}",
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
    return "\n".join(lines) + "\n"


def results_csv(results: dict[str, MethodResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "seed_index", "test_acc", "val_acc"])
    for name, r in results.items():
        for i, x in enumerate(r.results):
            writer.writerow([name, i, x.test_acc, x.val_acc])
    return buffer.getvalue()
