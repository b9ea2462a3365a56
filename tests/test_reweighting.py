"""Online reweighting with the trusted set (l2t/methods/reweighting.py): the lookahead's gradient
in the per-sample weights is the finite difference of the validation loss after one
virtual step (float64), and students trained with MW-Net and L2RW learn."""

import pytest
import torch
from precision import as_float64
from torch.func import functional_call

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.config import from_dict, parts
from l2t.engine.teaching import run_student
from l2t.losses.composite import parse_ranges
from l2t.methods import reweighting
from l2t.methods.reweighting import BasePoint, Reweighted, cross_entropy, lookahead


def test_the_lookahead_gradient_in_the_sample_weights_is_the_finite_difference(float64):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    x, y = torch.randn(10, 6), torch.randint(3, (10,))
    x_val, y_val = torch.randn(7, 6), torch.randint(3, (7,))

    def call(weights, inputs):
        return functional_call(model, dict(zip(names, weights)), (inputs,))

    def val_after(eps):
        losses = cross_entropy(call(params, x), y)
        return lookahead(call, params, (eps * losses).sum(), 0.5, x_val, y_val)

    eps = torch.full((10,), 0.1, requires_grad=True)
    (grad,) = torch.autograd.grad(val_after(eps), eps)
    h = 1e-6
    for i in range(10):
        step = torch.zeros(10)
        step[i] = h
        numeric = (val_after(eps.detach() + step) - val_after(eps.detach() - step)) / (2 * h)
        assert grad[i].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("method", ["mwnet", "l2rw"])
def test_a_reweighted_student_learns(method):
    cfg = from_dict({"steps": 100, "eval_every": 50, "val_batch": 100, "unroll": {"steps": 5}})
    task = make_task(cfg)
    test = (task.splits.x_test, task.splits.y_test)
    result = run_student(task, Reweighted(task, method, 0, None), {}, 0, 50, test)
    assert [p["step"] for p in result.curve] == [0, 50, 100]
    assert result.test_acc > result.curve[0]["test_acc"] + 0.05  # it trained


def test_meta_starts_at_the_base_point_and_trains_its_student(float64, monkeypatch):
    """With its controls held (a zero meta learning rate) `meta` is the base point's fixed
    loss on the lifetime path's batches and schedule: the same student as `base`."""
    cfg = from_dict(
        {
            "steps": 40,
            "eval_every": 20,
            "val_batch": 100,
            "unroll": {"steps": 5},
            "optim": {"cosine": True},
            "loss": {"family": "composite", "base": "sce"},
        }
    )
    task = make_task(cfg, as_float64(parts.splits(cfg)))
    base = parts.base_loss(cfg)
    point = BasePoint(task.composite, base, parse_ranges(cfg.loss.ranges))
    fixed = run_student(task, FixedLossTeacher("base", base), {}, 0, 20)
    monkeypatch.setattr(reweighting, "META_LR", 0.0)
    held = run_student(task, Reweighted(task, "meta", 0, point), {}, 0, 20)
    assert [p["val_acc"] for p in held.curve] == pytest.approx(
        [p["val_acc"] for p in fixed.curve], abs=1e-12
    )
    monkeypatch.undo()
    moving = run_student(task, Reweighted(task, "meta", 0, point), {}, 0, 20)
    assert moving.curve != held.curve  # the lookahead moved the weights
