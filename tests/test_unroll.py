import copy

import pytest
import torch
import torch.nn.functional as F

from l2t.loss_network import DynamicLossNetwork, dln_loss
from l2t.students import build_student
from l2t.unroll import commit, unroll


def _tiny_problem(dtype=torch.float64):
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    student = student.to(dtype)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.3, momentum=0.5, weight_decay=1e-3)
    x = torch.randn(3, 5, 3, dtype=dtype)
    y = torch.randint(3, (3, 5))
    xv, yv = torch.randn(7, 3, dtype=dtype), torch.randint(3, (7,))
    dln = DynamicLossNetwork(hidden=6, layers=2).to(dtype)
    return student, optimizer, x, y, xv, yv, [w.detach() for w in dln.phi]


def _val_loss(phi, backend, problem):
    student, optimizer, x, y, xv, yv, _ = problem
    result = unroll(student, optimizer, lambda z, t: dln_loss(phi, z, t), x, y, xv, backend)
    return F.cross_entropy(result.val_logits, yv)


@pytest.mark.parametrize("backend", ["higher", "func"])
def test_meta_gradient_matches_finite_differences(backend):
    problem = _tiny_problem()
    phi = [w.clone().requires_grad_() for w in problem[-1]]
    grads = torch.autograd.grad(_val_loss(phi, backend, problem), phi)
    generator = torch.Generator().manual_seed(1)
    direction = [torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in phi]
    eps = 1e-5
    plus = _val_loss([w + eps * d for w, d in zip(phi, direction)], backend, problem)
    minus = _val_loss([w - eps * d for w, d in zip(phi, direction)], backend, problem)
    numeric = (plus - minus) / (2 * eps)
    analytic = sum((g * d).sum() for g, d in zip(grads, direction))
    assert torch.allclose(analytic, numeric, rtol=1e-5, atol=1e-9)


def test_backends_agree():
    problem = _tiny_problem()
    results = []
    for backend in ("higher", "func"):
        phi = [w.clone().requires_grad_() for w in problem[-1]]
        loss = _val_loss(phi, backend, problem)
        results.append((loss, torch.autograd.grad(loss, phi)))
    (l1, g1), (l2, g2) = results
    assert torch.allclose(l1, l2)
    assert all(torch.allclose(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("backend", ["higher", "func"])
def test_commit_keeps_batchnorm_statistics_and_momentum(backend):
    torch.manual_seed(0)
    student = build_student("resnet8", (3, 8, 8), 10)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(3, 6, 3, 8, 8), torch.randint(10, (3, 6))
    before = copy.deepcopy(student.state_dict())
    result = unroll(student, optimizer, F.cross_entropy, x, y, torch.randn(4, 3, 8, 8), backend)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items()), (
        "an unroll must not touch the real student"
    )
    commit(student, optimizer, result)
    bn = student.stem[1]
    assert not torch.equal(bn.running_mean, before["stem.1.running_mean"])
    assert not torch.equal(bn.running_var, before["stem.1.running_var"])
    assert bn.num_batches_tracked.item() == 3
    # the same three steps taken by torch's own SGD give the same statistics and momentum
    reference = build_student("resnet8", (3, 8, 8), 10)
    reference.load_state_dict(before)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for xb, yb in zip(x, y):
        ref_opt.zero_grad()
        F.cross_entropy(reference(xb), yb).backward()
        ref_opt.step()
    assert torch.allclose(bn.running_mean, reference.stem[1].running_mean, atol=1e-6)
    for p, q in zip(student.parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
        assert torch.allclose(
            optimizer.state[p]["momentum_buffer"], ref_opt.state[q]["momentum_buffer"], atol=1e-5
        )
