"""The base loss: the loss parameters every teacher starts from and the guard falls back to
(docs/design.md §1)."""

from __future__ import annotations

import torch
from torch import Tensor

from l2t.config import Config
from l2t.losses import composite
from l2t.losses.dln import DynamicLossNetwork
from l2t.losses.parametric import BASE_COEFFICIENTS


def base_loss_params(cfg: Config) -> list[Tensor]:
    """For `dln`, the weights `phi_0` fitted to the pairwise logistic loss (seeded; with
    distillation its pairwise KD form), followed by `distill.mix` when the teacher sets the
    mix (`teacher.mix_range`); for `parametric`, cross-entropy's coefficients; for
    `composite`, the controls of the point `loss.base` (with a fitted DLN when its `dln`
    term is on)."""
    if cfg.loss.family == "parametric":
        return [torch.tensor(BASE_COEFFICIENTS)]
    if cfg.loss.family == "composite":
        base = composite.point(cfg.loss.base, cfg.distill.mix)
        ranges = composite.parse_ranges(cfg.loss.ranges)
        shape = composite.CompositeLoss.around(base, ranges)
        phi = _fitted_dln(cfg) if "dln" in shape.terms else []
        return composite.base_params(base, phi, cfg.seed)
    mix = [torch.tensor(cfg.distill.mix)] if cfg.teacher.mix_range > 0 else []
    return _fitted_dln(cfg) + mix


def _fitted_dln(cfg: Config) -> list[Tensor]:
    """The DLN's weights fitted to `loss.init` (seeded; with distillation its soft form)."""
    torch.manual_seed(cfg.seed)
    network = DynamicLossNetwork(cfg.loss.hidden, cfg.loss.layers)
    if cfg.loss.init != "random":
        soft = bool(cfg.distill.model)
        network.fit(cfg.loss.init, cfg.loss.init_steps, seed=cfg.seed, soft_labels=soft)
    return [w.detach().clone() for w in network.phi]
