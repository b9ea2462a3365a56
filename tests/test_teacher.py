import pytest
import torch

from agents import LSTMTeacher, Teacher
from agents.lstm_teacher import preprocess_gradient
from l2t.config import parts, varied
from l2t.engine.lifetime import advance, start
from l2t.engine.teaching import run_student
from l2t.estimators.online import _probed, teach_while_learning


def test_gradient_preprocessing_follows_andrychowicz():
    g = torch.tensor([1.0, -1e-2, 1e-6, -1e-6, 0.0])
    out = preprocess_gradient(g, p=10.0)
    assert torch.allclose(out[0], torch.tensor([0.0, 1.0]))
    assert torch.allclose(out[1], torch.tensor([torch.log(torch.tensor(1e-2)).item() / 10, -1.0]))
    assert torch.allclose(out[2], torch.tensor([-1.0, 1e-6 * torch.e**10]))
    assert torch.allclose(out[3, 1], torch.tensor(-1e-6 * torch.e**10))
    assert torch.equal(out[4], torch.tensor([-1.0, 0.0]))


def _setup(tiny_cfg, teacher=None, **overrides):
    """A task and an LSTM teacher around its fitted base loss."""
    cfg = varied(tiny_cfg, overrides)
    splits = parts.splits(cfg, torch.device("cpu"))
    return parts.task(cfg, splits), LSTMTeacher.around(parts.base_loss(cfg), **(teacher or {}))


def test_teacher_update_lowers_validation_loss_of_the_same_unroll(tiny_cfg):
    """One teacher (theta) step on a fixed student state lowers the val loss it optimizes."""
    task, teacher = _setup(tiny_cfg, {"lr": 0.05, "beta": 0.5}, loss={"init": "random"})
    life = start(task, teacher, 0)
    theta = dict(teacher.named_parameters())
    losses = []
    for _ in range(5):
        loss = advance(task, teacher, theta, life, differentiable=True).val_loss
        losses.append(loss.item())
        teacher.optimizer.zero_grad()
        loss.backward()
        teacher.optimizer.step()
    assert losses[-1] < losses[0] - 1e-3, losses


@pytest.mark.parametrize("update", ["fused", "three_stage"])
def test_a_teacher_learning_while_it_teaches_trains_the_student_and_itself(tiny_cfg, update):
    """The paper's procedure (l2t/estimators/online.py): the student trains, the teacher's
    weights move, its offsets stay within beta of the base loss."""
    task, teacher = _setup(tiny_cfg, {"update": update, "beta": 0.02})
    theta = {k: v.clone() for k, v in teacher.theta().items()}
    frozen = run_student(task, teacher, teacher.theta(), 5, 30)
    learned = teach_while_learning(task, teacher, 5, 30)
    assert learned.curve[-1]["val_acc"] > learned.curve[0]["val_acc"] + 0.05
    assert any(not torch.equal(v, teacher.theta()[k]) for k, v in theta.items())
    assert learned.curve != frozen.curve  # the teacher changed as it taught
    life = start(task, teacher, 0)
    phi, _ = teacher.propose(teacher.theta(), life.teacher, life.obs)
    drift = torch.cat([(p - b).flatten() for p, b in zip(phi, teacher.base_params())])
    assert 0 < drift.abs().max() <= 0.02


def test_batchnorm_and_momentum_of_the_real_student_change_after_a_teacher_step(tiny_cfg):
    task, teacher = _setup(
        tiny_cfg,
        {"update": "three_stage"},
        student="resnet8",
        dataset="digits",
        val_size=300,
        optim={"momentum": 0.9},
        loss={"init_steps": 50},
    )
    life = start(task, teacher, 0)
    stats = {k: v.clone() for k, v in life.student.buffers.items() if "running" in k}
    probed = _probed(task, teacher, life)  # the three-stage probe: dL_val/dphi at phi_0
    assert probed.obs.grad is not None and probed.obs.grad.abs().sum() > 0
    after = advance(task, teacher, teacher.theta(), probed).life.student
    assert stats and all(not torch.equal(v, after.buffers[k]) for k, v in stats.items())
    assert set(after.momentum) == set(after.params)


def test_save_and_load_round_trip(tiny_cfg, tmp_path):
    _, teacher = _setup(tiny_cfg, {"update": "three_stage", "beta": 0.03})
    teacher.save(tmp_path / "t.pt")
    loaded = Teacher.load(tmp_path / "t.pt")
    assert isinstance(loaded, LSTMTeacher)
    assert loaded.update == "three_stage" and loaded.beta == 0.03
    for a, b in zip(teacher.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_loss_that_diverges_never_reaches_the_student_nor_the_teacher(tiny_cfg):
    """A loss scale of e^12 breaks every student step: each is retaken under the base loss,
    the learning teacher is never updated from it, and the student still learns."""
    task, teacher = _setup(tiny_cfg, {"scale": 12.0})
    with torch.no_grad():
        teacher.scale_head.bias.fill_(50.0)
    theta = {k: v.clone() for k, v in teacher.theta().items()}
    result = teach_while_learning(task, teacher, 0, 30)
    assert result.diverged_steps == task.teacher_steps
    assert all(torch.equal(v, teacher.theta()[k]) for k, v in theta.items())
    assert result.curve[-1]["val_acc"] > result.curve[0]["val_acc"] + 0.05


def test_the_scale_head_multiplies_the_whole_loss(tiny_cfg):
    """In float64: scaling the last layer and scaling the loss round differently."""
    from l2t.engine.lifetime import Observation
    from l2t.losses.dln import dln_loss

    _, plain = _setup(tiny_cfg, {"observe": "state"})
    _, scaled = _setup(tiny_cfg, {"observe": "state", "scale": 2.0})
    plain, scaled = plain.double(), scaled.double()
    scaled.load_state_dict(
        {
            **plain.state_dict(),
            **{k: v for k, v in scaled.state_dict().items() if k.startswith("scale_head")},
        }
    )
    with torch.no_grad():
        scaled.scale_head.bias.fill_(0.5)
    obs = Observation(torch.rand(5, dtype=torch.float64), None)
    z, y = torch.randn(8, 10, dtype=torch.float64), torch.randint(10, (8,))
    losses = []
    for teacher in (plain, scaled):
        phi, _ = teacher.propose(teacher.theta(), teacher.initial_state(), obs)
        losses.append(dln_loss(phi, z, y))
    expected = losses[0] * torch.exp(2.0 * torch.tanh(torch.tensor(0.5, dtype=torch.float64)))
    torch.testing.assert_close(losses[1], expected)


def test_the_untrained_teacher_is_its_base_loss_bit_for_bit(tiny_cfg):
    """Its output head starts at zero: before it learns, its students are the base loss's."""
    from agents import FixedLossTeacher
    from l2t.engine.teaching import run_student

    task, teacher = _setup(tiny_cfg, {"observe": "state"})
    fixed = FixedLossTeacher("base_dln", teacher.base_params())
    a = run_student(task, teacher, teacher.theta(), 4, tiny_cfg.eval_every)
    b = run_student(task, fixed, {}, 4, tiny_cfg.eval_every)
    assert a.curve == b.curve
