"""A run's `Config` as its parts — data, task, base loss (the teacher: `teachers.py`)
(docs/design.md §3).

With `teachers.py`, the one place a whole `Config` is read below the commands: the engine,
the losses, the data, the estimators and the teachers take explicit arguments (a config
section at most), so a component's inputs are its signature (`tests/test_layout.py` holds
them to it). It imports no teacher: the environment builds its task here, and the REINFORCE
teacher imports the environment.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from l2t.config import Config, ConfigError, mix_of
from l2t.data.datasets import load_data
from l2t.data.distill import attach_model
from l2t.data.splits import Splits
from l2t.engine.student_state import AUTOCAST, SGD
from l2t.engine.students import build_student
from l2t.engine.task import Task
from l2t.losses.composite import CompositeLoss, parse_ranges, point
from l2t.losses.families import FAMILIES, BaseLossSettings


def splits(cfg: Config, device: str | torch.device = "cpu", with_model: bool = True) -> Splits:
    """The data `cfg` names: its dataset, split, label noise and (`with_model`) its
    distillation model's logits, which also label an unlabeled pool."""
    data = load_data(
        cfg.dataset,
        cfg.seed,
        device,
        cfg.data_dir,
        cfg.val_size,
        cfg.train_size,
        cfg.label_noise,
        cfg.label_noise_kind,
        cfg.labeled,
        cfg.unlabeled,
    )
    return attach_model(data, cfg.distill.model) if with_model else data


def composite(cfg: Config) -> CompositeLoss | None:
    """The composite family's shape (None for the other families): the terms its base point
    and the teacher's ranges need."""
    if not FAMILIES[cfg.loss.family].set_by_controls:
        return None
    if cfg.loss.base == "auto":
        raise ConfigError(
            "loss.base=auto is chosen on validation first (l2t/methods/base_point.py)"
        )
    try:
        base, ranges = point(cfg.loss.base, cfg.distill.mix), parse_ranges(cfg.loss.ranges)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if "kd" in ranges and not cfg.distill.model:
        raise ConfigError("loss.ranges moves kd, which needs distill.model")
    return CompositeLoss.around(base, ranges, cfg.distill.temperature)


def task(cfg: Config, data: Splits, student: str = "") -> Task:
    """The task of `cfg` on `data` (`student`: another architecture of `students_mix`)."""
    arch = student or cfg.student
    return Task(
        data,
        lambda: build_student(arch, data.input_shape, data.num_classes),
        SGD(cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay),
        cfg.steps,
        cfg.unroll.steps,
        cfg.optim.batch_size,
        cfg.val_batch,
        cfg.loss.family,
        backend=cfg.unroll.backend,
        temperature=cfg.distill.temperature,
        mix=cfg.distill.mix,
        cosine=cfg.optim.cosine,
        composite=composite(cfg),
        labeled_batch=cfg.labeled_batch,
        augment=augments(cfg, data),
        autocast=AUTOCAST[cfg.autocast],
    )


def augments(cfg: Config, data: Splits) -> bool:
    """Whether the task crops and flips its training images (`augment`)."""
    if cfg.augment == "off":
        return False
    if cfg.augment == "auto":
        return cfg.dataset.startswith("cifar")
    if len(data.input_shape) != 3:
        raise ConfigError(
            f"augment=on crops and flips images (C, H, W); {cfg.dataset}'s inputs are "
            f"{tuple(data.input_shape)}"
        )
    return True


def tasks(cfg: Config, data: Splits) -> list[Task]:
    """One task per student architecture the teacher learns to teach (`students_mix`)."""
    return [task(cfg, data, arch) for arch in mix_of(cfg)]


def base_loss(cfg: Config) -> list[Tensor]:
    """The base loss every teacher starts from and the guard falls back to (docs/design.md
    §1): for `dln`, the weights `phi_0` fitted to `loss.init` (seeded; with distillation
    its pairwise KD form), followed by `distill.mix` when the teacher sets the mix; for
    `parametric`, cross-entropy's coefficients; for `composite`, the controls of the point
    `loss.base` (with a fitted DLN when its `dln` term is on)."""
    loss = cfg.loss
    named = {k: getattr(loss, k) for k in ("hidden", "layers", "init", "init_steps", "ranges")}
    soft, sets_mix = bool(cfg.distill.model), cfg.teacher.mix_range > 0
    settings = BaseLossSettings(
        cfg.seed, soft_labels=soft, mix=cfg.distill.mix, sets_mix=sets_mix, point=loss.base, **named
    )
    return FAMILIES[loss.family].base_params(settings)


def __getattr__(name: str) -> Any:
    """The names these functions had before they met here (issue 32), with a hint."""
    if name in MOVED_NAMES:
        raise ImportError(f"{name} is now l2t.config.{MOVED_NAMES[name]}")
    raise AttributeError(name)


MOVED_NAMES = {  # old name -> the function here
    "base_loss_params": "parts.base_loss(cfg)",
    "load_splits": "parts.splits(cfg)",
    "composite_of": "parts.composite(cfg)",
    "make_teacher": "teachers.teacher(cfg, base)",
    "check_parts": "teachers.check(cfg)",
}
