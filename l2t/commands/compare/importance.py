"""`importance_kd`: KD with each pool sample's loss weighted by alpha(x), the probability its
pseudo-label is right (`l2t/methods/importance.py`: importance reweighting, the principle of
weighted distillation, Iliopoulos et al., NeurIPS 2022 — not that paper's estimator); (a, T,
learning rate) chosen on validation from `kd_tuned`'s grid."""

from __future__ import annotations

import itertools

from torch import Tensor

from l2t.commands.compare.slam import AlphaRow
from l2t.data.distill import KD_TEMPERATURES, KD_WEIGHTS
from l2t.engine.student_state import LossFn
from l2t.methods.importance import importance_kd_loss, with_trust


class ImportanceKD(AlphaRow):
    names = ("importance_kd",)
    keys = ("mix", "temperature", "lr")

    @property
    def grid(self) -> tuple[tuple[float, ...], ...]:
        return tuple(itertools.product(KD_WEIGHTS, KD_TEMPERATURES, self.setting.rates))

    def loss(self, *setting: float) -> LossFn:
        weight, temperature = setting
        return importance_kd_loss(weight, temperature)

    def with_column(self, targets: Tensor, labeled: int) -> Tensor:
        return with_trust(targets, labeled, self.alpha)
