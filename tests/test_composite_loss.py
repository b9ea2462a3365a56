"""The composite loss family contains the fixed losses as points, and its teacher starts
exactly there (l2t/losses/composite.py, agents/control_teacher.py)."""

import json
import math
from pathlib import Path

import pytest
import torch
from precision import as_float64

from agents import ControlTeacher, FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.config import ConfigError, from_dict, parts
from l2t.data.distill import kd_loss
from l2t.engine.lifetime import Observation, advance, start
from l2t.engine.teaching import run_student
from l2t.losses.composite import (
    CONTROLS,
    REWEIGHT,
    WEIGHT_HIDDEN,
    CompositeLoss,
    base_params,
    controlled_size,
    params_from_unit,
    parse_ranges,
    point,
)
from l2t.losses.dln import DynamicLossNetwork, dln_loss
from l2t.losses.fixed import fixed_loss
from l2t.losses.labels import pack

B, C = 32, 10


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, C, generator=g, dtype=torch.float64) * 3).requires_grad_()
    labels = torch.randint(C, (B,), generator=g)
    model = torch.randn(B, C, generator=g, dtype=torch.float64) * 2
    return logits, labels, model


def _value_and_grad(fn, logits, targets):
    value = fn(logits, targets)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


@pytest.mark.parametrize("name", ["ce", "label_smoothing", "sce", "gce", "kd", "base_dln"])
def test_at_its_base_points_the_family_is_each_fixed_loss(name, float64):
    """Values and gradients equal the fixed loss's (float64: only summation order differs)."""
    logits, labels, model = _batch()
    phi = [p.detach() for p in DynamicLossNetwork(8, 2).phi]
    base = point(name, kd_mix=0.3)
    family = CompositeLoss.around(base, {}, temperature=4.0)
    params = base_params(base, phi if name == "base_dln" else ())
    targets = pack(labels, model) if name == "kd" else labels
    reference = {
        "kd": lambda z, y: kd_loss(z, y, 0.3, 4.0),
        "base_dln": lambda z, y: dln_loss(phi, z, y),
    }.get(name, lambda z, y: fixed_loss(name, z, y))
    ours = _value_and_grad(lambda z, y: family(params, z, y), logits, targets)
    theirs = _value_and_grad(reference, logits, targets)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert family.terms == tuple(t for t in ("ce", "rce", "gce", "kd", "dln") if base.get(t))


def test_the_weight_net_starts_at_one_and_then_weighs_samples_normalised(float64):
    logits, labels, _ = _batch(1)
    params = base_params(point("ce"))
    plain = CompositeLoss(("ce",))
    weighted = CompositeLoss(("ce",), reweight=True)
    torch.testing.assert_close(weighted(params, logits, labels), plain(params, logits, labels))
    controls, w1, b1, w2, b2 = params
    w2 = torch.ones_like(w2)  # now the weights vary with the sample's loss
    loss = weighted([controls, w1, b1, w2, b2], logits, labels)
    per_sample = torch.nn.functional.cross_entropy(logits, labels, reduction="none").detach()
    w = torch.sigmoid(torch.tanh(per_sample[:, None] @ w1.T + b1) @ w2.T + b2).squeeze(1)
    expected = (w * per_sample).sum() / w.sum()
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(w, w.mean().expand_as(w))


DEFAULT_RANGES = "log_scale=0.5,ce=0.5,rce=0.5,smoothing=0.1,reweight=2"


@pytest.mark.parametrize(
    ("moved", "kept"),
    [
        ({}, ("ce",)),  # the ce point: one fused cross-entropy
        ({"rce": 0.3}, ("ce", "rce")),  # a replay that moved RCE: the zero weight net dropped
        ({"smoothing": 0.05}, ("ce",)),  # smoothing kept
    ],
)
def test_a_fixed_replay_skips_what_its_values_switch_off(moved, kept, float64):
    """A replayed schedule or fixed point drops the terms its values set to 0 (issue 34:
    replay at cross-entropy's price). The gradient to the logits is the whole shape's, bit
    for bit (0 * term adds 0; equal weights normalise to 1/B exactly), the value the same
    up to the summation order of one mean (float64, a few ulp)."""
    logits, labels, _ = _batch(3)
    ranges = parse_ranges(DEFAULT_RANGES)
    whole = CompositeLoss.around(point("ce"), ranges)
    assert whole.terms == ("ce", "rce") and whole.smoothing and whole.reweight
    params = base_params({**point("ce"), **moved})
    pruned = whole.at_values(params)
    assert pruned.terms == kept and not pruned.reweight
    assert pruned.smoothing == ("smoothing" in moved)
    value, grad = _value_and_grad(whole.bind(params), logits, labels)
    whole_value, whole_grad = _value_and_grad(lambda z, y: whole(params, z, y), logits, labels)
    assert torch.equal(grad, whole_grad)
    assert abs(float(value - whole_value)) <= 8 * torch.finfo(torch.float64).eps * float(value)


