"""A population advanced together with vmap (l2t/engine/population.py) computes what one student at
a time does: the step, the guard against a broken student, and the PES and ES estimates
built on it.

Batched kernels sum in another order than one student's, and in float32 how far apart the
two land depends on the CPU's kernels (AVX2 vs AVX-512), so the gradient comparisons run in
float64, where the reordering costs ~1e-16 relative per sum and a bound of 1e-9 is met with
orders of magnitude to spare on any machine."""

import dataclasses

import pytest
import torch
from precision import as_float64

from l2t.config import parts, teachers
from l2t.engine.lifetime import advance, start
from l2t.engine.population import advance_together
from l2t.engine.seeds import student_index
from l2t.estimators import ESTIMATORS, EstimatorSettings


def _setup(cfg, **teacher):
    cfg = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, **teacher))
    splits = as_float64(parts.splits(cfg, torch.device("cpu")))
    base = [p.double() for p in parts.base_loss(cfg)]
    return parts.task(cfg, splits), teachers.teacher(cfg, base)


def _perturbed(theta, members, scale=0.01):
    generator = torch.Generator().manual_seed(7)
    return [
        {k: v + scale * torch.randn(v.shape, generator=generator) for k, v in theta.items()}
        for _ in range(members)
    ]


def _assert_same_step(one, together):
    assert one.diverged == together.diverged
    torch.testing.assert_close(together.val_loss, one.val_loss)
    torch.testing.assert_close(together.val_acc, one.val_acc)
    torch.testing.assert_close(together.life.obs.student, one.life.obs.student)
    for name, p in one.life.student.params.items():
        torch.testing.assert_close(together.life.student.params[name], p)
    for name, m in one.life.student.momentum.items():
        torch.testing.assert_close(together.life.student.momentum[name], m)
    assert together.life.student.step == one.life.student.step
    for name, h in one.life.teacher.items():
        torch.testing.assert_close(together.life.teacher[name], h)
    if one.life.obs.grad is None:
        assert together.life.obs.grad is None
    else:  # the observed dL_val/dphi: a second-order pass through the K steps
        torch.testing.assert_close(together.life.obs.grad, one.life.obs.grad)
    assert (one.val_grad is None) == (together.val_grad is None)
    for a, b in zip(one.val_grad or (), together.val_grad or ()):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize(
    ("student", "observe", "chain"),
    [
        ("mlp", "state", False),
        ("cnn1d", "state", False),
        ("mlp", "grad", False),
        ("mlp", "grad", True),
    ],
)
def test_a_vmapped_teacher_step_equals_one_student_at_a_time(
    tiny_cfg, student, observe, chain, float64
):
    """First order, observing dL_val/dphi (a second-order pass per member), and greedy's
    chain (dL_val/dphi returned with the proposal's graph to theta)."""
    cfg = dataclasses.replace(
        tiny_cfg, student=student, optim=dataclasses.replace(tiny_cfg.optim, momentum=0.9)
    )
    task, policy = _setup(cfg, observe=observe)
    thetas = [
        {k: v.requires_grad_(chain) for k, v in th.items()} for th in _perturbed(policy.theta(), 3)
    ]
    lives = [start(task, policy, seed) for seed in (11, 12, 13)]
    for _ in range(2):  # the second step starts from momentum buffers and a teacher state
        one = [
            advance(task, policy, theta, life, differentiable=chain, chain=chain)
            for theta, life in zip(thetas, lives)
        ]
        together = advance_together(task, policy, thetas, lives, chain=chain)
        for a, b in zip(one, together):
            _assert_same_step(a, b)
        lives = [step.life.detach() for step in one]
    assert lives[0].student.momentum  # the momentum path was exercised


