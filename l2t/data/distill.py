"""Distillation from a model teacher (docs/design.md §6): `l2t train-model` trains a plain
model with cross-entropy; `distill.model=PATH` gives every training sample that model's
logits, which travel with the label (`l2t.losses.labels`) to the losses that use them — Hinton's
vanilla KD as a fixed baseline, and the DLN, whose two label slots then carry the soft
labels `q = (1 - mix) * onehot(y) + mix * softmax(model_logits / T)`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2t.config import ConfigError
from l2t.data.splits import Splits
from l2t.engine.students import build_student
from l2t.io.checkpoint import Fields, expect, load_checkpoint
from l2t.losses.labels import labels_of, model_logits_of

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
    """`splits` whose training samples carry `model`'s logits; an unlabeled pool joins the
    training split after the labeled part, labeled by the model's predictions (hard labels;
    its true labels stay in `hidden_labels`). Computed once, here: the pool's soft labels
    are data from then on."""
    model = model.to(splits.x_train.device)
    if splits.x_unlabeled is None:
        return dataclasses.replace(splits, model_logits=logits_of(model, splits.x_train))
    x_train = torch.cat([splits.x_train, splits.x_unlabeled])
    logits = logits_of(model, x_train)
    pseudo = logits[len(splits.y_train) :].argmax(dim=1)
    return dataclasses.replace(
        splits,
        x_train=x_train,
        y_train=torch.cat([splits.y_train, pseudo]),
        model_logits=logits,
        x_unlabeled=None,
        pool=len(pseudo),
    )


def random_model(arch: str, splits: Splits, seed: int) -> nn.Module:
    """A model of `arch` at its random initialization (a "random teacher")."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_student(arch, splits.input_shape, splits.num_classes)


def load_model(path: str | Path, splits: Splits) -> tuple[nn.Module, str]:
    """The model `l2t train-model` saved at `path`, and its architecture; it must fit the
    data (input shape and classes), else one clear line."""
    what = "a model written by `l2t train-model` (model.pt)"
    fields: Fields = {"kind": str, "input_shape": (list, tuple), "num_classes": int, "student": str}
    data = expect(load_checkpoint(path, splits.x_train.device), path, what, fields)
    if data["kind"] != "model" or not isinstance(data.get("state_dict"), dict):
        raise ConfigError(f"'{path}' is not {what}")
    shape, classes = tuple(data["input_shape"]), int(data["num_classes"])
    if shape != splits.input_shape or classes != splits.num_classes:
        raise ConfigError(
            f"model '{path}' takes input {shape} with {classes} classes; dataset "
            f"'{splits.name}' has input {splits.input_shape} with {splits.num_classes} classes"
        )
    model = build_student(data["student"], shape, classes)
    model.load_state_dict(data["state_dict"])
    return model, str(data["student"])


def attach_model(splits: Splits, model_path: str) -> Splits:
    """`splits` with the logits of the model at `model_path` attached (`distill.model`;
    unchanged without one)."""
    if not model_path:
        return splits
    path = Path(model_path)
    if not path.is_file():
        raise ConfigError(f"distill.model='{path}' does not exist; write one with l2t train-model")
    model, _ = load_model(path, splits)
    return with_model(splits, model)