def test_values_a_gradient_flows_to_or_a_moved_weight_net_keep_the_whole_shape():
    ranges = parse_ranges(DEFAULT_RANGES)
    whole = CompositeLoss.around(point("ce"), ranges)
    params = base_params(point("ce"))
    learning = [params[0].clone().requires_grad_(), *params[1:]]
    assert whole.at_values(learning) is whole  # a teacher learning them needs every term
    controls, w1, b1, w2, b2 = params
    weighed = whole.at_values([controls, w1, b1, w2 + 0.1, b2])
    assert weighed.reweight and weighed.terms == ("ce",)


def test_the_loss_scale_multiplies_the_loss(float64):
    logits, labels, _ = _batch(2)
    params = base_params({**point("sce"), "log_scale": math.log(0.25)})
    family = CompositeLoss(("ce", "rce"))
    torch.testing.assert_close(
        family(params, logits, labels), 0.25 * fixed_loss("sce", logits, labels)
    )


def test_controls_move_within_their_ranges_and_zero_is_the_base_exactly():
    ranges = parse_ranges("log_scale=0.5,ce=0.5,smoothing=0.1,reweight=2")
    base = base_params(point("ce"))
    n = controlled_size(ranges)
    assert n == 3 + WEIGHT_HIDDEN + 1
    same = params_from_unit(base, ranges, torch.zeros(n))
    assert all(torch.equal(a, b) for a, b in zip(same, base))
    low = params_from_unit(base, ranges, -torch.ones(n))[0]
    high = params_from_unit(base, ranges, torch.ones(n))[0]
    c = dict(zip(CONTROLS, low.tolist())), dict(zip(CONTROLS, high.tolist()))
    assert c[0]["log_scale"] == -0.5 and c[1]["log_scale"] == 0.5
    assert c[0]["ce"] == 0.5 and c[1]["ce"] == 1.5
    assert c[0]["smoothing"] == 0.0 and c[1]["smoothing"] == pytest.approx(0.1)  # eps >= 0
    assert c[0]["rce"] == c[1]["rce"] == 0.0  # not controlled: stays at its base
    assert torch.equal(params_from_unit(base, ranges, torch.ones(n))[3], 2 * torch.ones(1, 8))


def test_bad_ranges_and_points_say_what_is_allowed():
    with pytest.raises(ValueError, match="unknown control 'lr'"):
        parse_ranges("lr=0.1")
    with pytest.raises(ValueError, match="not control=number"):
        parse_ranges("ce=big")
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        parse_ranges("ce=-1")
    with pytest.raises(ValueError, match="unknown composite point"):
        point("mse")
    with pytest.raises(ConfigError, match="chosen on validation first"):
        make_task(from_dict({"loss": {"family": "composite"}}))
    with pytest.raises(ConfigError, match=r"needs distill\.model"):
        make_task(from_dict({"loss": {"family": "composite", "base": "ce", "ranges": "kd=1"}}))
    assert REWEIGHT in parse_ranges("reweight=1")


def _composite_cfg(base: str, **more):
    return from_dict(
        {
            "steps": 40,
            "eval_every": 20,
            "unroll": {"steps": 5},
            "val_batch": 100,
            "loss": {"family": "composite", "base": base, "init_steps": 20},
            **more,
        }
    )


@pytest.mark.parametrize("base", ["sce", "base_dln"])
def test_the_untrained_teacher_is_its_base_point_bit_for_bit(base):
    """Its students are identical to the fixed baseline's at the same point (the DLN's
    correction term included): what learning adds is one paired row."""
    cfg = _composite_cfg(base)
    task = make_task(cfg)
    params = [p.to(task.device) for p in parts.base_loss(cfg)]
    teacher = ControlTeacher.around(params, cfg.loss.ranges)
    fixed = FixedLossTeacher("base", params)
    a = run_student(task, teacher, teacher.theta(), 3, cfg.eval_every)
    b = run_student(task, fixed, {}, 3, cfg.eval_every)
    assert a.curve == b.curve and a.val_acc == b.val_acc
    unit, _ = teacher(teacher.initial_state(), torch.rand(5))
    assert torch.equal(unit, torch.zeros_like(unit))