def test_members_at_different_steps_train_at_their_own_cosine_rate(tiny_cfg, float64):
    """`optim.cosine=true` with momentum: a staggered population's members are at different
    student steps, so each trains at its own rate from `Task.sgd_at` (once the vmapped path
    took the constant base rate for all, and PES trained for another regime than the one
    selection judged). The rates differ by far more than the bound: a constant rate fails."""
    optim = dataclasses.replace(tiny_cfg.optim, momentum=0.9, cosine=True)
    task, policy = _setup(dataclasses.replace(tiny_cfg, optim=optim), observe="state")
    thetas = _perturbed(policy.theta(), 3)
    lives = [start(task, policy, seed) for seed in (31, 32, 33)]
    for j, life in enumerate(lives):  # members 0, 2 and 4 teacher steps into their budget
        for _ in range(2 * j):
            life = advance(task, policy, thetas[j], life).life
        lives[j] = life
    rates = {task.sgd_at(life.student.step).lr for life in lives}
    assert len(rates) == 3 and max(rates) - min(rates) > 0.01
    for _ in range(2):
        one = [advance(task, policy, th, life) for th, life in zip(thetas, lives)]
        together = advance_together(task, policy, thetas, lives)
        for a, b in zip(one, together):
            _assert_same_step(a, b)
        lives = [step.life for step in one]


def test_a_member_whose_loss_breaks_its_student_is_retaken_under_the_base_loss(tiny_cfg, float64):
    """A loss scale of e^12 breaks the student of one member; the others train as usual."""
    task, policy = _setup(tiny_cfg, scale=12.0)
    theta = policy.theta()
    dtypes = {p.dtype for p in [*theta.values(), *task.init(0).params.values()]}
    assert dtypes == {torch.float64}
    broken = dict(theta, **{"scale_head.bias": theta["scale_head.bias"] + 50.0})
    thetas = [theta, broken, theta]
    lives = [start(task, policy, seed) for seed in (21, 22, 23)]
    one = [advance(task, policy, th, life) for th, life in zip(thetas, lives)]
    together = advance_together(task, policy, thetas, lives)
    assert [s.diverged for s in together] == [False, True, False]
    for a, b in zip(one, together):
        _assert_same_step(a, b)


@pytest.mark.parametrize("name", ["pes", "es"])
def test_pes_and_es_estimate_the_same_gradient_vmapped(tiny_cfg, name, float64):
    """Three updates of a staggered population (PES: students end and successors start on
    the way) give the same gradients and students with and without vmap."""
    cfg = dataclasses.replace(tiny_cfg, steps=30) if name == "es" else tiny_cfg
    task, policy = _setup(cfg)
    settings = EstimatorSettings(
        population=3, horizon=2, sigma=0.01, objective="val_loss", objective_from=0.0, seed=0
    )
    one = ESTIMATORS[name](task, policy, settings)
    together = ESTIMATORS[name](task, policy, dataclasses.replace(settings, vmap=True))
    theta = policy.theta()
    for _ in range(3 if name == "pes" else 1):
        grad_one, _ = one.estimate(theta)
        grad_together, _ = together.estimate(theta)
        assert any(g.abs().sum() > 0 for g in grad_one.values())
        for key, g in grad_one.items():  # a sum over members: compare it as a vector
            assert (grad_together[key] - g).norm() <= 1e-9 * g.norm()
        theta = {k: v - 0.1 * grad_one[k] for k, v in theta.items()}
    if name == "pes":
        assert one.pairs is not None and together.pairs is not None
        assert [p[0].seed for p in one.pairs] == [p[0].seed for p in together.pairs]
        assert any(student_index(p[0].seed) >= 3 for p in one.pairs)  # a successor started


