"""The base loss: the loss parameters every teacher starts from and the guard falls back to
(docs/design.md §1), as the run's loss family sets them (l2t/losses/families.py)."""

from __future__ import annotations

from torch import Tensor

from l2t.config import Config
from l2t.losses.families import FAMILIES


def base_loss_params(cfg: Config) -> list[Tensor]:
    """For `dln`, the weights `phi_0` fitted to the pairwise logistic loss (seeded; with
    distillation its pairwise KD form), followed by `distill.mix` when the teacher sets the
    mix (`teacher.mix_range`); for `parametric`, cross-entropy's coefficients; for
    `composite`, the controls of the point `loss.base` (with a fitted DLN when its `dln`
    term is on)."""
    return FAMILIES[cfg.loss.family].base_params(cfg)
