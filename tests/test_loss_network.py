import pytest
import torch

from l2t.losses.dln import DynamicLossNetwork, dln_loss, pairwise_logistic_loss


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_scalar_loss_for_any_class_count_and_target_logit_goes_up(classes):
    network = DynamicLossNetwork()
    network.fit(steps=300)
    logits = torch.randn(8, classes, requires_grad=True)
    targets = torch.randint(classes, (8,))
    loss = network(logits, targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    target_grad = logits.grad.gather(1, targets[:, None])
    assert (target_grad < 0).all(), "descending the loss must raise every target logit"


def test_fitted_dln_mimics_pairwise_logistic_gradients():
    network = DynamicLossNetwork()
    network.fit(steps=1000)
    z = 2.0 * torch.randn(256, 10)
    y = torch.randint(10, (256,))
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    network(z1, y).backward()
    pairwise_logistic_loss(z2, y).backward()
    cosine = torch.nn.functional.cosine_similarity(z1.grad, z2.grad, dim=1).mean()
    assert cosine > 0.9
    assert 0.8 < z1.grad.norm() / z2.grad.norm() < 1.25


def test_pair_sum_matches_the_pair_formula():
    """dln_loss sums the non-target pairs and averages over samples."""
    phi = [torch.eye(4)[:1] * 0 + torch.tensor([[1.0, -1.0, 0.0, 0.0]]), torch.ones(1, 1)]
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    targets = torch.tensor([1])
    s = torch.sigmoid(logits[0])
    expected = torch.nn.functional.leaky_relu(s[1] - s[0], 0.01) + torch.nn.functional.leaky_relu(
        s[1] - s[2], 0.01
    )
    assert torch.allclose(dln_loss(phi, logits, targets), expected)


def test_gradient_scale_reads_a_rescaled_loss():
    from l2t.losses.dln import gradient_scale

    phi = [w.detach() for w in DynamicLossNetwork(hidden=8, layers=2).phi]
    doubled = [*phi[:-1], 2.0 * phi[-1]]  # the loss is linear in its last layer's weights
    assert gradient_scale(phi, phi) == 1.0
    assert abs(gradient_scale(doubled, phi) - 2.0) < 1e-5


def test_a_dln_started_as_pairwise_sce_gives_up_on_confidently_wrong_pairs():
    torch.manual_seed(0)
    robust, logistic = DynamicLossNetwork(), DynamicLossNetwork()
    robust.fit("pairwise_sce", steps=600)
    logistic.fit("pairwise_logistic", steps=600)
    # one pair, two classes: the given label's logit far below the other's, then near it
    pulls = {}
    for name, network in (("robust", robust), ("logistic", logistic)):
        z = torch.tensor([[-2.0, 2.0], [0.0, 0.5]], requires_grad=True)
        network(z, torch.tensor([0, 0])).backward()
        pulls[name] = -2 * z.grad[:, 0]  # per sample: the loss is the mean of two
    assert pulls["logistic"][0] > 0.8, "the logistic loss pulls a confidently wrong pair hard"
    assert pulls["robust"][0] < 0.3 * pulls["logistic"][0], "the bounded loss lets it go"
    assert pulls["robust"][1] > 0.5, "and still learns from pairs near the boundary"


@pytest.mark.parametrize("soft", [False, True])
def test_the_folded_non_target_form_equals_the_four_feature_form(soft):
    """dln_loss (two features, constant slots folded into the first layer, non-target pairs
    only) is the four-feature DLN summed over non-target pairs: same loss, same gradients."""
    from l2t.losses.dln import dln_apply, pair_features
    from l2t.losses.labels import pack

    torch.manual_seed(3)
    phi = [w.detach().double().requires_grad_() for w in DynamicLossNetwork(12, 3).phi]
    logits = (2 * torch.randn(9, 7)).double().requires_grad_()
    labels = torch.randint(7, (9,))
    targets = pack(labels, torch.randn(9, 7).double()) if soft else labels
    mix = 0.5 if soft else 0.0

    def four_feature() -> torch.Tensor:
        pairs = dln_apply(phi, pair_features(logits, targets, 2.0, mix))
        return pairs.scatter(1, labels[:, None], 0.0).sum(dim=1).mean()

    folded, reference = dln_loss(phi, logits, targets, 2.0, mix), four_feature()
    assert torch.allclose(folded, reference, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(folded, [logits, *phi])
    expected = torch.autograd.grad(reference, [logits, *phi])
    for g, e in zip(grads, expected):
        assert torch.allclose(g, e, rtol=1e-10, atol=1e-12)
