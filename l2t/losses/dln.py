"""The dynamic loss network (DLN) of L2T-DLN: the student's loss is a small network.

1-vs-1 transformation: for each sample and each non-target class j the DLN sees
`[sigmoid(z_y), sigmoid(z_j), 1, 0]` and returns a scalar. Summing a sample's C-1 pair
losses and averaging over samples keeps cross-entropy's gradient scale (the loss scale acts
as a learning rate, ../shared/DESIGN.md §1), and because the DLN only sees pairs one network serves
any number of classes. Its weights `phi` are plain tensors so a teacher can produce them as
a differentiable function of its own parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2t.losses.fixed import SCE_ALPHA, SCE_BETA, SCE_LOG_ZERO
from l2t.losses.labels import labels_of, soft_labels

NEGATIVE_SLOPE = 0.01


def pair_features(
    logits: Tensor, targets: Tensor, temperature: float = 1.0, mix: float = 0.0
) -> Tensor:
    """(B, C) logits -> (B, C, 4) features `[s(z_y), s(z_j), q_y, q_j]` for every class j:
    `q` the one-hot label (`[.., .., 1, 0]`), or with a model's logits in `targets` the soft
    labels `l2t.losses.labels.soft_labels` (docs/design.md §6)."""
    labels = labels_of(targets)
    probs = torch.sigmoid(logits)
    p_target = probs.gather(1, labels[:, None]).expand_as(probs)
    if targets.ndim == 1:  # hard labels: the constant slots, exactly as without distillation
        q_target, q = torch.ones_like(probs), torch.zeros_like(probs)
    else:
        soft = soft_labels(targets, logits.shape[1], temperature, mix).to(probs)
        q_target = soft.gather(1, labels[:, None]).expand_as(soft)
        q = soft.scatter(1, labels[:, None], 0.0)  # the target's own pair is masked anyway
    return torch.stack([p_target, probs, q_target, q], dim=-1)


def weights_and_mix(params: Sequence[Tensor]) -> tuple[list[Tensor], Tensor | None]:
    """The DLN's weight matrices, and the soft labels' mix when a teacher sets it: that
    teacher appends it to the weights as one 0-dim tensor (docs/design.md §6)."""
    if params[-1].ndim == 0:
        return list(params[:-1]), params[-1]
    return list(params), None


def dln_apply(phi: Sequence[Tensor], features: Tensor) -> Tensor:
    """The bias-free MLP with LeakyReLU: (..., 4) -> (...)."""
    hidden = features
    for weight in phi[:-1]:
        hidden = F.leaky_relu(hidden @ weight.T, NEGATIVE_SLOPE)
    return (hidden @ phi[-1].T).squeeze(-1)


def other_classes(labels: Tensor, classes: int) -> Tensor:
    """(B,) labels -> (B, C-1) the indices of each sample's non-target classes, in order."""
    others = torch.arange(classes - 1, device=labels.device).expand(len(labels), -1)
    return others + (others >= labels[:, None]).long()


def dln_loss(
    phi: Sequence[Tensor],
    logits: Tensor,
    targets: Tensor,
    temperature: float = 1.0,
    mix: float | Tensor = 0.0,
    per_sample: bool = False,
) -> Tensor:
    """Mean over samples of the summed pair losses over the sample's non-target classes
    (with `per_sample`, each sample's sum: (B,)).

    The same function as `dln_apply(phi, pair_features(...))` summed over the non-target
    pairs, computed on the B·(C-1) non-target pairs only; with hard labels the constant
    slots `[1, 0]` are folded into the first layer (its third column acts as a bias), so it
    multiplies two features, not four (tested against the four-feature form). A mix at the
    end of `phi` (`weights_and_mix`) replaces `mix`.
    """
    phi, set_mix = weights_and_mix(phi)
    mix = mix if set_mix is None else set_mix
    labels = labels_of(targets)
    others = other_classes(labels, logits.shape[1])
    probs = torch.sigmoid(logits)
    p_target = probs.gather(1, labels[:, None]).expand_as(others)
    p_other = probs.gather(1, others)
    if targets.ndim == 1:
        first = phi[0]
        pairs = torch.stack([p_target, p_other], -1).view(-1, 2)
        hidden = F.leaky_relu(F.linear(pairs, first[:, :2], first[:, 2]), NEGATIVE_SLOPE)
        rest = phi[1:]
    else:
        soft = soft_labels(targets, logits.shape[1], temperature, mix).to(probs)
        q_target = soft.gather(1, labels[:, None]).expand_as(others)
        hidden = torch.stack([p_target, p_other, q_target, soft.gather(1, others)], -1)
        hidden, rest = hidden.view(-1, 4), phi
    for weight in rest[:-1]:  # the pairs as one (B·(C-1), width) matrix: one mm a layer
        hidden = F.leaky_relu(F.linear(hidden, weight), NEGATIVE_SLOPE)
    summed = F.linear(hidden, rest[-1]).view(others.shape).sum(dim=1)
    return summed if per_sample else summed.mean()


def pairwise_logistic_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """sum_{j != y} softplus(z_j - z_y), averaged over samples: the DLN's initial loss."""
    return pairwise_logistic_per_sample(logits, targets).mean()


