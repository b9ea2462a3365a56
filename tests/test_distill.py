import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from l2t.commands.cli import main
from l2t.data.distill import kd_loss
from l2t.losses.dln import DynamicLossNetwork, dln_loss, pair_features
from l2t.losses.labels import labels_of, pack, soft_labels

TINY = ["steps=40", "eval_every=20", "loss.init_steps=20", "unroll.steps=5", "val_batch=100"]


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(6, 5, generator=g)).double()
    labels = torch.randint(5, (6,), generator=g)
    model = (3 * torch.randn(6, 5, generator=g)).double()
    return logits, labels, model


def test_kd_matches_hintons_formula_and_is_ce_at_weight_0():
    z, y, m = _batch()
    targets = pack(y, m)
    t = 3.0
    p_model = (m / t).softmax(1)
    kl = (p_model * (p_model.log() - (z / t).log_softmax(1))).sum(1).mean()
    expected = 0.3 * F.cross_entropy(z, y) + 0.7 * t**2 * kl
    assert torch.allclose(kd_loss(z, targets, 0.7, t), expected)
    assert torch.allclose(kd_loss(z, targets, 0.0, t), F.cross_entropy(z, y))
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: kd_loss(x, targets, 0.7, t), (z,))


def test_packed_targets_keep_labels_and_mix_soft_labels():
    _, y, m = _batch(1)
    targets = pack(y, m)
    assert torch.equal(labels_of(targets), y)
    q = soft_labels(targets, 5, 2.0, 0.25)
    assert torch.allclose(q, 0.75 * F.one_hot(y, 5) + 0.25 * (m / 2).softmax(1))
    assert torch.allclose(q.sum(1), torch.ones(6, dtype=q.dtype))


def test_without_distillation_the_dln_sees_exactly_the_constant_label_slots():
    z, y, m = _batch(2)
    hard = pair_features(z, y)
    assert torch.equal(hard[..., 2], torch.ones_like(z)) and torch.equal(hard[..., 3], 0 * z)
    # a model's logits at mix 0 are the same input, so the same loss
    assert torch.equal(pair_features(z, pack(y, m), 4.0, 0.0), hard)
    soft = pair_features(z, pack(y, m), 4.0, 0.5)
    assert not torch.equal(soft, hard)
    phi = [w.double() for w in DynamicLossNetwork().phi]
    assert torch.allclose(dln_loss(phi, z, pack(y, m), 4.0, 0.0), dln_loss(phi, z, y))


def test_the_base_dln_fits_the_pairwise_distillation_loss():
    torch.manual_seed(0)
    network = DynamicLossNetwork(hidden=20, layers=2)
    network.fit(steps=600, soft_labels=True)
    z = torch.tensor([[2.0, -1.0], [0.0, 0.5], [-1.0, 1.0]])
    q = torch.tensor([[0.7, 0.2], [0.5, 0.5], [1.0, 0.0]])
    p = torch.sigmoid(z)
    features = torch.stack([p[:, 0], p[:, 1], q[:, 0], q[:, 1]], dim=-1)
    expected = q[:, 0] * F.softplus(z[:, 1] - z[:, 0]) + q[:, 1] * F.softplus(z[:, 0] - z[:, 1])
    from l2t.losses.dln import dln_apply

    assert torch.allclose(dln_apply(network.phi, features).detach(), expected, atol=0.1)


def test_a_teacher_that_sets_the_mix_starts_at_distill_mix_and_its_gradient_reaches_it():
    from agents import LSTMTeacher
    from l2t.engine.lifetime import Observation

    torch.manual_seed(0)
    weights = [w.detach().double() for w in DynamicLossNetwork(hidden=8, layers=2).phi]
    base = [*weights, torch.tensor(0.3, dtype=torch.float64)]
    teacher = LSTMTeacher([tuple(p.shape) for p in base], hidden=6, mix_range=3.0).double()
    teacher.base_phi.copy_(torch.cat([p.flatten() for p in base]))
    theta = teacher.theta()
    theta["mix_head.weight"] = torch.full_like(theta["mix_head.weight"], 0.5)
    obs = Observation(torch.rand(5, dtype=torch.float64), None)
    z, y, m = _batch(3)
    targets = pack(y, m)

    def loss_and_mix(theta):
        params, _ = teacher.propose(theta, teacher.initial_state(), obs)
        return dln_loss(params, z, targets, 2.0), params

    start, _ = teacher.propose(teacher.theta(), teacher.initial_state(), obs)
    assert start[-1].ndim == 0 and float(start[-1]) == pytest.approx(0.3)  # the base mix
    loss, params = loss_and_mix(theta)
    mix = float(params[-1])
    assert 0.05 < mix < 0.95 and mix != pytest.approx(0.3)
    assert torch.allclose(loss, dln_loss(params[:-1], z, targets, 2.0, mix))  # used as the mix
    assert not torch.allclose(loss, dln_loss(params[:-1], z, targets, 2.0, 0.3))
    # the teacher's mix head gets the gradient finite differences of the loss give
    w = theta["mix_head.weight"].requires_grad_()
    (grad,) = torch.autograd.grad(loss_and_mix(theta)[0], w)
    eps = 1e-6
    for i in range(3):
        bump = torch.zeros_like(w)
        bump[0, i] = eps
        plus = loss_and_mix({**theta, "mix_head.weight": w.detach() + bump})[0]
        minus = loss_and_mix({**theta, "mix_head.weight": w.detach() - bump})[0]
        assert float(grad[0, i]) == pytest.approx(float(plus - minus) / (2 * eps), rel=1e-5)
    assert grad.abs().sum() > 0


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["train-model", "student=cnn1d", f"out={out}", *TINY]) == 0
    return out / "model.pt"


