"""Applying a saved teacher to new students (`l2t teach`): the frozen LSTM teacher online,
or its recorded loss schedule replayed by training progress."""

from __future__ import annotations

from operator import attrgetter
from pathlib import Path
from typing import Any

import torch
import yaml

from l2t import progress, threads
from l2t.checkpoint import atomic_write_json, atomic_write_text, load_checkpoint, to_json
from l2t.config import Config, ConfigError, from_dict, read_yaml
from l2t.data import Splits, load_splits, record_noise
from l2t.device import resolve_device

MODES = ("online", "schedule")


def run_config(run_dir: str | Path, overrides: dict[str, Any]) -> Config:
    """The config a teacher was trained with (the run's config.yaml, or the one inside its
    teacher.pt when only that file was copied), with `overrides` (dotted keys) on top."""
    path = Path(run_dir) / "config.yaml"
    if path.is_file():
        saved = read_yaml(path, "the run's config")
    elif (Path(run_dir) / "teacher.pt").is_file():
        data = load_checkpoint(Path(run_dir) / "teacher.pt")
        saved = data.get("config") if isinstance(data, dict) else None
    else:
        raise ConfigError(
            f"'{run_dir}' is not a run directory of l2t train-teacher (no config.yaml)"
        )
    if not isinstance(saved, dict):
        raise ConfigError(f"'{run_dir}' holds no run config; is it a run of l2t train-teacher?")
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


def load_teacher(run_dir: str | Path, mode: str, device: torch.device) -> Any:
    """The run's LSTM teacher (`online`) or its schedule as a teacher (`schedule`)."""
    from agents import ScheduleTeacher, Teacher
    from l2t.schedule import Schedule

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got '{mode}'")
    name = "teacher.pt" if mode == "online" else "schedule.pt"
    path = Path(run_dir) / name
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' has no {name}; finish `l2t train-teacher` there first")
    if mode == "online":
        return Teacher.load(path, device)
    return ScheduleTeacher.from_schedule(Schedule.load(path)).to(device)


def base_phi_of(run_dir: str | Path, cfg: Config, device: torch.device) -> list[torch.Tensor]:
    """The base loss parameters the run's teacher works around: an LSTM teacher keeps its
    `phi_0` (offsets are relative to it); other teachers' base follows from the config."""
    from agents import LSTMTeacher, Teacher
    from envs.student_training import base_loss_params

    path = Path(run_dir) / "teacher.pt"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' has no teacher.pt; finish `l2t train-teacher` there first")
    teacher = Teacher.load(path, device)
    if isinstance(teacher, LSTMTeacher):
        return teacher.split(teacher.base_phi)
    return base_loss_params(cfg)


def make_env(cfg: Config, base_phi: list[torch.Tensor], splits: Splits | None = None) -> Any:
    from envs.student_training import StudentTrainingEnv

    device = resolve_device(cfg.device)
    threads.configure(cfg.threads)
    if splits is None:
        splits = load_splits(cfg, device)
    if splits.num_classes < 2:
        raise ConfigError(f"dataset '{cfg.dataset}' must have at least 2 classes for a pair loss")
    return StudentTrainingEnv(cfg, splits, base_phi)


def teach(run_dir: str | Path, mode: str, cfg: Config, out: str | Path) -> dict[str, Any]:
    """Train one new student (seed `cfg.seed`) with the run's teacher; write `out`."""
    from l2t.plots import plot_curves
    from l2t.seeds import student_seed

    device = resolve_device(cfg.device)
    teacher = load_teacher(run_dir, mode, device)
    env = make_env(cfg, base_phi_of(run_dir, cfg, device))
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    record_noise(env.splits, out)
    test = (env.splits.x_test, env.splits.y_test)
    seed = student_seed(cfg.seed, "evaluation", 0)
    progress.enable(cfg.progress)
    try:
        with progress.phase(f"teach ({mode})", cfg.steps):
            result = teacher.teach(env, seed, cfg.eval_every, test)
    except ValueError as exc:  # teacher and student do not fit together
        raise ConfigError(str(exc)) from None
    summary = {
        "teacher": str(run_dir),
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