def pairwise_logistic_per_sample(logits: Tensor, targets: Tensor) -> Tensor:
    """(B,): each sample's sum_{j != y} softplus(z_j - z_y)."""
    margins = logits - logits.gather(1, targets[:, None])
    return F.softplus(margins).scatter(1, targets[:, None], 0.0).sum(dim=1)


def _pairwise_sce(margin: Tensor) -> Tensor:
    """Symmetric cross-entropy on the pair's probability `p = s(z_y - z_j)` (the SCE of
    `l2t.losses.fixed` for two classes, its constants): `alpha (-log p) - beta A (1 - p)`."""
    return SCE_ALPHA * F.softplus(-margin) - SCE_BETA * SCE_LOG_ZERO * torch.sigmoid(-margin)


PAIR_LOSSES = {  # the pair loss of the margin z_y - z_j that the DLN starts as (loss.init)
    "pairwise_logistic": lambda margin: F.softplus(-margin),
    "pairwise_sce": _pairwise_sce,  # bounded: gives up on confidently wrong pairs (noise)
}


class DynamicLossNetwork(nn.Module):
    """Holds the base weights `phi_0`; the teacher's `phi` are offsets of or steps from them."""

    def __init__(self, hidden: int = 40, layers: int = 4) -> None:
        super().__init__()
        sizes = [4] + [hidden] * layers + [1]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_out, n_in)) for n_in, n_out in itertools.pairwise(sizes)
        )
        for weight in self.weights:
            nn.init.kaiming_uniform_(weight, a=NEGATIVE_SLOPE)

    @property
    def phi(self) -> list[Tensor]:
        return list(self.weights)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return dln_loss(self.phi, logits, targets)

    def fit(
        self,
        init: str = "pairwise_logistic",
        steps: int = 1000,
        seed: int = 0,
        soft_labels: bool = False,
    ) -> float:
        """Fit the DLN to a pair loss of `PAIR_LOSSES` so the student gets a sensible loss
        from step 0.

        Logit pairs are drawn from N(0, 2.5^2), the range students visit while training
        (measured: wider ranges fit the saturated corners at the expense of the middle).
        With `soft_labels` the label slots vary too and the target is the pair loss's
        distillation form `q_y f(z_y - z_j) + q_j f(z_j - z_y)` (the pair loss itself at
        one-hot labels; half the draws are one-hot, docs/design.md §6).
        Returns the final mean squared error of the fit.
        """
        pair_loss = PAIR_LOSSES[init]
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-2)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        error = torch.tensor(0.0)
        for _ in range(steps):
            z = 2.5 * torch.randn(2048, 2, generator=generator)
            probs = torch.sigmoid(z)
            q_y, q_j = torch.ones(2048), torch.zeros(2048)
            if soft_labels:
                q_y, q_j = _label_pairs(2048, generator)
            features = torch.stack([probs[:, 0], probs[:, 1], q_y, q_j], dim=-1)
            margin = z[:, 0] - z[:, 1]
            target = q_y * pair_loss(margin) + q_j * pair_loss(-margin)
            error = F.mse_loss(dln_apply(self.phi, features), target)
            optimizer.zero_grad()
            error.backward()
            optimizer.step()
            schedule.step()
        return error.item()


def _label_pairs(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(q_y, q_j) of soft labels: half one-hot (1, 0), half q_y ~ U(0, 1), q_j ~ U(0, 1 - q_y)."""
    q_y = torch.rand(n, generator=generator)
    q_j = (1 - q_y) * torch.rand(n, generator=generator)
    hard = torch.rand(n, generator=generator) < 0.5
    return torch.where(hard, 1.0, q_y), torch.where(hard, 0.0, q_j)


def loss_surface(phi: Sequence[Tensor], resolution: int = 50) -> Tensor:
    """Pair loss on a (p_target, p_other) grid, for plots: rows p_target, columns p_other."""
    grid = torch.linspace(0.01, 0.99, resolution)
    p_target, p_other = torch.meshgrid(grid, grid, indexing="ij")
    features = torch.stack(
        [p_target, p_other, torch.ones_like(p_target), torch.zeros_like(p_target)], dim=-1
    )
    with torch.no_grad():
        return dln_apply([w.detach().cpu() for w in weights_and_mix(phi)[0]], features)


def gradient_scale(phi: Sequence[Tensor], base_phi: Sequence[Tensor], samples: int = 2048) -> float:
    """Mean |dL/dlogits| under `phi` over that under `base_phi`, on logits drawn as in the
    fit (N(0, 2.5^2), 10 classes, a fixed draw): 1.0 is the base loss's gradient scale."""
    generator = torch.Generator().manual_seed(0)
    logits = 2.5 * torch.randn(samples, 10, generator=generator)
    targets = torch.randint(10, (samples,), generator=generator)

    def norm(weights: Sequence[Tensor]) -> float:
        z = logits.clone().requires_grad_()
        (grad,) = torch.autograd.grad(dln_loss([w.detach().cpu() for w in weights], z, targets), z)
        return grad.norm(dim=1).mean().item()

    return norm(phi) / norm(base_phi)
