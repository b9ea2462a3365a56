"""Outer-gradient estimators on a task with a known short-horizon bias (tests/toy.py)."""

import pytest
import torch
from precision import as_float64
from toy import LossScalePolicy, quadratic_task

from l2t.estimators import ESTIMATORS, EstimatorSettings


def _config(**changes) -> EstimatorSettings:
    values = dict(
        population=4, horizon=10, sigma=0.1, objective="val_loss", objective_from=0.8, seed=0
    )
    values.update(changes)
    return EstimatorSettings(**values)


def _train(name: str, cfg: EstimatorSettings, updates: int = 8) -> float:
    task, policy = quadratic_task(steps=200), LossScalePolicy()
    estimator = ESTIMATORS[name](task, policy, cfg)
    theta = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=0.05)
    for _ in range(updates):
        theta.grad = estimator.estimate({"log_scale": theta.detach()})[0]["log_scale"]
        optimizer.step()
    return theta.item()


def test_the_toy_task_has_a_short_horizon_bias():
    """The premise of the next test: the final loss is lowest at a larger loss scale."""
    from l2t.engine.lifetime import advance, start

    task, policy = quadratic_task(steps=200), LossScalePolicy()

    def final_loss(log_scale: float) -> float:
        total = 0.0
        for seed in range(6):
            life = start(task, policy, seed)
            while not life.done(task):
                step = advance(task, policy, {"log_scale": torch.tensor(log_scale)}, life)
                life = step.life
            total += step.val_loss.item()
        return total

    assert final_loss(0.5) < final_loss(0.0) < final_loss(-0.3)


@pytest.mark.parametrize(
    ("name", "changes"),
    [("pes", {}), ("es", {}), ("tbptt", {"horizon": 40, "objective_from": 0.0})],
)
def test_long_horizon_estimators_raise_the_loss_scale(name, changes):
    assert _train(name, _config(**changes)) > 0.05


def test_greedy_lowers_the_loss_scale():
    assert _train("greedy", _config()) < -0.05


def test_pes_with_one_truncation_over_the_whole_run_is_antithetic_es():
    task, policy = quadratic_task(steps=100), LossScalePolicy()
    theta = {"log_scale": torch.tensor(0.2)}
    cfg = _config(horizon=task.teacher_steps)
    pes = ESTIMATORS["pes"](task, policy, cfg).estimate(theta)[0]["log_scale"]
    es = ESTIMATORS["es"](task, policy, cfg).estimate(theta)[0]["log_scale"]
    assert pes.item() != 0.0
    torch.testing.assert_close(pes, es)


def test_pes_is_unbiased_for_the_whole_lifetime_gradient():
    """Two truncations of half a lifetime each, summed, against exact backprop through the
    whole lifetime of the same students (both: mean validation loss over the lifetime)."""
    task, policy = quadratic_task(steps=100, noise=0.3), LossScalePolicy()
    theta = {"log_scale": torch.tensor(0.0)}
    pairs = 64
    exact_cfg = _config(population=pairs, horizon=task.teacher_steps, objective_from=0.0)
    exact = ESTIMATORS["tbptt"](task, policy, exact_cfg).estimate(theta)[0]["log_scale"]
    pes_cfg = _config(
        population=pairs,
        horizon=task.teacher_steps // 2,
        objective_from=0.0,
        sigma=0.01,
        stagger=False,
    )
    pes = ESTIMATORS["pes"](task, policy, pes_cfg)
    total = pes.estimate(theta)[0]["log_scale"] + pes.estimate(theta)[0]["log_scale"]
    # tbptt's objective is the mean over the window, PES's the lifetime-weighted sum: equal
    assert total.item() == pytest.approx(exact.item(), rel=0.35)


@pytest.mark.parametrize("name", ["greedy", "tbptt", "pes", "es"])
def test_a_population_split_over_processes_sums_to_the_whole_populations_estimate(name):
    """Two processes running members {0, 2} and {1} of a population of three: their estimates
    add up to the population's, over updates in which students finish and are replaced."""
    task, policy = quadratic_task(steps=60), LossScalePolicy()
    base = dict(population=3, horizon=2, objective_from=0.0)
    whole = ESTIMATORS[name](task, policy, _config(**base))
    shards = [ESTIMATORS[name](task, policy, _config(**base, rank=r, world=2)) for r in (0, 1)]
    assert [list(s.members()) for s in shards] == [[0, 2], [1]]
    theta = {"log_scale": torch.tensor(0.1)}
    for _ in range(4):
        joint, metrics = whole.estimate(theta)
        parts = [s.estimate(theta) for s in shards]
        torch.testing.assert_close(joint["log_scale"], sum(p[0]["log_scale"] for p in parts))
        for key, value in metrics.items():
            assert value == pytest.approx(sum(p[1][key] for p in parts))


