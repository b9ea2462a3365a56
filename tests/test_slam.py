"""SLaM's parts (l2t/methods/slam.py): the isotonic fit of the model's accuracy, the noise
model's mixing, and the loss on labeled and pool samples, in float64."""

import itertools

import torch
import torch.nn.functional as F

from l2t.losses.labels import pack
from l2t.methods.slam import Isotonic, margins, slam_loss, with_pool_flag


def _squared_error(fit: torch.Tensor, y: torch.Tensor) -> float:
    return float(((fit - y) ** 2).sum())


def test_the_isotonic_fit_is_the_best_non_decreasing_fit():
    """Against every non-decreasing fit on a grid of levels (brute force, 6 points)."""
    x = torch.tensor([0.3, 0.1, 0.5, 0.2, 0.6, 0.4], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    fit = Isotonic.fit(x, y)
    fitted = fit(x)
    order = x.argsort()
    assert torch.all(fitted[order].diff() >= 0)
    assert abs(float(fitted.sum()) - float(y.sum())) < 1e-12  # blocks keep their means
    levels = [i / 4 for i in range(5)]
    best = min(
        _squared_error(torch.tensor(v, dtype=torch.float64), y[order])
        for v in itertools.product(levels, repeat=6)
        if all(a <= b for a, b in itertools.pairwise(v))
    )
    assert _squared_error(fitted[order], y[order]) <= best + 1e-12
    assert float(fit(torch.tensor([0.0], dtype=torch.float64))) == float(fitted[order][0])


def test_the_loss_is_cross_entropy_on_labeled_samples_and_soft_cross_entropy_when_trusted():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, dtype=torch.float64)
    model = torch.randn(6, 5, dtype=torch.float64)
    labels = model.argmax(dim=1)
    targets = with_pool_flag(pack(labels, model), labeled=2)
    always = Isotonic(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    got = slam_loss(always, k=3, temperature=2.0)(logits, targets)
    soft = (model / 2.0).softmax(dim=1)
    pool = -(soft * logits.log_softmax(dim=1)).sum(dim=1)[2:]
    labeled = F.cross_entropy(logits[:2], labels[:2], reduction="none")
    assert torch.allclose(got, torch.cat([labeled, pool]).mean(), rtol=1e-12)


def test_where_the_model_is_unsure_the_student_is_not_pushed_to_its_label():
    """alpha 1/2, k 2: the model's label is as likely its other top-2 class as itself, so
    the noise model gives it probability 1/2 whatever the student predicts: no push."""
    torch.manual_seed(1)
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    model = torch.randn(4, 5, dtype=torch.float64)
    targets = with_pool_flag(pack(model.argmax(dim=1), model), labeled=0)
    half = Isotonic(torch.zeros(1, dtype=torch.float64), torch.full((1,), 0.5, dtype=torch.float64))
    loss = slam_loss(half, k=2, temperature=1e-3)  # the soft label: the model's top-1, one-hot
    f = logits.softmax(dim=1)
    y = model.argmax(dim=1)
    expected = -(0.5 * f.gather(1, y[:, None]) + 0.5 * (1 - f.gather(1, y[:, None]))).log()
    assert torch.allclose(loss(logits, targets), expected.mean(), rtol=1e-9)
    (grad,) = torch.autograd.grad(loss(logits, targets), logits)
    assert grad.abs().max() < 1e-9
    assert torch.all(margins(model) >= 0)
