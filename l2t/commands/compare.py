"""`l2t compare`: methods x seeds on the same data, initializations, batches and budget.

Every student of seed s starts from the same weights and sees the same batches whatever the
method, so differences are paired: the table reports each method's test accuracy as mean ±
std over seeds, and against cross-entropy the mean paired difference and the seeds it wins.
"""

from __future__ import annotations

import concurrent.futures
import copy
import csv
import io
import math
import multiprocessing
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import yaml

from agents import FixedLossTeacher, ReinforceTeacher, Teacher
from l2t.commands.applying import (
    base_loss_of,
    load_teacher,
    make_task,
    run_dir_of,
    teach_student,
    teacher_file,
)
from l2t.commands.training import make_teacher
from l2t.config import Config, ConfigError
from l2t.data.datasets import load_splits, record_noise
from l2t.data.distill import DISTILL_METHODS, KD_TEMPERATURES, KD_WEIGHTS
from l2t.engine.schedule import Schedule
from l2t.engine.seeds import student_seed
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.estimators.online import OnlineTeacher, teach_while_learning
from l2t.io import progress, threads
from l2t.io.checkpoint import atomic_write_json, atomic_write_text
from l2t.io.device import resolve_device
from l2t.io.plots import plot_curves, plot_schedule
from l2t.losses.composite import parse_ranges
from l2t.methods import reweighting
from l2t.methods.base_point import LR_GRID, TUNING_STUDENTS, choose_base, tuning_seeds
from l2t.methods.model_training import kd_baseline

FIXED_METHODS = ("ce", "ce_trainval", "label_smoothing", "focal", "base_dln")
ROBUST_METHODS = ("gce", "sce", "bootstrap", "ce_early_stop")  # for noisy labels
TUNED_METHODS = ("ce_tuned", "base_dln_tuned", "ce_cosine", "base_dln_cosine")
TRAINVAL_METHODS = (  # on train + val (a user with a trusted set trains on it), or on it alone
    *(f"{m}_trainval" for m in ("label_smoothing", "focal", "gce", "sce", "bootstrap", "base")),
    "ce_val",
)
_REWEIGHT = ("mwnet", "l2rw", "mwnet_base", "l2rw_base", "meta_base")
REWEIGHT_METHODS = (  # online meta-learning on the trusted set, on CE or on the base point;
    *_REWEIGHT,  # `_trainval`: the student also trains on the trusted split it looks ahead on
    *(f"{m}_trainval" for m in _REWEIGHT),
)
TEACHER_METHODS = (
    *("teacher_online", "teacher_learning", "teacher_schedule", "teacher_untrained"),
    "teacher_schedule_trainval",  # the replayed schedule needs no val split: train + val
)
BASE_METHODS = ("base",)  # the family at the run's base point (composite: chosen on val)
METHODS = (
    (FIXED_METHODS + BASE_METHODS + ROBUST_METHODS + TRAINVAL_METHODS + DISTILL_METHODS)
    + TUNED_METHODS
    + REWEIGHT_METHODS
    + TEACHER_METHODS
)
WIN_T = 2.5  # the project's bar for a claimed win (RESULTS.md), raised where df need it
BASELINES = (
    FIXED_METHODS + BASE_METHODS + ROBUST_METHODS + TRAINVAL_METHODS + DISTILL_METHODS
) + TUNED_METHODS


@dataclass
class MethodResult:
    name: str
    results: list[EpisodeResult] = field(default_factory=list)

    @property
    def test_accs(self) -> list[float]:
        return [r.test_acc for r in self.results if r.test_acc is not None]


