"""The loss families a teacher sets (`loss.family`, docs/design.md §1, §6): each says how its
parameters become the student's loss, where they start (the base loss every teacher starts
from and the guard falls back to), and how an action in [-1, 1]^n sets them. The maths
lives in `dln.py`, `parametric.py` and `composite.py`; a new family is one `LossFamily`
subclass, and `loss.family`'s choices are `FAMILIES`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from l2t.losses import composite
from l2t.losses.dln import DynamicLossNetwork, dln_loss
from l2t.losses.parametric import BASE_COEFFICIENTS, coefficients_from_unit, parametric_loss

if TYPE_CHECKING:  # the config imports this module's names
    from l2t.config import Config

LossFn = Callable[[Tensor, Tensor], Tensor]  # (logits, targets) -> the batch's loss


@dataclass(frozen=True)
class LossSettings:
    """What a family's loss reads besides its parameters (the task holds them)."""

    temperature: float = 1.0  # distillation: the model's soft labels at this temperature
    mix: float = 0.0  # ... and this weight, where the family uses them (the DLN's slots)
    shape: composite.CompositeLoss | None = None  # the composite family's terms


class LossFamily:
    """One family: stateless, registered by `name` as an instance."""

    name: ClassVar[str]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        FAMILIES[cls.name] = cls()

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        """The student's loss at `params`, with the task's settings `at`."""
        raise NotImplementedError

    def base_params(self, cfg: Config) -> list[Tensor]:
        raise NotImplementedError

    def from_action(self, base: Sequence[Tensor], beta: float, action: Tensor) -> list[Tensor]:
        raise ValueError(f"the {self.name} family is set by teacher.agent=control, not by actions")


FAMILIES: dict[str, LossFamily] = {}


class DLNFamily(LossFamily):
    """The dynamic loss network's weights (L2T-DLN); with distillation its two label slots
    carry soft labels, and `teacher.mix_range` appends the mix the teacher sets."""

    name = "dln"

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        return lambda z, y: dln_loss(params, z, y, at.temperature, at.mix)

    def base_params(self, cfg: Config) -> list[Tensor]:
        mix = [torch.tensor(cfg.distill.mix)] if cfg.teacher.mix_range > 0 else []
        return fitted_dln(cfg) + mix

    def from_action(self, base: Sequence[Tensor], beta: float, action: Tensor) -> list[Tensor]:
        """The bounded offsets `phi_0 + beta * a`."""
        chunks = action.split([p.numel() for p in base])
        return [b + beta * c.view_as(b) for b, c in zip(base, chunks)]


class ParametricFamily(LossFamily):
    """Four coefficients of classic losses (L2T-DLF); the hard labels only."""

    name = "parametric"

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        return lambda z, y: parametric_loss(params[0], z, y)

    def base_params(self, cfg: Config) -> list[Tensor]:
        return [torch.tensor(BASE_COEFFICIENTS)]  # cross-entropy

    def from_action(self, base: Sequence[Tensor], beta: float, action: Tensor) -> list[Tensor]:
        """The coefficients `max([1, 0, 0, 0] + a, 0)`."""
        return [coefficients_from_unit(action)]


class CompositeFamily(LossFamily):
    """The fixed losses as one family around the point `loss.base` (with a fitted DLN when
    its `dln` term is on); set by the control teacher."""

    name = "composite"

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        assert at.shape is not None, "the composite family's loss needs its shape"
        return at.shape.bind(params)

    def base_params(self, cfg: Config) -> list[Tensor]:
        base = composite.point(cfg.loss.base, cfg.distill.mix)
        ranges = composite.parse_ranges(cfg.loss.ranges)
        shape = composite.CompositeLoss.around(base, ranges)
        phi = fitted_dln(cfg) if "dln" in shape.terms else []
        return composite.base_params(base, phi, cfg.seed)


def fitted_dln(cfg: Config) -> list[Tensor]:
    """The DLN's weights fitted to `loss.init` (seeded; with distillation its soft form)."""
    torch.manual_seed(cfg.seed)
    network = DynamicLossNetwork(cfg.loss.hidden, cfg.loss.layers)
    if cfg.loss.init != "random":
        soft = bool(cfg.distill.model)
        network.fit(cfg.loss.init, cfg.loss.init_steps, seed=cfg.seed, soft_labels=soft)
    return [w.detach().clone() for w in network.phi]
