"""The base loss: the loss parameters every teacher starts from and the guard falls back to
(docs/design.md §1)."""

from __future__ import annotations

import torch
from torch import Tensor

from l2t.config import Config
from l2t.loss_network import DynamicLossNetwork
from l2t.parametric_loss import BASE_COEFFICIENTS


def base_loss_params(cfg: Config) -> list[Tensor]:
    """For `dln`, the weights `phi_0` fitted to the pairwise logistic loss (seeded; with
    distillation its pairwise KD form), followed by `distill.mix` when the teacher sets the
    mix (`teacher.mix_range`); for `parametric`, cross-entropy's coefficients."""
    if cfg.loss.family == "parametric":
        return [torch.tensor(BASE_COEFFICIENTS)]
    torch.manual_seed(cfg.seed)
    network = DynamicLossNetwork(cfg.loss.hidden, cfg.loss.layers)
    if cfg.loss.init != "random":
        soft = bool(cfg.distill.model)
        network.fit(cfg.loss.init, cfg.loss.init_steps, seed=cfg.seed, soft_labels=soft)
    mix = [torch.tensor(cfg.distill.mix)] if cfg.teacher.mix_range > 0 else []
    return [w.detach().clone() for w in network.phi] + mix