def test_a_population_of_two_architectures_is_vmapped_one_architecture_at_a_time(tiny_cfg, float64):
    """`students_mix`: members 0 and 2 train MLPs, member 1 a CNN; each architecture is one
    batched call, and the estimate is the one-at-a-time estimate."""
    mlp, policy = _setup(tiny_cfg)
    cnn, _ = _setup(dataclasses.replace(tiny_cfg, student="cnn1d"))
    settings = EstimatorSettings(
        population=3, horizon=2, sigma=0.01, objective="val_loss", objective_from=0.0, seed=0
    )
    one = ESTIMATORS["pes"]([mlp, cnn], policy, settings)
    together = ESTIMATORS["pes"]([mlp, cnn], policy, dataclasses.replace(settings, vmap=True))
    theta = policy.theta()
    grad_one, grad_together = one.estimate(theta)[0], together.estimate(theta)[0]
    for key, g in grad_one.items():
        assert (grad_together[key] - g).norm() <= 1e-9 * g.norm()
    assert one.pairs is not None and together.pairs is not None
    shapes = [sorted(p[0].student.params) for p in together.pairs]
    assert shapes[0] == shapes[2] != shapes[1]  # MLP, CNN, MLP


@pytest.mark.parametrize("observe", ["grad", "state"])
def test_greedy_estimates_the_same_gradient_vmapped(tiny_cfg, observe, float64):
    """Five greedy updates of three students (one ends and its successor starts): the same
    gradients with the students' dL_val/dphi from one vmapped pass and one backward."""
    task, policy = _setup(tiny_cfg, observe=observe)
    settings = EstimatorSettings(
        population=3, horizon=1, sigma=0.0, objective="val_loss", objective_from=0.0, seed=0
    )
    one = ESTIMATORS["greedy"](task, policy, settings)
    together = ESTIMATORS["greedy"](task, policy, dataclasses.replace(settings, vmap=True))
    theta = policy.theta()
    for _ in range(5):
        (grad_one, log_one), (grad_together, log_together) = (
            one.estimate(theta),
            together.estimate(theta),
        )
        assert any(g.abs().sum() > 0 for g in grad_one.values())
        for key, g in grad_one.items():
            assert (grad_together[key] - g).norm() <= 1e-9 * g.norm()
        assert log_together["meta_loss"] == pytest.approx(log_one["meta_loss"], rel=1e-12)
        theta = {k: v - 0.1 * grad_one[k] for k, v in theta.items()}
    assert one.lives is not None and together.lives is not None
    assert [life.seed for life in one.lives] == [life.seed for life in together.lives]
    assert any(student_index(life.seed) >= 3 for life in one.lives)  # a successor started


@pytest.mark.parametrize("family", ["dln", "composite"])
def test_a_distilling_population_is_vmapped_like_one_student_at_a_time(tiny_cfg, family, float64):
    """Soft labels from a model's logits (the DLN's label slots; the composite's KD term)
    batch under vmap: the one-hot labels are a comparison, not `F.one_hot`."""
    from l2t.data.distill import random_model, with_model
    from l2t.engine.population import unbatchable

    loss = {"family": family}
    if family == "composite":
        loss.update(base="kd", ranges="kd=0.5,log_scale=0.5,reweight=2")
    cfg = dataclasses.replace(
        tiny_cfg,
        loss=dataclasses.replace(tiny_cfg.loss, **loss),
        distill=dataclasses.replace(tiny_cfg.distill, model="given", mix=0.5),
        teacher=dataclasses.replace(
            tiny_cfg.teacher, agent="control" if family == "composite" else "lstm"
        ),
    )
    data = parts.splits(cfg, torch.device("cpu"), with_model=False)
    data = as_float64(data)
    splits = with_model(data, random_model("mlp", data, 3))
    task = parts.task(cfg, splits)
    assert unbatchable(task.model, splits) is None
    policy = teachers.teacher(cfg, [p.double() for p in parts.base_loss(cfg)])
    thetas = _perturbed(policy.theta(), 2)
    lives = [start(task, policy, seed) for seed in (21, 22)]
    for _ in range(2):
        one = [advance(task, policy, th, life) for th, life in zip(thetas, lives)]
        for a, b in zip(one, advance_together(task, policy, thetas, lives)):
            _assert_same_step(a, b)
        lives = [step.life.detach() for step in one]
