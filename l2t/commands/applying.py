"""Applying a saved teacher to new students (`l2t teach`, `l2t compare teacher=`): the frozen
teacher online, or its recorded loss schedule replayed by training progress — on the
lifetime path the teacher was trained on (l2t/engine/teaching.py). `teacher=` is a run directory
of `l2t train-teacher` or its `teacher.pt` alone (self-contained)."""

from __future__ import annotations

from operator import attrgetter
from pathlib import Path
from typing import Any

import torch
import yaml

from agents import (
    ControlTeacher,
    FixedLossTeacher,
    LSTMTeacher,
    ReinforceTeacher,
    ScheduleTeacher,
    Teacher,
)
from envs.student_training import StudentTrainingEnv
from l2t.config import Config, ConfigError, did_you_mean, from_dict, migrate, parts, read_yaml
from l2t.data.datasets import record_noise
from l2t.data.splits import Splits
from l2t.engine.schedule import Schedule
from l2t.engine.seeds import student_seed
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, OnStep, run_student
from l2t.io import progress, threads
from l2t.io.checkpoint import atomic_write_json, atomic_write_text, load_checkpoint, to_json
from l2t.io.device import resolve_device
from l2t.io.plots import plot_curves

MODES = ("online", "schedule")


def run_dir_of(run: str | Path) -> Path:
    """The run directory `teacher=` names: itself, or the directory of a `teacher.pt`."""
    path = Path(run)
    return path.parent if path.is_file() else path


def teacher_file(run: str | Path) -> Path:
    path = Path(run)
    return path if path.is_file() else path / "teacher.pt"


def run_config(run: str | Path, overrides: dict[str, Any]) -> Config:
    """The config a teacher was trained with (the run's config.yaml, or the one inside its
    teacher.pt when only that file was copied), with `overrides` (dotted keys) on top."""
    path = run_dir_of(run) / "config.yaml"
    if Path(run).is_dir() and path.is_file():
        saved = read_yaml(path, "the run's config")
    elif teacher_file(run).is_file():
        data = load_checkpoint(teacher_file(run))
        saved = data.get("config") if isinstance(data, dict) else None
    else:
        raise ConfigError(
            f"'{run}' is not a run directory of l2t train-teacher, nor its teacher.pt"
        )
    if not isinstance(saved, dict):
        raise ConfigError(f"'{run}' holds no run config; is it a run of l2t train-teacher?")
    saved = migrate(saved)
    for key in ("out", "resume", "tracking"):
        saved.pop(key, None)
    trained, applied = from_dict(saved), from_dict(overrides, from_dict(saved))
    for key in overrides:
        value = attrgetter(key)  # dotted keys name nested config sections
        if key.split(".")[0] in ("loss", "teacher") and value(applied) != value(trained):
            raise ConfigError(
                f"{key} belongs to the teacher's run and cannot change when applying it "
                "(teacher.pt fixes the teacher and the loss network it sets)"
            )
    return applied


def load_teacher(run: str | Path, mode: str, cfg: Config, device: torch.device) -> Teacher:
    """The run's teacher (`online`) or its recorded schedule (`schedule`), ready to teach:
    around the run's base loss (an LSTM teacher carries its own `phi_0`)."""
    if mode not in MODES:
        hint = did_you_mean(mode, MODES)
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got '{mode}'{hint}")
    path = teacher_file(run)
    if not path.is_file():
        raise ConfigError(f"'{run}' has no teacher.pt; finish `l2t train-teacher` there first")
    teacher = Teacher.load(path, device)
    base = base_loss_of(teacher, cfg, device)
    if mode == "schedule":
        schedule_path = run_dir_of(run) / "schedule.pt"
        if not schedule_path.is_file():
            raise ConfigError(f"'{run_dir_of(run)}' has no schedule.pt beside its teacher.pt")
        try:
            schedule = ScheduleTeacher.from_schedule(Schedule.load(schedule_path)).to(device)
            return schedule.around(base)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if isinstance(teacher, FixedLossTeacher):
        teacher.base = base
    return teacher


def base_loss_of(teacher: Teacher | None, cfg: Config, device: torch.device) -> list[torch.Tensor]:
    """The base loss parameters a run's teacher works around: an LSTM teacher keeps its
    `phi_0` (its offsets are relative to it), a control teacher its base point; other
    teachers' follows from the config."""
    if isinstance(teacher, LSTMTeacher | ControlTeacher):
        return teacher.base_params()
    return [p.to(device) for p in parts.base_loss(cfg)]


def make_task(cfg: Config, splits: Splits | None = None) -> Task:
    """The students' task as configured (data loaded unless given)."""
    threads.configure(cfg.threads)
    if splits is None:
        splits = parts.splits(cfg, resolve_device(cfg.device, cfg.tf32))
    if splits.num_classes < 2:
        raise ConfigError(f"dataset '{cfg.dataset}' must have at least 2 classes for a pair loss")
    return parts.task(cfg, splits)


def teach_student(
    cfg: Config,
    task: Task,
    teacher: Teacher,
    base: list[torch.Tensor],
    seed: int,
    eval_every: int,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_step: OnStep | None = None,
) -> EpisodeResult:
    """The student of `seed` under the frozen `teacher`: a policy on the lifetime path; the
    REINFORCE agent, which acts on the environment's observations, through its env."""
    if isinstance(teacher, ReinforceTeacher):
        env = StudentTrainingEnv(cfg, task.splits, base)
        return teacher.teach(env, seed, eval_every, test)
    return run_student(task, teacher, teacher.theta(), seed, eval_every, test, on_step)


def teach(run: str | Path, mode: str, cfg: Config, out: str | Path) -> dict[str, Any]:
    """Train one new student (seed `cfg.seed`) with the run's teacher; write `out`."""
    device = resolve_device(cfg.device, cfg.tf32)
    teacher = load_teacher(run, mode, cfg, device)
    base = base_loss_of(Teacher.load(teacher_file(run), device), cfg, device)
    task = make_task(cfg)
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    record_noise(task.splits, out)
    test = (task.splits.x_test, task.splits.y_test)
    seed = student_seed(cfg.seed, "evaluation", 0)
    progress.enable(cfg.progress)
    try:
        with progress.phase(f"teach ({mode})", cfg.steps):
            result = teach_student(cfg, task, teacher, base, seed, cfg.eval_every, test)
    except ValueError as exc:  # teacher and student do not fit together
        raise ConfigError(str(exc)) from None
    summary = {
        "teacher": str(run),
        "mode": mode,
        "dataset": cfg.dataset,
        "student": cfg.student,
        "test_acc": result.test_acc,
        "val_acc": result.val_acc,
        "diverged_steps": result.diverged_steps,
    }
    atomic_write_json(summary, out / "summary.json")
    atomic_write_text(
        to_json({"phase": "final", "curve": result.curve}) + "\n", out / "metrics.jsonl"
    )
    plot_curves({f"{mode} teacher": [result.curve]}, out / "plots" / "curves.png")
    return summary
