"""Distillation from a model teacher (docs/design.md §6): `l2t train-model` trains a plain
model with cross-entropy; `distill.model=PATH` gives every training sample that model's
logits, which travel with the label (`l2t.labels`) to the losses that use them — Hinton's
vanilla KD as a fixed baseline, and the DLN, whose two label slots then carry the soft
labels `q = (1 - mix) * onehot(y) + mix * softmax(model_logits / T)`.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from l2t.checkpoint import atomic_save, atomic_write_json, atomic_write_text, load_checkpoint
from l2t.config import Config, ConfigError
from l2t.data import Splits
from l2t.labels import labels_of, model_logits_of
from l2t.students import build_student

KD_WEIGHTS = (0.25, 0.5, 0.75, 0.9)  # the grid vanilla KD's a is chosen from
KD_TEMPERATURES = (1.0, 2.0, 4.0)  # ... and its T
DISTILL_METHODS = ("kd", "self_distill", "random_teacher_kd", "base_dln_kd")
# the fixed loss each distillation method trains with: vanilla KD, or the base DLN's pairwise KD
DISTILL_LOSS = {"base_dln_kd": "base_dln"}


def kd_loss(logits: Tensor, targets: Tensor, weight: float, temperature: float) -> Tensor:
    """Hinton et al. 2015: `(1 - a) CE(z, y) + a T^2 KL(softmax(m/T) || softmax(z/T))`,
    `m` the model's logits carried by `targets`; plain cross-entropy without them."""
    ce = F.cross_entropy(logits, labels_of(targets))
    model = model_logits_of(targets)
    if model is None or weight == 0:
        return ce
    soft = F.kl_div(
        F.log_softmax(logits / temperature, dim=1),
        F.log_softmax(model / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - weight) * ce + weight * temperature**2 * soft


@torch.no_grad()
def logits_of(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """The model's logits on `x`, in evaluation mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def with_model(splits: Splits, model: nn.Module) -> Splits:
    """`splits` whose training samples carry `model`'s logits."""
    return dataclasses.replace(
        splits, model_logits=logits_of(model.to(splits.x_train.device), splits.x_train)
    )


def random_model(arch: str, splits: Splits, seed: int) -> nn.Module:
    """A model of `arch` at its random initialization (a "random teacher")."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_student(arch, splits.input_shape, splits.num_classes)


def load_model(path: str | Path, splits: Splits) -> tuple[nn.Module, str]:
    """The model `l2t train-model` saved at `path`, and its architecture; it must fit the
    data (input shape and classes), else one clear line."""
    data = load_checkpoint(path, splits.x_train.device)
    if not isinstance(data, dict) or data.get("kind") != "model":
        raise ConfigError(f"'{path}' is not a model written by `l2t train-model` (model.pt)")
    shape, classes = tuple(data["input_shape"]), int(data["num_classes"])
    if shape != splits.input_shape or classes != splits.num_classes:
        raise ConfigError(
            f"model '{path}' takes input {shape} with {classes} classes; dataset "
            f"'{splits.name}' has input {splits.input_shape} with {splits.num_classes} classes"
        )
    model = build_student(data["student"], shape, classes)
    model.load_state_dict(data["state_dict"])
    return model, str(data["student"])


def attach_model(splits: Splits, cfg: Config) -> Splits:
    """The run's data with `distill.model`'s logits attached (unchanged without one)."""
    if not cfg.distill.model:
        return splits
    path = Path(cfg.distill.model)
    if not path.is_file():
        raise ConfigError(f"distill.model='{path}' does not exist; write one with l2t train-model")
    model, _ = load_model(path, splits)
    return with_model(splits, model)


def fit_model(cfg: Config, splits: Splits, seed: int) -> tuple[nn.Module, Any]:
    """A `cfg.student` trained with cross-entropy for `cfg.steps` on `splits` (its hard
    labels only); returns the module and its `EpisodeResult` (test split evaluated)."""
    from agents import FixedLossTeacher
    from envs.student_training import StudentTrainingEnv

    plain = copy.deepcopy(cfg)
    plain.distill.model = ""
    plain.loss.init_steps = 1  # the base loss is not used by a cross-entropy student
    env = StudentTrainingEnv(plain, dataclasses.replace(splits, model_logits=None))
    test = (splits.x_test, splits.y_test)
    result = FixedLossTeacher("ce").teach(env, seed, cfg.eval_every, test)
    model = env.task.build()
    assert env.student is not None
    model.load_state_dict({**env.student.params, **env.student.buffers})
    return model.to(splits.x_train.device), result


def train_model(cfg: Config) -> dict[str, Any]:
    """`l2t train-model`: fit `cfg.student` with cross-entropy; write `out/model.pt`, its
    config, summary and accuracy curve."""
    from l2t import threads
    from l2t.data import load_splits, record_noise
    from l2t.device import resolve_device
    from l2t.plots import plot_curves
    from l2t.seeds import student_seed

    out = Path(cfg.out)
    if (out / "model.pt").exists():
        raise ConfigError(f"'{out}' already holds a model; choose another out=DIR")
    if cfg.distill.model:
        raise ConfigError("train-model trains with cross-entropy; leave distill.model unset")
    threads.configure(cfg.threads)
    splits = load_splits(cfg, resolve_device(cfg.device))
    model, result = fit_model(cfg, splits, student_seed(cfg.seed, "model", 0))
    (out / "plots").mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    record_noise(splits, out)
    summary = {
        "student": cfg.student,
        "dataset": cfg.dataset,
        "test_acc": result.test_acc,
        "val_acc": result.val_acc,
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
    from l2t.seeds import student_seed

    if not cfg.distill.model:
        raise ConfigError(f"method {name} needs distill.model=PATH (a model of l2t train-model)")
    model, arch = load_model(cfg.distill.model, splits)
    if name == "self_distill":
        model, _ = fit_model(cfg, splits, student_seed(cfg.seed, "model", 1))
    elif name == "random_teacher_kd":
        model = random_model(arch, splits, student_seed(cfg.seed, "model", 2))
    return model


def kd_baseline(
    name: str, cfg: Config, env: Any, seeds: list[int], chosen: dict[str, float] | None = None
) -> tuple[Any, Any]:
    """A distillation baseline tuned like vanilla KD: its fixed loss (`DISTILL_LOSS`; KD
    from `name`'s model, or the base DLN's pairwise KD from `distill.model`) and an env at
    the (a, T) — the DLN's (mix, T) — from the grid with the best mean final validation
    accuracy of the students of `seeds` (none of the compared ones), or at `chosen`."""
    from agents import FixedLossTeacher
    from l2t.applying import make_env
    from l2t.loss_network import weights_and_mix

    splits = with_model(env.splits, distillation_model(name, cfg, env.splits))
    teacher = FixedLossTeacher(DISTILL_LOSS.get(name, "kd"))
    base_weights = weights_and_mix(env.base_phi)[0]  # the mix is the grid's, not a teacher's

    def env_for(weight: float, temperature: float) -> Any:
        changed = copy.deepcopy(cfg)
        changed.distill.mix, changed.distill.temperature = weight, temperature
        return make_env(changed, base_weights, splits)

    def score(setting: tuple[float, float]) -> float:
        target = env_for(*setting)
        return sum(teacher.teach(target, s, cfg.steps).val_acc for s in seeds) / len(seeds)

    if chosen is not None:
        return teacher, env_for(chosen["mix"], chosen["temperature"])
    best = max(((a, t) for a in KD_WEIGHTS for t in KD_TEMPERATURES), key=score)
    print(f"{name}: a={best[0]}, T={best[1]} (best validation accuracy of the KD grid)")
    return teacher, env_for(*best)