def test_a_scale_following_the_cosine_is_the_cosine_learning_rate(float64):
    """`exp(s(t))` at the cosine factor reproduces `*_cosine` (plain SGD: a loss scale is a
    learning-rate factor), set once per teacher step as the task's cosine is."""

    class CosineScale(FixedLossTeacher):
        def propose(self, theta, state, obs: Observation):
            controls, *rest = self.base_params()
            factor = 0.5 * (1 + math.cos(math.pi * obs.progress))
            log_scale = torch.full_like(controls[:1], math.log(factor))
            return [torch.cat([log_scale, controls[1:]]), *rest], state

    cfg = _composite_cfg("sce")
    constant = make_task(cfg)
    constant.splits = as_float64(constant.splits)
    constant.model.double()
    cosine = make_task(_composite_cfg("sce", optim={"cosine": True}), constant.splits)
    cosine.model.double()
    params = [p.double() for p in parts.base_loss(cfg)]
    scaled, annealed = CosineScale("base", params), FixedLossTeacher("base", params)
    a, b = start(constant, scaled, 5), start(cosine, annealed, 5)
    while not a.done(constant):
        a, b = advance(constant, scaled, {}, a).life, advance(cosine, annealed, {}, b).life
    for name, p in a.student.params.items():
        torch.testing.assert_close(p, b.student.params[name], rtol=1e-10, atol=1e-12)
        assert not torch.equal(p, start(cosine, annealed, 5).student.params[name])


def test_a_composite_run_compares_its_base_its_untrained_teacher_and_reweighting(tmp_path):
    from l2t.commands.cli import main

    run, out = tmp_path / "run", tmp_path / "cmp"
    tiny = ["steps=30", "eval_every=15", "episodes=1", "select_students=1", "val_batch=50"]
    tiny += ["unroll.steps=5", "estimator.population=2", "estimator.horizon=2"]
    assert main(["train-teacher", f"out={run}", "loss.family=composite", *tiny]) == 0
    assert (run / "base_point.json").is_file()  # loss.base=auto, chosen on validation
    methods = "methods=base,teacher_untrained,mwnet_base,l2rw_base,meta_base,meta_base_trainval"
    methods += ",teacher_schedule_trainval"
    assert main(["compare", f"teacher={run}", "seeds=1", methods, f"out={out}"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["teacher_untrained"]["curves"] == results["base"]["curves"]  # bit for bit
    assert results["mwnet_base"]["curves"] != results["base"]["curves"]
    assert results["meta_base"]["curves"] != results["base"]["curves"]
    assert results["meta_base"]["curves"] != results["meta_base_trainval"]["curves"]


def test_the_controls_script_reads_the_last_trained_teacher_of_a_composite_run(tmp_path, capsys):
    """scripts/teacher_controls.py: the checkpoint's teacher (not teacher.pt's) sets the
    controls of one student, printed beside the base point's."""
    import re
    import runpy

    from l2t.commands.cli import main

    run = tmp_path / "run"
    tiny = ["steps=30", "eval_every=15", "episodes=1", "select_students=1", "val_batch=50"]
    tiny += ["unroll.steps=5", "estimator.population=2", "estimator.horizon=2", "loss.base=ce"]
    assert main(["train-teacher", f"out={run}", "loss.family=composite", *tiny]) == 0
    capsys.readouterr()
    script = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "teacher_controls.py"))
    script["main"]([str(run), "seed=3", "every=1"])
    out = capsys.readouterr().out
    assert out.startswith("base point: ce 1.000")
    steps = re.findall(r"^step (\d+): .*weight net output layer", out, re.MULTILINE)
    assert steps == ["0", "5", "10", "15", "20", "25"]
    assert "student 3: val" in out


def test_students_vmap_cannot_batch_are_refused_before_the_base_point_grid(
    tmp_path, monkeypatch, capsys
):
    """The base point's grid trains 80 students first: a config the estimator will refuse
    is refused before them, not after."""
    from l2t.commands import training
    from l2t.commands.cli import main

    def grid_ran(*args):
        raise AssertionError("the base point was chosen before the refusal")

    monkeypatch.setattr(training, "choose_base", grid_ran)
    config = str(Path(__file__).parents[1] / "configs" / "mnist1d_mlp_composite.yaml")
    args = ["dataset=digits", "student=resnet8", f"out={tmp_path / 'run'}"]
    assert main(["train-teacher", "--config", config, *args]) == 2
    assert "BatchNorm buffers; use estimator.vmap=false" in capsys.readouterr().err