def test_greedy_chained_through_the_observed_gradient_equals_two_backward_passes(float64):
    """With the teacher observing dL_val/dphi, greedy reuses that gradient and chains it to
    theta through the teacher alone; the result is the gradient of two full passes (float64:
    the two sum in different orders)."""
    from l2t.commands.training import make_estimator
    from l2t.config import from_dict, parts, teachers
    from l2t.estimators.greedy import Greedy

    class TwoPasses(Greedy):
        chain = False  # type: ignore[assignment]

    cfg = from_dict(
        {
            "steps": 30,
            "val_batch": 50,
            "unroll": {"steps": 3},
            "loss": {"init_steps": 10, "hidden": 8, "layers": 2},
            "teacher": {"observe": "grad", "scale": 1.0},
            "estimator": {"kind": "greedy", "population": 2},
        }
    )
    splits = as_float64(parts.splits(cfg, torch.device("cpu")))
    teacher = teachers.teacher(cfg, [p.double() for p in parts.base_loss(cfg)])
    torch.nn.init.normal_(teacher.head.weight, std=0.1)  # a trained head: the LSTM gets a gradient
    task = parts.task(cfg, splits)
    chained = make_estimator(cfg, task, teacher)
    assert chained.chain
    two = TwoPasses(task, teacher, chained.cfg)
    for _ in range(3):  # a fresh population, then students carried along
        a, _ = chained.estimate(teacher.theta())
        b, _ = two.estimate(teacher.theta())
        for name in a:
            assert torch.allclose(a[name], b[name], rtol=1e-9, atol=0.0), name
        assert any(bool(g.abs().sum() > 0) for g in a.values())


def test_antithetic_with_a_sigma_per_element_is_unbiased_on_a_linear_objective(float64):
    """Each coordinate its own Gaussian: `(L+ - L-) d_i / (2 sigma_i^2)` averages to the
    gradient. For `L = a . theta` the estimate's per-coordinate std over n pairs is
    sqrt(sum_k a_k^2 sigma_k^2 + a_i^2 sigma_i^2) / (sigma_i sqrt(n)); the bound is 5 of it."""
    from l2t.estimators.base import antithetic

    torch.manual_seed(0)
    a = torch.tensor([1.0, -2.0, 0.5, 3.0])
    sigma = torch.tensor([0.01, 0.1, 1.0, 0.05])
    n = 20000
    directions = [{"w": sigma * torch.randn(4)} for _ in range(n)]
    losses = [x for d in directions for x in ((a * d["w"]).sum(), -(a * d["w"]).sum())]
    estimate, _ = antithetic({"w": torch.zeros(4)}, losses, directions, lambda name: sigma, n)
    spread = ((a**2 * sigma**2).sum() + a**2 * sigma**2).sqrt() / (sigma * n**0.5)
    assert torch.all((estimate["w"] - a).abs() < 5 * spread)


def test_a_sigma_per_control_scales_the_rows_that_set_it():
    """`estimator.sigma_controls`: the control teacher's head rows of a named control are
    perturbed at its sigma (the same draw, rescaled), every other parameter at `sigma`."""
    from l2t.commands.training import make_estimator
    from l2t.config import from_dict, parts, teachers, varied
    from l2t.losses.composite import control_rows, parse_ranges

    changes = {"loss": {"family": "composite", "base": "ce"}, "teacher": {"agent": "control"}}
    changes["estimator"] = {"kind": "pes", "population": 2, "sigma": 0.01}
    cfg = from_dict({"steps": 30, "unroll": {"steps": 3}, **changes})
    sigmas = {"estimator": {"sigma_controls": "log_scale=0.05,reweight=0.002"}}
    per_control = varied(cfg, sigmas)
    task = parts.task(cfg, parts.splits(cfg, torch.device("cpu")))
    teacher = teachers.teacher(cfg, parts.base_loss(cfg))
    plain = make_estimator(cfg, task, teacher).perturbation(teacher.theta(), 0)
    scaled = make_estimator(per_control, task, teacher).perturbation(teacher.theta(), 0)
    rows = control_rows(parse_ranges(cfg.loss.ranges))
    factor = torch.ones(teacher.head.bias.shape)
    factor[rows["log_scale"]], factor[rows["reweight"]] = 5.0, 0.2
    per_name = {"head.weight": factor[:, None], "head.bias": factor}
    for name in plain:
        expected = plain[name] * per_name.get(name, 1.0)
        torch.testing.assert_close(scaled[name], expected, rtol=1e-6, atol=0.0)
    assert not torch.equal(scaled["head.bias"], plain["head.bias"])
