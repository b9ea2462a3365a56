import pytest
import torch
import torch.nn.functional as F

from l2t.commands.compare import early_stopped
from l2t.engine.teaching import EpisodeResult
from l2t.losses.fixed import LOSSES, generalized_ce, soft_bootstrap, symmetric_ce


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(6, 5, generator=g)).double()
    targets = torch.randint(5, (6,), generator=g)
    return logits, targets


def test_gce_matches_its_formula_and_tends_to_ce():
    logits, y = _batch()
    p_y = logits.softmax(1)[torch.arange(6), y]
    assert torch.allclose(generalized_ce(logits, y, 0.7), ((1 - p_y**0.7) / 0.7).mean())
    assert torch.allclose(generalized_ce(logits, y, 1e-6), F.cross_entropy(logits, y), atol=1e-4)


def test_sce_matches_its_formula_and_is_ce_without_the_reverse_term():
    logits, y = _batch(1)
    p = logits.softmax(1)
    onehot = F.one_hot(y, 5).double()
    reverse = -(p * torch.log(onehot.clamp_min(torch.e**-4))).sum(1)  # log 0 := -4
    expected = 0.1 * F.cross_entropy(logits, y) + reverse.mean()
    assert torch.allclose(symmetric_ce(logits, y), expected)
    assert torch.allclose(symmetric_ce(logits, y, 1.0, 0.0), F.cross_entropy(logits, y))


def test_bootstrap_matches_its_formula_and_is_ce_at_beta_1():
    logits, y = _batch(2)
    log_p = logits.log_softmax(1)
    target = 0.95 * F.one_hot(y, 5) + 0.05 * log_p.exp()
    assert torch.allclose(soft_bootstrap(logits, y), -(target * log_p).sum(1).mean())
    assert torch.allclose(soft_bootstrap(logits, y, 1.0), F.cross_entropy(logits, y))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_fixed_loss_has_the_gradient_of_its_value(name):
    logits, y = _batch(3)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: LOSSES[name](z, y), (logits,))


def test_early_stopping_reports_the_test_accuracy_at_the_best_validation_point():
    curve = [
        {"step": 0, "val_acc": 0.1, "test_acc": 0.1},
        {"step": 10, "val_acc": 0.5, "test_acc": 0.4},
        {"step": 20, "val_acc": 0.5, "test_acc": 0.45},
        {"step": 30, "val_acc": 0.3, "test_acc": 0.3},
    ]
    result = early_stopped(EpisodeResult(curve, 0.3, 0.3))
    assert (result.val_acc, result.test_acc) == (0.5, 0.4)
