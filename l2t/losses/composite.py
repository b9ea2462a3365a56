"""The composite loss family (`loss.family=composite`, docs/design.md §6): one loss that
contains the strong fixed losses as points, so a teacher starts at the best of them and
learns a few controls on top (it can only win or tie).

Per sample `i`:
    l_i = a CE_eps(z_i, y_i) + b RCE(z_i, y_i) + g GCE_q(z_i, y_i)
          + m KD_T(z_i, q_i) + d DLN(z_i, y_i)
(label smoothing eps; SCE's reverse cross-entropy; GCE; distillation's `T^2 KL` when the
targets carry a model's logits; the dynamic loss network as a correction). A per-sample
weight `w_i = sigmoid(net(l_i))` from a small weight net over the sample's detached loss
(Meta-Weight-Net's form: bounded, normalised to mean 1 in the batch, exactly 1 while its
output layer is zero), and a loss scale `exp(s)` (with SGD, a learning-rate factor). The
batch loss is `exp(s) sum_i w_i l_i / sum_i w_i`.

Loss parameters, as every family's, are a list of tensors: `[controls, w1, b1, w2, b2,
*phi]` — the `CONTROLS` values, the weight net's two layers, and the DLN's weights (only
when the `dln` term is on). Which terms are computed is static (`CompositeLoss.terms`): a
term whose weight is 0 and that no teacher moves costs nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from l2t.losses.dln import dln_loss
from l2t.losses.fixed import GCE_Q, SCE_ALPHA, SCE_BETA, SCE_LOG_ZERO, SMOOTHING
from l2t.losses.labels import labels_of, model_logits_of, soft_kl

CONTROLS = ("log_scale", "ce", "smoothing", "rce", "gce", "kd", "dln")
TERMS = ("ce", "rce", "gce", "kd", "dln")  # the controls that weigh a per-sample term
WEIGHT_HIDDEN = 8  # the weight net: 1 -> 8 (tanh) -> 1 (sigmoid)
REWEIGHT = "reweight"  # the name of the weight net's output layer as a control


POINTS: dict[str, Callable[[float], dict[str, float]]] = {  # fixed losses inside the family
    "ce": lambda kd_mix: {"ce": 1.0},
    "label_smoothing": lambda kd_mix: {"ce": 1.0, "smoothing": SMOOTHING},
    "sce": lambda kd_mix: {"ce": SCE_ALPHA, "rce": SCE_BETA},
    "gce": lambda kd_mix: {"gce": 1.0},
    "kd": lambda kd_mix: {"ce": 1.0 - kd_mix, "kd": kd_mix},
    "base_dln": lambda kd_mix: {"dln": 1.0},
}


def point(name: str, kd_mix: float = 0.0) -> dict[str, float]:
    """The controls at which the family is the fixed loss `name` (unnamed controls are 0)."""
    if name not in POINTS:
        raise ValueError(f"unknown composite point '{name}'; allowed: {', '.join(POINTS)}")
    return POINTS[name](kd_mix)


def parse_ranges(text: str, key: str = "loss.ranges") -> dict[str, float]:
    """`loss.ranges`, e.g. "log_scale=0.7,ce=0.5,reweight=2": how far a teacher may move
    each control from its base value (a control not named stays at its base). Also reads
    `estimator.sigma_controls`, a value per control in the same form (`key`)."""
    ranges: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        if name not in (*CONTROLS, REWEIGHT):
            allowed = ", ".join((*CONTROLS, REWEIGHT))
            raise ValueError(f"{key}: unknown control '{name}'; allowed: {allowed}")
        try:
            ranges[name] = float(value)
        except ValueError:
            raise ValueError(f"{key}: '{item}' is not control=number") from None
        if not 0 <= ranges[name] < math.inf:
            raise ValueError(
                f"{key}: the value of {name} must be a finite number >= 0; got {value}"
            )
    return ranges


def control_rows(ranges: dict[str, float]) -> dict[str, slice]:
    """Which of the `controlled_size(ranges)` unit values set each moved control (the
    weight net's output layer, `reweight`, is WEIGHT_HIDDEN + 1 of them)."""
    rows, at = {}, 0
    for name in CONTROLS:
        if ranges.get(name, 0.0) > 0:
            rows[name], at = slice(at, at + 1), at + 1
    if ranges.get(REWEIGHT, 0.0) > 0:
        rows[REWEIGHT] = slice(at, at + WEIGHT_HIDDEN + 1)
    return rows


@dataclass(frozen=True)
class CompositeLoss:
    """The family's static shape: which terms are computed, whether the weight net is on,
    and the fixed constants of its terms."""

    terms: tuple[str, ...]  # the per-sample terms computed (a subset of TERMS)
    smoothing: bool = False  # CE carries label smoothing (eps may be non-zero)
    reweight: bool = False  # the weight net sets per-sample weights
    temperature: float = 1.0  # KD's T
    q: float = GCE_Q

    @classmethod
    def around(cls, base: dict[str, float], ranges: dict[str, float], temperature: float = 1.0):
        """The shape a teacher moving `ranges` around the point `base` needs."""

        def on(name: str) -> bool:
            return base.get(name, 0.0) != 0.0 or ranges.get(name, 0.0) > 0.0

        terms = tuple(t for t in TERMS if on(t))
        return cls(terms, on("smoothing"), ranges.get(REWEIGHT, 0.0) > 0.0, temperature)

    def bind(self, params: Sequence[Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        """The loss at `params` as a function of (logits, targets). A scaled cross-entropy
        alone (the `ce` point: nothing moved, or a replay at it) is one fused call times a
        factor, and at factor 1 `cross_entropy` itself: at a small batch the per-call cost
        is the number of ops. The values are read once (`_values`)."""
        values = _values(params)
        shape = self._less(values)
        if shape.terms == ("ce",) and not (shape.smoothing or shape.reweight):
            if values is not None and math.exp(values["log_scale"]) * values["ce"] == 1.0:
                return cross_entropy
            factor = params[0][0].exp() * params[0][1]  # exp(s) a, in the graph once
            return lambda logits, targets: factor * F.cross_entropy(logits, labels_of(targets))
        return lambda logits, targets: shape(params, logits, targets)

    def at_values(self, params: Sequence[Tensor]) -> CompositeLoss:
        """This shape less what `params` switch off — a term of weight 0, smoothing of 0, a
        weight net whose output layer is 0 (every weight equal: the plain mean) — where
        `params` are fixed values (a replayed schedule, a fixed point, a frozen teacher's
        proposal). Dropping them leaves the gradient the same, bit for bit (`0 * term` adds
        0; equal weights normalise to 1/B), and the fused cross-entropy differs from the sum
        of terms only in the last bit of the loss's value (tests/test_composite_loss.py).
        Parameters a gradient flows to, or that a `torch.func` transform holds, keep the
        whole shape."""
        return self._less(_values(params))

    def _less(self, values: dict[str, float] | None) -> CompositeLoss:
        """`at_values` from the values `_values` read (None: variables, the whole shape)."""
        if values is None:
            return self
        terms = tuple(t for t in self.terms if values[t] != 0.0)
        if not terms:  # every weight 0: the whole shape keeps the loss's graph to the logits
            return self
        reweight = self.reweight and values[REWEIGHT] != 0.0
        smoothing = self.smoothing and values["smoothing"] != 0.0
        return dataclasses.replace(self, terms=terms, smoothing=smoothing, reweight=reweight)

    def __call__(self, params: Sequence[Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        scale, per_sample, w = self._weighed(params, logits, targets)
        if w is None:
            return scale * per_sample.mean()
        return scale * (w * per_sample).sum() / w.sum()

    def contributions(self, params: Sequence[Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        """(B,): each sample's share of the batch loss, `exp(s) w_i l_i / mean(w)`; their
        mean is the loss (`LearnedLoss(reduction="none")`)."""
        scale, per_sample, w = self._weighed(params, logits, targets)
        return scale * per_sample if w is None else scale * w * per_sample / w.mean()

    def _weighed(
        self, params: Sequence[Tensor], logits: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The scale `exp(s)`, the (B,) losses `l_i` and the weight net's `w_i` (None
        when it is off)."""
        controls, w1, b1, w2, b2, *phi = params
        c = dict(zip(CONTROLS, controls.unbind()))
        per_sample = self.per_sample(c, phi, logits, targets)
        if not self.reweight:
            return c["log_scale"].exp(), per_sample, None
        hidden = torch.tanh(F.linear(per_sample.detach()[:, None], w1, b1))
        w = torch.sigmoid(F.linear(hidden, w2, b2)).squeeze(1)
        return c["log_scale"].exp(), per_sample, w

    def samplewise(self, params: Sequence[Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        """(logits, targets) -> the (B,) losses `l_i` at `params`, before any weighting or
        scale: what a per-sample reweighting method weighs (l2t/methods/reweighting.py)."""
        c, phi = dict(zip(CONTROLS, params[0].unbind())), params[5:]
        return lambda logits, targets: self.per_sample(c, phi, logits, targets)

    def per_sample(
        self, c: dict[str, Tensor], phi: Sequence[Tensor], logits: Tensor, targets: Tensor
    ) -> Tensor:
        """(B,): `l_i`, the weighted sum of the terms that are on."""
        labels = labels_of(targets)
        log_p = F.log_softmax(logits, dim=1)
        log_p_y = log_p.gather(1, labels[:, None]).squeeze(1)
        terms = []
        if "ce" in self.terms:
            ce = -log_p_y
            if self.smoothing:  # torch's label smoothing: (1 - eps) CE + eps CE to uniform
                ce = (1 - c["smoothing"]) * ce - c["smoothing"] * log_p.mean(dim=1)
            terms.append(c["ce"] * ce)
        if "rce" in self.terms:
            terms.append(c["rce"] * (-SCE_LOG_ZERO) * (1 - log_p_y.exp()))
        if "gce" in self.terms:
            terms.append(c["gce"] * (1 - (self.q * log_p_y).exp()) / self.q)
        if "kd" in self.terms:
            model = model_logits_of(targets)
            if model is None:
                raise ValueError("the composite loss's kd term needs distill.model")
            t = self.temperature
            terms.append(c["kd"] * t**2 * soft_kl(logits, model, t))
        if "dln" in self.terms:
            terms.append(c["dln"] * dln_loss(phi, logits, labels, per_sample=True))
        if not terms:  # every weight 0 and none moved: no loss
            return torch.zeros_like(log_p_y)
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total


def _values(params: Sequence[Tensor]) -> dict[str, float] | None:
    """The controls' values and, as `reweight`, the largest |entry| of the weight net's
    output layer — one host read, once per teacher step — or None where `params` are
    variables (a gradient flows to them or a `torch.func` transform holds them)."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    if any(p.requires_grad or wrapped(p) for p in params):
        return None
    controls, _, _, w2, b2 = params[:5]
    values = torch.cat([controls, w2.flatten().abs(), b2.flatten().abs()]).tolist()
    return {**dict(zip(CONTROLS, values)), REWEIGHT: max(values[len(CONTROLS) :])}


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """The composite at cross-entropy's point with nothing moved: cross-entropy itself, named
    so that `l2t.LearnedLoss` can hand it the whole call (`ignore_index`, (B, C, d...))."""
    return F.cross_entropy(logits, labels_of(targets))


def base_params(base: dict[str, float], phi: Sequence[Tensor] = (), seed: int = 0) -> list[Tensor]:
    """The loss parameters of the point `base`: its controls, a weight net whose output
    layer is zero (every weight exactly 1; its hidden layer drawn from `seed`), and the
    DLN's weights `phi` for the `dln` term."""
    controls = torch.tensor([base.get(name, 0.0) for name in CONTROLS])
    generator = torch.Generator().manual_seed(seed)
    w1 = torch.rand(WEIGHT_HIDDEN, 1, generator=generator) * 2 - 1
    b1 = torch.rand(WEIGHT_HIDDEN, generator=generator) * 2 - 1
    w2, b2 = torch.zeros(1, WEIGHT_HIDDEN), torch.zeros(1)
    return [controls, w1, b1, w2, b2, *(p.detach().clone() for p in phi)]


def controlled_size(ranges: dict[str, float]) -> int:
    """How many numbers a teacher sets: one per control with a range, and the weight net's
    output layer (WEIGHT_HIDDEN + 1) with `reweight`."""
    n = sum(1 for name in CONTROLS if ranges.get(name, 0.0) > 0)
    return n + (WEIGHT_HIDDEN + 1 if ranges.get(REWEIGHT, 0.0) > 0 else 0)


def params_from_unit(
    base: Sequence[Tensor], ranges: dict[str, float], unit: Tensor
) -> list[Tensor]:
    """Loss parameters that `unit` in [-1, 1]^n (`controlled_size(ranges)`) sets around
    `base`: each control with a range moves by at most its range (the term weights and
    eps kept >= 0, eps < 1), the weight net's output layer by at most `reweight`. At
    `unit = 0` the parameters are `base` exactly."""
    controls, w1, b1, w2, b2, *phi = base
    moved, pieces, zero = 0, [], unit.new_zeros(())
    for name in CONTROLS:
        if ranges.get(name, 0.0) > 0:
            pieces.append(ranges[name] * unit[moved])
            moved += 1
        else:
            pieces.append(zero)
    new = controls + torch.stack(pieces)
    low = torch.tensor([-math.inf] + [0.0] * (len(CONTROLS) - 1), device=new.device)
    high = torch.tensor([math.inf, math.inf, 0.999, *([math.inf] * 4)], device=new.device)
    new = torch.minimum(torch.maximum(new, low), high)
    if ranges.get(REWEIGHT, 0.0) > 0:
        out = ranges[REWEIGHT] * unit[moved:]
        w2 = w2 + out[:WEIGHT_HIDDEN].view_as(w2)
        b2 = b2 + out[WEIGHT_HIDDEN:].view_as(b2)
    return [new, w1, b1, w2, b2, *phi]
