"""The task: what a student learns and how — data, architecture, SGD, budget, the batches a
student of a given seed sees, and the loss family its teacher sets (docs/design.md §3; the
role learned_optimization calls a task).

Batches are a pure function of (student seed, teacher step), so every method and estimator
that trains the student of seed s shows it the same data in the same order: comparisons are
paired, the two students of an antithetic pair share their data, and resume is exact.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2t.config import ConfigError
from l2t.data.augment import crop_flip
from l2t.data.splits import Splits
from l2t.engine.student_state import SGD, Loss, LossFn, StudentState, state_of, unroll
from l2t.losses.composite import CompositeLoss
from l2t.losses.families import FAMILIES, LossSettings
from l2t.losses.labels import pack

DIVERGENCE_FACTOR = 10.0  # broken: validation cross-entropy above 10 ln(C), or not finite


@dataclass
class Batches:
    """The data of one teacher step: K training batches and one validation batch."""

    x: Tensor  # (K, B, ...)
    y: Tensor  # (K, B) labels, or (K, B, 1 + C) with a model's logits (l2t.losses.labels)
    x_val: Tensor
    y_val: Tensor


def loss_fn(
    family: str,
    params: Sequence[Tensor],
    temperature: float = 1.0,
    mix: float = 0.0,
    composite: CompositeLoss | None = None,
) -> LossFn:
    """The student's loss for loss parameters of `family` (l2t/losses/families.py); with
    distillation the DLN's label slots carry soft labels of `temperature` and `mix`;
    `composite`: the composite family's terms."""
    return FAMILIES[family].loss(params, LossSettings(temperature, mix, composite))


def params_from_action(
    family: str, base: Sequence[Tensor], beta: float, action: Tensor
) -> list[Tensor]:
    """An action in [-1, 1]^n as loss parameters of `family`, around `base`."""
    return FAMILIES[family].from_action(base, beta, action)


