"""`l2t train-model` and the distillation baselines' models: students trained with
cross-entropy on the lifetime path (l2t/engine/teaching.py), and vanilla KD's grid search."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor, nn

from agents import FixedLossTeacher
from l2t.config import Config, ConfigError, parts, varied
from l2t.data.datasets import record_noise
from l2t.data.distill import (
    DISTILL_LOSS,
    KD_TEMPERATURES,
    KD_WEIGHTS,
    load_model,
    random_model,
    with_model,
)
from l2t.data.splits import Splits
from l2t.engine.lifetime import Lifetime, Step
from l2t.engine.seeds import student_seed
from l2t.engine.task import Task
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.io import threads
from l2t.io.checkpoint import atomic_save, atomic_write_json, atomic_write_text
from l2t.io.device import resolve_device
from l2t.io.plots import plot_curves
from l2t.losses.dln import weights_and_mix


def fit_model(cfg: Config, splits: Splits, seed: int) -> tuple[nn.Module, Any]:
    """A `cfg.student` trained with cross-entropy for `cfg.steps` on `splits` (its hard
    labels only); returns the module and its `EpisodeResult` (test split evaluated)."""
    plain = varied(cfg, {"distill": {"model": ""}})
    task = parts.task(plain, dataclasses.replace(splits, model_logits=None))
    test = (splits.x_test, splits.y_test)
    last: list[Lifetime] = []

    def keep(step: Step, before: Lifetime, so_far: EpisodeResult) -> None:
        last[:] = [step.life]

    result = run_student(task, FixedLossTeacher("ce"), {}, seed, cfg.eval_every, test, keep)
    model = task.build()
    model.load_state_dict({**last[0].student.params, **last[0].student.buffers})
    return model.to(splits.x_train.device), result


def train_model(cfg: Config, with_val: bool = False) -> dict[str, Any]:
    """`l2t train-model`: fit `cfg.student` with cross-entropy on the training split (with an
    unlabeled pool: its labeled part), and with `with_val` on the trusted val split too (its
    val accuracy is then not held out); write `out/model.pt`, its config, summary and
    accuracy curve."""
    out = Path(cfg.out)
    if (out / "model.pt").exists():
        raise ConfigError(f"'{out}' already holds a model; choose another out=DIR")
    if cfg.distill.model and not cfg.unlabeled:
        raise ConfigError("train-model trains with cross-entropy; leave distill.model unset")
    threads.configure(cfg.threads)  # with a pool, distill.model names where this model goes
    splits = parts.splits(cfg, resolve_device(cfg.device, cfg.tf32), with_model=False)
    if with_val:
        splits = splits.train_and_val()
    model, result = fit_model(cfg, splits, student_seed(cfg.seed, "model", 0))
    (out / "plots").mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    record_noise(splits, out)
    summary = {
        "student": cfg.student,
        "dataset": cfg.dataset,
        "test_acc": result.test_acc,
        "val_acc": result.val_acc,
        "trained_on": "train + val" if with_val else "train",
    }
    atomic_save(
        {
            "kind": "model",
            "student": cfg.student,
            "input_shape": list(splits.input_shape),
            "num_classes": splits.num_classes,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": cfg.to_dict(),
            **summary,
        },
        out / "model.pt",
    )
    atomic_write_json(summary, out / "summary.json")
    plot_curves({f"{cfg.student}, cross-entropy": [result.curve]}, out / "plots" / "curves.png")
    return summary


def distillation_model(name: str, cfg: Config, splits: Splits) -> nn.Module:
    """The model a distillation baseline learns from: `distill.model` (`kd`), a model of the
    student's own architecture trained here (`self_distill`), or one of `distill.model`'s
    architecture at its random initialization (`random_teacher_kd`)."""
    if not cfg.distill.model:
        raise ConfigError(f"method {name} needs distill.model=PATH (a model of l2t train-model)")
    model, arch = load_model(cfg.distill.model, splits)
    if name == "self_distill":
        model, _ = fit_model(cfg, splits, student_seed(cfg.seed, "model", 1))
    elif name == "random_teacher_kd":
        model = random_model(arch, splits, student_seed(cfg.seed, "model", 2))
    return model


def kd_baseline(
    name: str,
    cfg: Config,
    splits: Splits,
    base: list[Tensor],
    seeds: list[int],
    chosen: dict[str, float] | None = None,
    rates: tuple[float, ...] = (),
) -> tuple[FixedLossTeacher, Task, dict[str, float]]:
    """A distillation baseline tuned like vanilla KD: its fixed loss (`DISTILL_LOSS`; KD
    from `name`'s model, or the base DLN's pairwise KD from `distill.model`), a task at the
    (a, T) — the DLN's (mix, T) — and with `rates` the learning rate, from the grid with the
    best mean final validation accuracy of the students of `seeds` (none of the compared
    ones), or at `chosen`; and what it chose."""
    splits = with_model(splits, distillation_model(name, cfg, splits))
    base_weights = weights_and_mix(base)[0]  # the mix is the grid's, not a teacher's
    teacher = FixedLossTeacher(DISTILL_LOSS.get(name, "kd"), base_weights)

    def task_for(setting: dict[str, float]) -> Task:
        distill = {"mix": setting["mix"], "temperature": setting["temperature"]}
        lr = setting.get("lr", cfg.optim.lr)
        changed = varied(cfg, {"distill": distill, "optim": {"lr": lr}})
        return parts.task(changed, splits)

    def score(setting: dict[str, float]) -> float:
        task = task_for(setting)
        accs = [run_student(task, teacher, {}, s, cfg.steps).val_acc for s in seeds]
        return sum(accs) / len(seeds)

    if chosen is None:
        grid = itertools.product(KD_WEIGHTS, KD_TEMPERATURES, rates or (None,))
        settings = [
            {"mix": a, "temperature": t, **({} if lr is None else {"lr": lr})} for a, t, lr in grid
        ]
        chosen = max(settings, key=score)
        rate = f", lr={chosen['lr']}" if rates else ""
        print(
            f"{name}: a={chosen['mix']}, T={chosen['temperature']}{rate} (best validation "
            "accuracy of the KD grid)"
        )
    return teacher, task_for(chosen), chosen