def default_methods_for(cfg: Config, have_teacher: bool) -> tuple[str, ...]:
    """What `compare` runs without `methods=`: the fixed baselines, the robust ones under
    label noise, the distillation ones with a model, and (with a teacher) the tuned
    baselines and the teacher."""
    composite = cfg.loss.family == "composite"
    fixed = tuple(m for m in FIXED_METHODS if m != "base_dln") if composite else FIXED_METHODS
    methods = fixed + (BASE_METHODS if composite else ())
    methods += ROBUST_METHODS if cfg.label_noise else ()
    methods += DISTILL_METHODS if cfg.distill.model else ()
    teachers = tuple(
        m
        for m in TEACHER_METHODS
        if (composite or m != "teacher_untrained") and not m.endswith("_trainval")
    )
    tuned = tuple(m for m in TUNED_METHODS if not (composite and m.startswith("base_dln")))
    return methods + (tuned + teachers if have_teacher else ())


def parse_methods(text: str, have_teacher: bool) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown method(s) {unknown or text!r}; allowed: {', '.join(METHODS)}")
    needs_teacher = [m for m in methods if m in TEACHER_METHODS]
    if needs_teacher and not have_teacher:
        raise ConfigError(f"methods {', '.join(needs_teacher)} need teacher=RUN_DIR")
    return methods


@dataclass
class Setting:
    """What every method of a compare shares: the run's config, the task of the compared
    students, the same students on train + val, the base loss and the teacher's run."""

    cfg: Config
    task: Task
    trainval: Task
    base: list[torch.Tensor]
    run_dir: str | None = None

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.task.splits.x_test, self.task.splits.y_test


def _method_runner(
    name: str,
    setting: Setting,
    tuned_lr: dict[str, float],
    chosen: dict[str, dict[str, float]],
) -> Callable[[int], EpisodeResult]:
    """A function seed -> the method's finished student; a tuned method's setting, chosen
    on validation, goes into `chosen`. Every method trains on the lifetime path
    (l2t/engine/teaching.py), the teacher's as the baselines'."""
    cfg, test, device = setting.cfg, setting.test, setting.task.device
    if name == "teacher_learning":  # a fresh copy per student keeps learning on it (val only)
        assert setting.run_dir is not None
        run_dir = setting.run_dir

        def learning(seed: int) -> EpisodeResult:
            teacher = load_teacher(run_dir, "online", cfg, device)
            if isinstance(teacher, ReinforceTeacher | FixedLossTeacher):
                raise ValueError(f"teacher_learning needs an lstm or mlp teacher: {teacher.kind}")
            learner = cast(OnlineTeacher, teacher)  # lstm and mlp teachers carry an Adam
            return teach_while_learning(setting.task, learner, seed, cfg.eval_every, test)

        return learning
    if name == "teacher_untrained":  # the run's teacher before any update: its base point
        fresh = make_teacher(cfg, setting.base)
        return lambda seed: run_student(
            setting.task, fresh, fresh.theta(), seed, cfg.eval_every, test
        )
    if name in REWEIGHT_METHODS:
        method, _, data = name.partition("_")
        base = None
        if data.startswith("base"):
            if setting.task.composite is None:
                raise ValueError(f"{name} works on the composite base point: loss.family=composite")
            ranges = parse_ranges(cfg.loss.ranges)
            base = reweighting.BasePoint(setting.task.composite, setting.base, ranges)
        task = setting.trainval if name.endswith("_trainval") else setting.task
        return lambda seed: reweighting.reweighted_student(
            task, method, seed, cfg.eval_every, test, base
        )
    if name in TEACHER_METHODS:
        assert setting.run_dir is not None
        mode = "online" if name == "teacher_online" else "schedule"
        teacher = load_teacher(setting.run_dir, mode, cfg, device)
        task = setting.trainval if name.endswith("_trainval") else setting.task
        return lambda seed: teach_student(
            cfg, task, teacher, setting.base, seed, cfg.eval_every, test
        )
    if name in DISTILL_METHODS:
        splits = setting.task.splits
        fixed, kd_task = kd_baseline(
            name, cfg, splits, setting.base, tuning_seeds(cfg), chosen.get(name)
        )
        chosen[name] = {"mix": kd_task.mix, "temperature": kd_task.temperature}
        return lambda seed: run_student(kd_task, fixed, {}, seed, cfg.eval_every, test)
    if name in TUNED_METHODS:
        loss = name.removesuffix("_tuned").removesuffix("_cosine")
        chosen[name] = {"lr": tuned_lr[name]}
        run = _fixed_run(setting, loss, tuned_lr[name], name.endswith("_cosine"))
        return lambda seed: run(seed, test)
    loss = {"ce_early_stop": "ce", "ce_val": "ce"}.get(name, name.removesuffix("_trainval"))
    fixed = FixedLossTeacher(loss, setting.base)
    task = setting.task
    if name.endswith("_trainval"):  # at the settings chosen on train-only students
        task = setting.trainval
    elif name == "ce_val":
        task = make_task(setting.cfg, setting.task.splits.val_only())
    if name == "ce_early_stop":
        return lambda seed: early_stopped(run_student(task, fixed, {}, seed, cfg.eval_every, test))
    return lambda seed: run_student(task, fixed, {}, seed, cfg.eval_every, test)