class Task:
    def __init__(
        self,
        splits: Splits,
        build: Callable[[], nn.Module],
        sgd: SGD,
        steps: int,
        k: int,
        batch_size: int,
        val_batch: int = 0,
        family: str = "dln",
        criterion: LossFn = F.cross_entropy,
        backend: str = "func",
        temperature: float = 1.0,
        mix: float = 0.0,
        cosine: bool = False,
        composite: CompositeLoss | None = None,
        labeled_batch: int = 0,
        augment: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        n = len(splits.y_train)
        if batch_size > n:  # every batch would repeat samples: a config mistake, not a run
            raise ConfigError(
                f"optim.batch_size ({batch_size}) exceeds the {n} training samples of "
                f"'{splits.name}' (train_size, val_size and labeled set them)"
            )
        if labeled_batch > splits.labeled:
            raise ConfigError(
                f"labeled_batch ({labeled_batch}) exceeds the {splits.labeled} labeled samples"
            )
        self.splits = splits
        self.device = splits.x_train.device
        self.build = build  # a fresh student module (initialized from torch's global RNG)
        self.model = build().to(self.device)  # the architecture; weights live in states
        self._sgd = sgd  # the base rate: read through `sgd_at`, which applies the schedule
        self.steps = steps  # student updates in one lifetime
        self.k = k  # student updates per teacher step
        self.teacher_steps = math.ceil(steps / k)
        self.batch_size = batch_size
        self.val_batch = val_batch  # validation samples per teacher step (0: the whole split)
        self.family = family  # the loss parameters' family (l2t/losses/families.py FAMILIES)
        self.criterion = criterion  # the validation loss: the meta-objective's term
        self.backend = backend  # second-order unrolls: func | higher
        self.temperature, self.mix = temperature, mix  # distillation's soft labels
        self.cosine = cosine  # the learning rate annealed to 0 along a cosine (baselines)
        self.composite = composite  # family composite: its terms (l2t/losses/composite.py)
        self.labeled_batch = labeled_batch  # with a pool: each batch's labeled samples
        self.augment = augment  # training images cropped and flipped (l2t/data/augment.py)
        self.autocast = autocast  # first-order steps' mixed precision (student_state.py)
        # a teaching model's logits travel with the labels (l2t.losses.labels); else hard labels
        logits = splits.model_logits
        self.train_targets = splits.y_train if logits is None else pack(splits.y_train, logits)

    @property
    def num_classes(self) -> int:
        return self.splits.num_classes

    @property
    def divergence_limit(self) -> float:
        return DIVERGENCE_FACTOR * math.log(self.num_classes)

    def sgd_at(self, step: int) -> SGD:
        """The SGD of the teacher step starting at student step `step`: with `cosine`, the
        learning rate `lr (1 + cos(pi step / steps)) / 2`, set once per teacher step. The one
        place a learning rate is decided (docs/design.md §3): every path asks it, the vmapped
        population per member."""
        if not self.cosine:
            return self._sgd
        lr = self._sgd.lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))
        return dataclasses.replace(self._sgd, lr=lr)

    def train(
        self,
        student: StudentState,
        loss_fn: Loss,
        batches: Batches,
        create_graph: bool = False,
    ) -> StudentState:
        """The student's K SGD steps of one teacher step under `loss_fn`, at the rate
        `sgd_at` gives for its step: the one step function of every one-student path
        (`lifetime.advance`, its guard, the online estimator's probe, the reweighting
        methods). `population.advance_together` vmaps the same update (tests)."""
        sgd, val = self.sgd_at(student.step), (batches.x_val, batches.y_val)
        x, y = batches.x, batches.y
        return unroll(
            self.model, student, loss_fn, x, y, sgd, create_graph, self.backend, val, self.autocast
        )

    def broken_mask(self, finite: Tensor, val_loss: Tensor) -> Tensor:
        """Which students are broken (any batch shape, on the device): not finite, or a
        validation cross-entropy above 10 ln C, ten times chance level, far above any
        start (docs/design.md §3). NaN compares False: broken."""
        return ~(finite & (val_loss.detach() < self.divergence_limit))

    def broken(self, finite: Tensor, val_loss: Tensor) -> bool:
        """Whether one student is broken: the one host sync of a teacher step."""
        return bool(self.broken_mask(finite, val_loss))

    def init(self, seed: int) -> StudentState:
        """A fresh student, initialized from `seed` (the global RNG is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.build()
        return state_of(module.to(self.device))

    def batches(self, seed: int, t: int) -> Batches:
        """The data of teacher step `t` of the student of `seed`."""
        generator = torch.Generator().manual_seed((seed << 20) + t)
        idx = self._train_indices(t, generator).to(self.device)
        n_val = len(self.splits.y_val)
        if self.val_batch and self.val_batch < n_val:
            vidx = torch.randint(n_val, (self.val_batch,), generator=generator).to(self.device)
            x_val, y_val = self.splits.x_val[vidx], self.splits.y_val[vidx]
        else:
            x_val, y_val = self.splits.x_val, self.splits.y_val
        x = self.splits.x_train[idx]
        if self.augment:  # drawn after the indices: the same samples as without
            x = crop_flip(x.flatten(0, 1), generator).view_as(x)
        return Batches(x, self.train_targets[idx], x_val, y_val)

    def train_indices(self, seed: int, t: int) -> Tensor:
        """(k, batch_size): which training samples `batches(seed, t)` holds (on the CPU)."""
        return self._train_indices(t, torch.Generator().manual_seed((seed << 20) + t))

    def _train_indices(self, t: int, generator: torch.Generator) -> Tensor:
        """Uniform over the training split; with an unlabeled pool and `labeled_batch`,
        that many from the labeled part and the rest from the pool."""
        k = min(self.k, self.steps - t * self.k)
        pool, labeled = self.splits.pool, self.splits.labeled
        if not (pool and self.labeled_batch):
            return torch.randint(labeled + pool, (k, self.batch_size), generator=generator)
        own = torch.randint(labeled, (k, self.labeled_batch), generator=generator)
        rest = self.batch_size - self.labeled_batch
        return torch.cat([own, labeled + torch.randint(pool, (k, rest), generator=generator)], 1)

    def loss_fn(self, params: Sequence[Tensor]) -> LossFn:
        return loss_fn(self.family, params, self.temperature, self.mix, self.composite)
