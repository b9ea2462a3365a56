"""The student as a value: `unroll` against torch's own SGD, and gradients through two
consecutive unrolls (what truncated backprop differentiates) against finite differences. Two
computations that sum in different orders are compared in float64: in float32 their gap
depends on the CPU's kernels."""

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from l2t.engine.student_state import SGD, state_of, unroll, validate
from l2t.engine.students import build_student
from l2t.losses.dln import DynamicLossNetwork, dln_loss


def test_unroll_reproduces_torch_sgd_with_batchnorm_and_momentum():
    torch.manual_seed(0)
    student = build_student("resnet8", (3, 8, 8), 10).double()  # float64: see below
    reference = copy.deepcopy(student)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(6, 4, 3, 8, 8, dtype=torch.float64), torch.randint(10, (6, 4))
    state = state_of(student)
    sgd = SGD(0.1, 0.9, 1e-3)
    for half in (slice(0, 3), slice(3, 6)):  # two unrolls: momentum carries across them
        state = unroll(student, state, F.cross_entropy, x[half], y[half], sgd)
        for xb, yb in zip(x[half], y[half]):
            reference.train()
            optimizer.zero_grad()
            F.cross_entropy(reference(xb), yb).backward()
            optimizer.step()
    assert state.step == 6 and bool(state.finite)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(state.params[name], p.detach())
        torch.testing.assert_close(state.momentum[name], optimizer.state[p]["momentum_buffer"])
    for name, b in reference.named_buffers():  # BatchNorm running statistics
        torch.testing.assert_close(state.buffers[name], b)
    # states are values: training on from a state leaves it as it was
    before = {n: p.clone() for n, p in state.params.items()}
    unroll(student, state, F.cross_entropy, x[:2], y[:2], sgd)
    for name, p in state.params.items():
        assert torch.equal(p, before[name])


def test_first_and_second_order_unrolls_agree():
    torch.manual_seed(0)
    student = build_student("resnet8", (3, 8, 8), 10).double()
    x, y = torch.randn(3, 4, 3, 8, 8, dtype=torch.float64), torch.randint(10, (3, 4))
    sgd = SGD(0.1, 0.9, 1e-3)
    init = state_of(student)  # the module is only the architecture: a scratch space
    first = unroll(student, init, F.cross_entropy, x, y, sgd)
    second = unroll(student, init, F.cross_entropy, x, y, sgd, create_graph=True)
    for name in first.params:
        torch.testing.assert_close(first.params[name], second.params[name].detach())
        torch.testing.assert_close(first.momentum[name], second.momentum[name].detach())
    for name in first.buffers:
        torch.testing.assert_close(first.buffers[name], second.buffers[name])
    torch.testing.assert_close(first.update_norm, second.update_norm)


@pytest.mark.parametrize("backend", ["func", "higher"])
def test_gradient_through_two_unrolls_matches_finite_differences(backend):
    torch.manual_seed(0)
    student = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    ).double()
    x, y = torch.randn(2, 3, 5, 3, dtype=torch.float64), torch.randint(3, (2, 3, 5))
    xv, yv = torch.randn(7, 3, dtype=torch.float64), torch.randint(3, (7,))
    base = [w.detach().double() for w in DynamicLossNetwork(hidden=6, layers=2).phi]
    sgd = SGD(0.3, 0.5, 1e-3)

    def val_loss(phis):  # a different loss in each of two consecutive unrolls
        state = state_of(student)
        for phi, xs, ys in zip(phis, x, y):
            loss = functools.partial(_dln, phi)
            state = unroll(student, state, loss, xs, ys, sgd, True, backend)
        return validate(student, state, xv, yv)[0]

    phis = [[w.clone().requires_grad_() for w in base] for _ in range(2)]
    leaves = [w for phi in phis for w in phi]
    grads = torch.autograd.grad(val_loss(phis), leaves)
    generator = torch.Generator().manual_seed(1)
    direction = [torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in leaves]

    def shifted(sign):
        moved = [(w + sign * 1e-6 * d).detach() for w, d in zip(leaves, direction)]
        return val_loss([moved[: len(base)], moved[len(base) :]])

    numeric = (shifted(1) - shifted(-1)) / 2e-6
    analytic = sum((g * d).sum() for g, d in zip(grads, direction))
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-9)
    assert grads[0].abs().sum() > 0  # the first unroll's loss reaches the final val loss


def _dln(phi, z, t):
    return dln_loss(phi, z, t)


def test_backends_agree_with_batchnorm():
    torch.manual_seed(0)
    student = build_student("resnet8", (3, 8, 8), 10).double()
    x, y = torch.randn(2, 4, 3, 8, 8, dtype=torch.float64), torch.randint(10, (2, 4))
    init = state_of(student)
    network = DynamicLossNetwork(hidden=6, layers=2)
    phi = [w.detach().double().requires_grad_() for w in network.phi]
    results = []
    for backend in ("func", "higher"):
        loss_fn = functools.partial(_dln, phi)
        state = unroll(student, init, loss_fn, x, y, SGD(0.1, 0.9), True, backend)
        loss = validate(student, state, x[0], y[0])[0]
        results.append((state, torch.autograd.grad(loss, phi)))
    (a, ga), (b, gb) = results
    for name in a.params:
        torch.testing.assert_close(a.params[name], b.params[name])
    for name in a.buffers:
        torch.testing.assert_close(a.buffers[name], b.buffers[name])
    for g1, g2 in zip(ga, gb):
        torch.testing.assert_close(g1, g2)


def test_divergence_is_a_device_flag():
    torch.manual_seed(0)
    student = build_student("mlp", (40,), 10)
    x, y = torch.randn(2, 4, 40), torch.randint(10, (2, 4))
    state = unroll(
        student, state_of(student), lambda z, t: 1e30 * F.cross_entropy(z, t), x, y, SGD(1.0)
    )
    assert state.finite.device == x.device and not bool(state.finite)