def early_stopped(result: EpisodeResult) -> EpisodeResult:
    """The student at the evaluation point of its best (clean) validation accuracy, the
    earliest of ties: early stopping, choosing only by the teacher's validation split."""
    best = max(result.curve, key=lambda point: point["val_acc"])
    return EpisodeResult(result.curve, best["val_acc"], best.get("test_acc"), result.diverged_steps)


def _fixed_run(setting: Setting, loss: str, lr: float, cosine: bool) -> Callable[..., Any]:
    """(seed, test) -> a student under the fixed `loss` at learning rate `lr`, constant or
    annealed to 0 along a cosine over the budget (set once per teacher step)."""
    changed = copy.deepcopy(setting.cfg)
    changed.optim.lr = lr
    task = Task.from_config(changed, setting.task.splits)
    task.cosine = cosine
    fixed = FixedLossTeacher(loss, setting.base)

    def run(seed: int, test: tuple[Any, Any] | None = None) -> EpisodeResult:
        return run_student(task, fixed, {}, seed, setting.cfg.eval_every, test)

    return run


def tune_lr(setting: Setting, name: str) -> float:
    """The learning rate from `LR_GRID` with the best mean final validation accuracy over
    `TUNING_STUDENTS` students of their own (none of the compared ones), under the method's
    own schedule (`*_cosine`: annealed, `*_tuned`: constant)."""
    seeds = tuning_seeds(setting.cfg)
    loss, cosine = name.removesuffix("_tuned").removesuffix("_cosine"), name.endswith("_cosine")

    def score(lr: float) -> float:
        run = _fixed_run(setting, loss, lr, cosine)
        return statistics.fmean(run(seed).val_acc for seed in seeds)

    best = max(LR_GRID, key=score)
    print(f"{name}: tuned learning rate {best} (best validation accuracy over {LR_GRID})")
    return best


