"""The loss families a teacher sets (`loss.family`, docs/design.md §1, §6): each says how its
parameters become the student's loss, where they start (the base loss every teacher starts
from and the guard falls back to), and how an action in [-1, 1]^n sets them. The maths
lives in `dln.py`, `parametric.py` and `composite.py`; a new family is one `LossFamily`
subclass, and `loss.family`'s choices are `FAMILIES`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from l2t.losses import composite
from l2t.losses.dln import DynamicLossNetwork, dln_loss
from l2t.losses.parametric import (
    BASE_COEFFICIENTS,
    coefficients_from_unit,
    parametric_loss,
    parametric_per_sample,
)

LossFn = Callable[[Tensor, Tensor], Tensor]  # (logits, targets) -> the batch's loss


@dataclass(frozen=True)
class LossSettings:
    """What a family's loss reads besides its parameters (the task holds them)."""

    temperature: float = 1.0  # distillation: the model's soft labels at this temperature
    mix: float = 0.0  # ... and this weight, where the family uses them (the DLN's slots)
    shape: composite.CompositeLoss | None = None  # the composite family's terms


@dataclass(frozen=True)
class BaseLossSettings:
    """What a family's base loss is made from (l2t/config/parts.py reads them off a run)."""

    seed: int = 0  # seeds the DLN's fit
    hidden: int = 40  # the DLN's width, depth, initial pair loss and its fitting steps
    layers: int = 4
    init: str = "pairwise_logistic"
    init_steps: int = 1000
    soft_labels: bool = False  # with distillation: the DLN fitted to its pairwise KD form
    mix: float = 0.0  # distillation's mix: a point's kd weight, or a teacher-set mix's start
    sets_mix: bool = False  # dln: the teacher sets the mix (appended to the parameters)
    point: str = "ce"  # composite: the fixed loss the family sits at (l2t/losses/composite.py)
    ranges: str = ""  # composite: the controls the teacher moves (which terms are on)


class LossFamily:
    """One family: stateless, registered by `name` as an instance. Its fact: whether its
    parameters are set by named controls (the control teacher, docs/design.md §6) rather than
    by a flat action (the LSTM, MLP and REINFORCE teachers)."""

    name: ClassVar[str]
    set_by_controls: ClassVar[bool] = False
    drawn_as: ClassVar[str] = "network"  # a schedule's figures: the loss network's, the
    # coefficients', or the controls' (l2t/io/plots.py plot_schedule)

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        FAMILIES[cls.name] = cls()

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        """The student's loss at `params`, with the task's settings `at`."""
        raise NotImplementedError

    def samples(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        """The (B,) per-sample losses whose mean is `loss`'s: `reduction="none"` and class
        weights in `LearnedLoss`."""
        raise NotImplementedError

    def base_params(self, start: BaseLossSettings) -> list[Tensor]:
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

    def samples(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        return lambda z, y: dln_loss(params, z, y, at.temperature, at.mix, per_sample=True)

    def base_params(self, start: BaseLossSettings) -> list[Tensor]:
        return fitted_dln(start) + ([torch.tensor(start.mix)] if start.sets_mix else [])

    def from_action(self, base: Sequence[Tensor], beta: float, action: Tensor) -> list[Tensor]:
        """The bounded offsets `phi_0 + beta * a`."""
        chunks = action.split([p.numel() for p in base])
        return [b + beta * c.view_as(b) for b, c in zip(base, chunks)]


class ParametricFamily(LossFamily):
    """Four coefficients of classic losses (L2T-DLF); the hard labels only."""

    name = "parametric"
    drawn_as = "coefficients"

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        return lambda z, y: parametric_loss(params[0], z, y)

    def samples(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        return lambda z, y: parametric_per_sample(params[0], z, y)

    def base_params(self, start: BaseLossSettings) -> list[Tensor]:
        return [torch.tensor(BASE_COEFFICIENTS)]  # cross-entropy

    def from_action(self, base: Sequence[Tensor], beta: float, action: Tensor) -> list[Tensor]:
        """The coefficients `max([1, 0, 0, 0] + a, 0)`."""
        return [coefficients_from_unit(action)]


class CompositeFamily(LossFamily):
    """The fixed losses as one family around the point `loss.base` (with a fitted DLN when
    its `dln` term is on); set by the control teacher."""

    name = "composite"
    set_by_controls = True
    drawn_as = "controls"

    def loss(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        assert at.shape is not None, "the composite family's loss needs its shape"
        return at.shape.bind(params)

    def samples(self, params: Sequence[Tensor], at: LossSettings) -> LossFn:
        assert at.shape is not None, "the composite family's loss needs its shape"
        shape = at.shape
        return lambda z, y: shape.contributions(params, z, y)

    def base_params(self, start: BaseLossSettings) -> list[Tensor]:
        base = composite.point(start.point, start.mix)
        shape = composite.CompositeLoss.around(base, composite.parse_ranges(start.ranges))
        phi = fitted_dln(start) if "dln" in shape.terms else []
        return composite.base_params(base, phi, start.seed)


def fitted_dln(start: BaseLossSettings) -> list[Tensor]:
    """The DLN's weights fitted to `init` (seeded; with distillation its soft form)."""
    torch.manual_seed(start.seed)
    network = DynamicLossNetwork(start.hidden, start.layers)
    if start.init != "random":
        network.fit(start.init, start.init_steps, seed=start.seed, soft_labels=start.soft_labels)
    return [w.detach().clone() for w in network.phi]
