"""Importance-weighted KD (l2t/methods/importance.py), in float64: KD itself where every
pseudo-label is trusted, and no pull at all from a pool sample whose pseudo-label is trusted
with probability 0."""

import torch

from l2t.data.distill import kd_loss
from l2t.losses.labels import pack
from l2t.methods.importance import importance_kd_loss, with_trust
from l2t.methods.slam import Isotonic, margins


def _batch(seed: int, labeled: int):
    torch.manual_seed(seed)
    logits = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    model = 3 * torch.randn(8, 5, dtype=torch.float64)
    labels = torch.cat([torch.randint(0, 5, (labeled,)), model[labeled:].argmax(dim=1)])
    return logits, model, labels, pack(labels, model)


def test_where_every_pseudo_label_is_trusted_it_is_kd():
    logits, model, labels, targets = _batch(0, labeled=3)
    one = Isotonic(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    got = importance_kd_loss(0.75, 2.0)(logits, with_trust(targets, 3, one))
    assert torch.allclose(got, kd_loss(logits, pack(labels, model), 0.75, 2.0), rtol=1e-12)


def test_a_pool_sample_trusted_with_probability_0_does_not_pull_the_student():
    """alpha 0 below the median margin, 1 above: the unsure pool samples get no gradient,
    the sure ones and the labeled ones their KD gradient, the mean still over the batch."""
    logits, model, labels, targets = _batch(1, labeled=2)
    cut = margins(model[2:]).median()
    step = Isotonic(
        torch.tensor([0.0, float(cut) + 1e-9], dtype=torch.float64),
        torch.tensor([0.0, 1.0], dtype=torch.float64),
    )
    loss = importance_kd_loss(0.5, 4.0)
    (grad,) = torch.autograd.grad(loss(logits, with_trust(targets, 2, step)), logits)
    trusted = torch.ones(8, dtype=torch.bool)
    trusted[2:] = margins(model[2:]) > cut
    assert 0 < int(trusted[2:].sum()) < 6
    assert grad[~trusted].abs().max() == 0
    expected = torch.zeros_like(logits)
    for i in torch.nonzero(trusted).flatten().tolist():
        one = kd_loss(logits[i : i + 1], pack(labels[i : i + 1], model[i : i + 1]), 0.5, 4.0)
        expected[i] = torch.autograd.grad(one / 8, logits)[0][i]
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-15)