def compare(
    cfg: Config,
    methods: list[str],
    seeds: int,
    out: str | Path,
    run_dir: str | None = None,
    workers: int = 1,
) -> dict[str, MethodResult]:
    """Train `seeds` students per method (in `workers` processes); write results.md,
    results.csv and plots to `out`."""

    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1; got {seeds}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1; got {workers}")
    dln_rows = {"base_dln", "base_dln_tuned", "base_dln_cosine"} & set(methods)
    if cfg.loss.family == "composite" and dln_rows:
        raise ConfigError(
            "base_dln is the dln family's starting loss; with loss.family=composite compare "
            "`base`, the composite's base point"
        )
    threads.configure(cfg.threads)
    progress.enable(cfg.progress)
    ranked: list[dict[str, Any]] = []
    if cfg.loss.family == "composite" and cfg.loss.base == "auto":  # chosen once, on val
        cfg, ranked = choose_base(cfg, load_splits(cfg, resolve_device(cfg.device)))
    setting = _setting(cfg, run_dir)
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    if ranked:
        atomic_write_json(ranked, out / "base_point.json")
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    record_noise(setting.task.splits, out)
    results = {m: MethodResult(m) for m in methods}
    tuned = [m for m in methods if m in TUNED_METHODS]
    with progress.phase("compare", _students(methods, seeds, len(tuned)) * cfg.steps):
        tuned_lr = {name: tune_lr(setting, name) for name in tuned}
        chosen: dict[str, dict[str, float]] = {}
        runners = {m: _method_runner(m, setting, tuned_lr, chosen) for m in methods}
        jobs = [(m, student_seed(cfg.seed, "evaluation", s)) for s in range(seeds) for m in methods]
        try:  # seed 0 is the run's final student
            setup = (run_dir, tuned_lr, chosen)
            for (m, _), result in zip(jobs, _run_jobs(runners, jobs, workers, cfg, setup)):
                results[m].results.append(result)
        except ValueError as exc:  # the teacher does not fit this student / data
            raise ConfigError(str(exc)) from None
    table = results_table(results, cfg)
    atomic_write_text(table, out / "results.md")
    atomic_write_text(results_csv(results), out / "results.csv")
    atomic_write_json(
        {
            m: {
                "test_acc": r.test_accs,
                "curves": [x.curve for x in r.results],
                **({"chosen": chosen[m]} if m in chosen else {}),
            }
            for m, r in results.items()
        },
        out / "results.json",
    )
    plot_curves(
        {m: [x.curve for x in r.results] for m, r in results.items()}, out / "plots" / "curves.png"
    )
    if run_dir and (run_dir_of(run_dir) / "schedule.pt").is_file():
        schedule = Schedule.load(run_dir_of(run_dir) / "schedule.pt")
        plot_schedule(schedule, setting.base, cfg.loss.family, out / "plots", cfg.label_noise)
    print(table)
    print(f"results: {out / 'results.md'} (and results.csv, results.json, plots/)")
    return results


_RUNNERS: dict[str, Callable[[int], EpisodeResult]] = {}  # a worker's methods, built once


def _start_worker(
    threads_each: int,
    cfg: Config,
    run_dir: str | None,
    methods: list[str],
    tuned_lr: dict[str, float],
    chosen: dict[str, dict[str, float]],
) -> None:
    """A worker builds the methods as the parent did, at the settings the parent chose."""
    cfg = copy.deepcopy(cfg)
    cfg.threads = threads_each  # its share, kept by every env it makes
    threads.configure(threads_each)
    progress.enable(False)
    setting = _setting(cfg, run_dir)
    for m in methods:
        _RUNNERS[m] = _method_runner(m, setting, tuned_lr, dict(chosen))


def _run_job(job: tuple[str, int]) -> tuple[EpisodeResult, int]:
    """A student, and the compute threads of the worker that trained it."""
    return _RUNNERS[job[0]](job[1]), torch.get_num_threads()


def _run_jobs(
    runners: dict[str, Callable[[int], EpisodeResult]],
    jobs: list[tuple[str, int]],
    workers: int,
    cfg: Config,
    setup: tuple[str | None, dict[str, float], dict[str, dict[str, float]]],
) -> list[EpisodeResult]:
    """Each (method, seed)'s student, in order; with `workers` > 1 in that many new
    processes, each with its share of the cores (docs/design.md §7; new, not forked: a
    fork of a process whose OpenMP threads ran can hang). A student is a function of its
    seed: the results are the serial ones, up to the reduction order of the thread count."""
    if workers == 1:
        return [runners[m](seed) for m, seed in jobs]
    each = cfg.threads or max(1, threads.cores() // workers)
    run_dir, tuned_lr, chosen = setup
    methods = list(runners)
    used_threads: set[int] = set()
    results = []
    with concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(each, cfg, run_dir, methods, tuned_lr, chosen),
    ) as pool:
        for result, used in pool.map(_run_job, jobs):
            used_threads.add(used)
            progress.tick(cfg.steps)
            results.append(result)
    counts = "/".join(map(str, sorted(used_threads)))  # as the workers reported them
    print(f"compare: {len(jobs)} students in {workers} worker processes, {counts} thread(s) each")
    return results


