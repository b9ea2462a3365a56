"""The data of a run as tensors on the device: train / val (the teacher's) / test (never
seen by the teacher), and which training labels a run corrupted."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class LabelNoise:
    """Which training labels a run corrupted (docs/design.md §6): positions in the train
    split, the true and the given labels. Recorded in every run directory."""

    rate: float
    kind: str
    seed: int
    train_size: int
    index: np.ndarray  # positions in the train split whose label was changed
    clean: np.ndarray  # their true labels
    noisy: np.ndarray  # the labels the students are given

    def to_dict(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "kind": self.kind,
            "seed": self.seed,
            "train_size": self.train_size,
            "changed": len(self.index),
            "index": self.index.tolist(),
            "clean": self.clean.tolist(),
            "noisy": self.noisy.tolist(),
        }


@dataclass
class Splits:
    """Train / val / test tensors of one dataset, already on the target device."""

    name: str
    num_classes: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    noise: LabelNoise | None = None  # the training labels changed by `label_noise`
    model_logits: Tensor | None = None  # a teaching model's logits on x_train (distill.model)
    # the unlabeled pool (`unlabeled=N`): its inputs until a model labels them, then the last
    # `pool` training samples, whose labels are the model's predictions; its true labels are
    # read only by the oracle rows and diagnostics (docs/design.md §6)
    x_unlabeled: Tensor | None = None
    pool: int = 0
    hidden_labels: Tensor | None = None

    @property
    def labeled(self) -> int:
        """Training samples with their own (possibly noisy) labels, at the front."""
        return len(self.y_train) - self.pool

    def keeping_pool(self, keep: Tensor) -> Splits:
        """The labeled part and the pool's samples where `keep` (a bool per pool sample)
        holds: their inputs, labels, model logits and hidden labels."""
        n = self.labeled
        rows = torch.cat([torch.ones(n, dtype=torch.bool, device=keep.device), keep])
        logits, hidden = self.model_logits, self.hidden_labels
        return dataclasses.replace(
            self,
            x_train=self.x_train[rows],
            y_train=self.y_train[rows],
            model_logits=None if logits is None else logits[rows],
            pool=int(keep.sum()),
            hidden_labels=None if hidden is None else hidden[keep],
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def train_and_val(self) -> Splits:
        """The split a user without a teacher would train on: train + val together, the
        val samples beside the labeled part, before the pool (hard labels only: the val
        samples have no model logits)."""
        n = self.labeled
        return Splits(
            self.name,
            self.num_classes,
            torch.cat([self.x_train[:n], self.x_val, self.x_train[n:]]),
            torch.cat([self.y_train[:n], self.y_val, self.y_train[n:]]),
            self.x_val,
            self.y_val,
            self.x_test,
            self.y_test,
            self.noise,
            pool=self.pool,
            hidden_labels=self.hidden_labels,
        )

    def val_only(self) -> Splits:
        """The trusted (clean) validation split alone as the training data: what a user
        holding only those labels would train on."""
        return Splits(
            self.name,
            self.num_classes,
            self.x_val,
            self.y_val,
            self.x_val,
            self.y_val,
            self.x_test,
            self.y_test,
        )