def test_train_model_writes_a_model_that_teaches_a_student(model_path, tmp_path):
    summary = json.loads((model_path.parent / "summary.json").read_text())
    assert summary["student"] == "cnn1d" and summary["test_acc"] > 0.1
    run = tmp_path / "run"
    args = ["train-teacher", f"distill.model={model_path}", "episodes=1", "select_students=1"]
    assert main([*args, f"out={run}", *TINY]) == 0
    assert json.loads((run / "summary.json").read_text())["teacher_test_acc"] > 0.1
    out = tmp_path / "cmp"
    methods = "methods=ce,kd,base_dln"
    assert (
        main(["compare", f"distill.model={model_path}", methods, "seeds=1", f"out={out}", *TINY])
        == 0
    )
    assert "| kd |" in (out / "results.md").read_text()

    # a user's own unlabeled batch, labeled by their model: the run's learned loss reads it
    import l2t
    from l2t.commands.applying import run_config
    from l2t.engine.schedule import Schedule
    from l2t.engine.task import loss_fn

    criterion = l2t.LearnedLoss.from_run(run, total_steps=40)
    model_logits, student_logits = torch.randn(6, 10), torch.randn(6, 10)
    pool = pack(model_logits.argmax(dim=1), model_logits)  # pseudo-labels and soft labels
    cfg = run_config(run, {})
    params = Schedule.load(run / "schedule.pt").phi_at(0.0, torch.device("cpu"))
    expected = loss_fn("dln", params, cfg.distill.temperature, cfg.distill.mix)(
        student_logits, pool
    )
    torch.testing.assert_close(criterion(student_logits, pool), expected)
    hard = criterion(student_logits, pool[:, 0].long())  # the same labels without the model
    assert not torch.allclose(hard, expected), "the soft labels are read (distill.mix 0.5)"


def test_the_tuned_base_dln_is_the_base_dln_at_the_mix_and_temperature_it_chose(
    model_path, tmp_path, capsys
):
    common = [f"distill.model={model_path}", "seeds=2", *TINY]
    assert main(["compare", "methods=base_dln_kd", f"out={tmp_path / 'tuned'}", *common]) == 0
    printed = re.search(r"base_dln_kd: a=([\d.]+), T=([\d.]+)", capsys.readouterr().out)
    chosen = json.loads((tmp_path / "tuned" / "results.json").read_text())["base_dln_kd"]["chosen"]
    assert printed is not None and chosen == {
        "mix": float(printed[1]),
        "temperature": float(printed[2]),
    }
    assert chosen != {"mix": 0.5, "temperature": 4.0}  # not the defaults: the test can tell
    setting = [f"distill.mix={chosen['mix']}", f"distill.temperature={chosen['temperature']}"]
    assert main(["compare", "methods=base_dln", f"out={tmp_path / 'base'}", *setting, *common]) == 0

    def accs(run: str, method: str) -> list[float]:
        results = json.loads((tmp_path / run / "results.json").read_text())
        return results[method]["test_acc"]

    assert accs("tuned", "base_dln_kd") == accs("base", "base_dln")


def test_a_teacher_learns_the_mix_over_training_and_its_schedule_replays_it(model_path, tmp_path):
    from agents import Teacher
    from l2t.engine.lifetime import Observation
    from l2t.engine.schedule import Schedule

    run = tmp_path / "run"
    args = ["train-teacher", f"distill.model={model_path}", "teacher.mix_range=3", "episodes=2"]
    assert main([*args, "estimator.horizon=2", "teacher.lr=0.05", f"out={run}", *TINY]) == 0
    mixes = [float(phi[-1]) for phi in Schedule.load(run / "schedule.pt").phi_sets()]
    assert all(0.0 < m < 1.0 for m in mixes)
    # the teacher as meta-training left it (kept or not) sets another mix than it started with
    teacher = Teacher.load(run / "teacher.pt", torch.device("cpu"))
    teacher.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=False)["teacher"])
    obs = Observation(torch.rand(5), None)
    params, _ = teacher.propose(teacher.theta(), teacher.initial_state(), obs)
    assert abs(float(params[-1]) - 0.5) > 1e-3
    assert (run / "plots" / "distill_mix.png").is_file()
    out = tmp_path / "cmp"
    methods = "methods=base_dln,teacher_schedule"
    assert main(["compare", f"teacher={run}", methods, "seeds=1", f"out={out}", *TINY]) == 0
    assert (out / "plots" / "distill_mix.png").is_file()


@pytest.mark.parametrize("problem", ["missing", "wrong data", "not a model"])
def test_a_model_that_does_not_exist_or_fit_is_one_line(model_path, tmp_path, capsys, problem):
    path = (
        {"missing": tmp_path / "nope.pt", "wrong data": model_path}[problem]
        if problem != "not a model"
        else tmp_path / "x.pt"
    )
    if problem == "not a model":
        torch.save({"weights": torch.zeros(2)}, path)
    dataset = ["dataset=digits", "student=lenet"] if problem == "wrong data" else []
    args = ["compare", f"distill.model={path}", "methods=kd", "seeds=1", *dataset]
    assert main([*args, f"out={tmp_path / 'c'}", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"missing": "does not exist", "wrong data": "takes input", "not a model": "not a model"}[
        problem
    ] in err
