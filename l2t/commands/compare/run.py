"""`l2t compare`: methods x seeds on the same data, initializations, batches and budget.

Every student of seed s starts from the same weights and sees the same batches whatever the
method, so differences are paired (docs/design.md §5). Each method chooses its settings on
validation once, in this process; its students then train here or in `workers` processes.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Any

import torch
import yaml

from agents import Teacher
from l2t.commands.applying import base_loss_of, make_task, run_dir_of, teacher_file
from l2t.commands.compare.method import Chosen, Method, Setting, Student, check_methods
from l2t.commands.compare.table import (
    MethodResult,
    best_baseline,
    paired_stats,
    results_csv,
    results_table,
)
from l2t.config import Config, ConfigError, parts, varied
from l2t.data.datasets import record_noise
from l2t.engine.schedule import Schedule
from l2t.engine.seeds import student_seed
from l2t.engine.teaching import EpisodeResult
from l2t.io import progress, threads
from l2t.io.checkpoint import atomic_write_json, atomic_write_text
from l2t.io.device import resolve_device
from l2t.io.plots import plot_curves, plot_differences, plot_schedule
from l2t.methods.base_point import choose_base, composite_auto


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
    check_methods(methods, cfg, run_dir is not None)
    threads.configure(cfg.threads)
    progress.enable(cfg.progress)
    ranked: list[dict[str, Any]] = []
    if composite_auto(cfg):  # chosen once, on val
        cfg, ranked = choose_base(cfg, parts.splits(cfg, resolve_device(cfg.device, cfg.tf32)))
    setting = _setting(cfg, run_dir)
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    if ranked:
        atomic_write_json(ranked, out / "base_point.json")
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    record_noise(setting.task.splits, out)
    results = {m: MethodResult(m) for m in methods}
    rows = [Method.registry[m](m, setting) for m in methods]
    lifetimes = sum(seeds * row.lifetimes + row.tuning_students() for row in rows)
    with progress.phase("compare", lifetimes * cfg.steps):
        try:  # the teacher does not fit this student / data
            chosen = {row.name: row.choose() for row in rows}
            students = {row.name: row.student(chosen[row.name]) for row in rows}
            jobs = [
                (m, student_seed(cfg.seed, "evaluation", s)) for s in range(seeds) for m in methods
            ]
            for (m, _), result in zip(
                jobs, _run_jobs(students, jobs, workers, cfg, run_dir, chosen)
            ):
                results[m].results.append(result)  # seed 0 is the run's final student
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    table = results_table(results, cfg)
    atomic_write_text(table, out / "results.md")
    atomic_write_text(results_csv(results), out / "results.csv")
    atomic_write_json(
        {
            m: {
                "test_acc": r.test_accs,
                "curves": [x.curve for x in r.results],
                **({"chosen": chosen[m]} if chosen[m] else {}),
            }
            for m, r in results.items()
        },
        out / "results.json",
    )
    plot_curves(
        {m: [x.curve for x in r.results] for m, r in results.items()}, out / "plots" / "curves.png"
    )
    best = best_baseline(results)
    if best is not None and len(results) > 1:
        reference = results[best].test_accs
        paired = [(m, *paired_stats(r.test_accs, reference)[:2]) for m, r in results.items()]
        differences = [row for row in paired if row[0] != best]
        plot_differences(differences, best, len(reference), out / "plots" / "differences.png")
    if run_dir and (run_dir_of(run_dir) / "schedule.pt").is_file():
        schedule = Schedule.load(run_dir_of(run_dir) / "schedule.pt")
        plot_schedule(schedule, setting.base, cfg.loss.family, out / "plots", cfg.label_noise)
    print(table)
    print(f"results: {out / 'results.md'} (and results.csv, results.json, plots/)")
    return results


_STUDENTS: dict[str, Student] = {}  # a worker's methods, built once


def _start_worker(
    threads_each: int, cfg: Config, run_dir: str | None, chosen: dict[str, Chosen]
) -> None:
    """A worker builds the methods as the parent did, at the settings the parent chose."""
    cfg = varied(cfg, {"threads": threads_each})  # its share, kept by every env it makes
    threads.configure(threads_each)
    progress.enable(False)
    setting = _setting(cfg, run_dir)
    for m, settings in chosen.items():
        _STUDENTS[m] = Method.registry[m](m, setting).student(settings)


def _run_job(job: tuple[str, int]) -> tuple[EpisodeResult, int]:
    """A student, and the compute threads of the worker that trained it."""
    return _STUDENTS[job[0]](job[1]), torch.get_num_threads()


def _run_jobs(
    students: dict[str, Student],
    jobs: list[tuple[str, int]],
    workers: int,
    cfg: Config,
    run_dir: str | None,
    chosen: dict[str, Chosen],
) -> list[EpisodeResult]:
    """Each (method, seed)'s student, in order; with `workers` > 1 in that many new
    processes, each with its share of the cores (docs/design.md §7; new, not forked: a
    fork of a process whose OpenMP threads ran can hang). A student is a function of its
    seed: the results are the serial ones, up to the reduction order of the thread count."""
    if workers == 1:
        return [students[m](seed) for m, seed in jobs]
    each = cfg.threads or max(1, threads.cores() // workers)
    used_threads: set[int] = set()
    results = []
    with concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(each, cfg, run_dir, chosen),
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
    device = resolve_device(cfg.device, cfg.tf32)
    if run_dir:  # an LSTM teacher carries its own base loss
        base = base_loss_of(Teacher.load(teacher_file(run_dir), device), cfg, device)
    else:
        base = base_loss_of(None, cfg, device)
    task = make_task(cfg)
    trainval = make_task(cfg, task.splits.train_and_val())
    return Setting(cfg, task, trainval, base, run_dir)