def _setting(cfg: Config, run_dir: str | None) -> Setting:
    """The compared students' task, the same on train + val, and the base loss."""
    device = resolve_device(cfg.device)
    if run_dir:  # an LSTM teacher carries its own base loss
        base = base_loss_of(Teacher.load(teacher_file(run_dir), device), cfg, device)
    else:
        base = base_loss_of(None, cfg, device)
    task = make_task(cfg)
    trainval = make_task(cfg, task.splits.train_and_val())
    return Setting(cfg, task, trainval, base, run_dir)


def _students(methods: list[str], seeds: int, tuned_methods: int) -> int:
    """Student lifetimes a compare trains: the compared ones, and those that choose the
    tuned learning rates, the KD settings and the self-distillation model."""
    kd_grid = len(KD_WEIGHTS) * len(KD_TEMPERATURES) * TUNING_STUDENTS
    distilling = [m for m in methods if m in DISTILL_METHODS]
    return (
        len(methods) * seeds
        + tuned_methods * len(LR_GRID) * TUNING_STUDENTS
        + len(distilling) * kd_grid
        + ("self_distill" in methods)
    )


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _paired(accs: list[float], reference: list[float] | None) -> tuple[str, str]:
    if reference is None:
        return "", ""
    diffs = [a - b for a, b in zip(accs, reference)]
    return f"{statistics.fmean(diffs) * 100:+.2f} pt", f"{sum(d > 0 for d in diffs)}/{len(diffs)}"


def paired_stats(accs: list[float], reference: list[float]) -> tuple[float, float, float]:
    """Mean paired difference, the half-width of its 95% interval (Student's t with n - 1
    degrees of freedom), and t. With fewer than two seeds, or differences without spread
    (equal up to float noise), the interval and t are undefined: NaN, printed "n/a"."""
    diffs = [a - b for a, b in zip(accs, reference)]
    mean = statistics.fmean(diffs)
    spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    if spread <= 1e-9:  # accuracies differ by multiples of 1/N; below that is float noise
        return mean, math.nan, math.nan
    sem = spread / math.sqrt(len(diffs))
    return mean, critical_t(len(diffs)) * sem, mean / sem


def critical_t(seeds: int) -> float:
    """The two-sided 95% critical value of Student's t for `seeds` paired differences."""
    from scipy.stats import t as student_t

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


def format_paired(mean: float, half: float, t: float) -> tuple[str, str]:
    """The interval and t as the tables print them (pt), "n/a" where undefined."""
    if math.isnan(t):
        return "n/a", "n/a (identical)" if abs(mean) < 1e-9 else "n/a (no spread)"
    return f"[{(mean - half) * 100:+.2f}, {(mean + half) * 100:+.2f}]", f"{t:+.2f}"


def best_baseline(results: dict[str, MethodResult]) -> str | None:
    """The baseline (no teacher) with the highest mean test accuracy: what to beat."""
    baselines = [m for m in results if m in BASELINES and results[m].test_accs]
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
    best = best_baseline(results)
    if best is not None and len(results) > 1:
        reference = results[best].test_accs
        lines += [
            "",
            f"Against the best baseline, `{best}` (paired over seeds; {win_rule(len(reference))}):",
            "",
            "| method | Δ test acc (pt) | 95% interval | paired t | wins |",
            "|---|---|---|---|---|",
        ]
        for name, r in results.items():
            if name == best:
                continue
            mean, half, t = paired_stats(r.test_accs, reference)
            interval, t_text = format_paired(mean, half, t)
            wins = sum(a > b for a, b in zip(r.test_accs, reference))
            lines.append(
                f"| {name} | {mean * 100:+.2f} | {interval} | {t_text} | {wins}/{len(reference)} |"
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
