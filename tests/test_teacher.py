import copy

import torch

from agents import LSTMTeacher, Teacher
from agents.lstm_teacher import preprocess_gradient
from envs.student_training import StudentTrainingEnv, base_loss_params
from l2t.config import from_dict


def test_gradient_preprocessing_follows_andrychowicz():
    g = torch.tensor([1.0, -1e-2, 1e-6, -1e-6, 0.0])
    out = preprocess_gradient(g, p=10.0)
    assert torch.allclose(out[0], torch.tensor([0.0, 1.0]))
    assert torch.allclose(out[1], torch.tensor([torch.log(torch.tensor(1e-2)).item() / 10, -1.0]))
    assert torch.allclose(out[2], torch.tensor([-1.0, 1e-6 * torch.e**10]))
    assert torch.allclose(out[3, 1], torch.tensor(-1e-6 * torch.e**10))
    assert torch.equal(out[4], torch.tensor([-1.0, 0.0]))


def _env(tiny_cfg, **overrides):
    cfg = from_dict(overrides, copy.deepcopy(tiny_cfg))
    return StudentTrainingEnv(cfg, base_phi=base_loss_params(cfg))


def test_teacher_update_lowers_validation_loss_of_the_same_unroll(tiny_cfg):
    """One teacher (theta) step on a fixed student state lowers the val loss it optimizes."""
    env = _env(tiny_cfg, loss={"init": "random"}, teacher={"beta": 0.5})
    env.reset(seed=0)
    teacher = LSTMTeacher.for_env(env, lr=0.05, beta=0.5)
    teacher.start_episode(env)
    state = torch.as_tensor(env.student_state())
    grad = torch.zeros_like(teacher.base_phi)
    start = teacher.initial_state()

    def val_loss() -> torch.Tensor:
        phi, _ = teacher(start, state, grad)
        return env.functional_step(teacher.split(phi), commit_result=False).val_loss

    losses = []
    for _ in range(5):
        loss = val_loss()
        losses.append(loss.item())
        teacher.optimizer.zero_grad()
        loss.backward()
        teacher.optimizer.step()
    assert losses[-1] < losses[0] - 1e-3, losses


def test_fused_teacher_step_commits_and_keeps_the_loss_bounded(tiny_cfg):
    env = _env(tiny_cfg)
    env.reset(seed=0)
    teacher = LSTMTeacher.for_env(env, beta=0.02)
    teacher.start_episode(env)
    theta = [p.detach().clone() for p in teacher.learnable()]
    weights_before = [p.detach().clone() for p in env.student.params.values()]
    teacher.teacher_step(env, learn=True)
    assert env.t == tiny_cfg.unroll.steps
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, env.student.params.values()))
    assert any(not torch.equal(a, b) for a, b in zip(theta, teacher.learnable()))
    assert teacher.grad_flat.abs().sum() > 0, "fused update keeps the next loss state"
    bound = 0.02 * teacher.base_phi.numel() ** 0.5
    drift = (teacher.phi_flat - teacher.base_phi).norm()
    assert 0 < drift <= bound


def test_batchnorm_and_momentum_of_the_real_student_change_after_a_teacher_step(tiny_cfg):
    env = StudentTrainingEnv(
        tiny_cfg,
        student="resnet8",
        dataset="digits",
        val_size=300,
        optim={"momentum": 0.9},
        loss={"init_steps": 50},
    )
    env.reset(seed=0)
    assert env.student is not None
    teacher = LSTMTeacher.for_env(env, update="three_stage")
    teacher.start_episode(env)
    stats = {k: v.clone() for k, v in env.student.buffers.items() if "running" in k}
    teacher.teacher_step(env)
    after = env.student.buffers
    assert stats and all(not torch.equal(v, after[k]) for k, v in stats.items())
    assert set(env.student.momentum) == set(env.student.params)


def test_save_and_load_round_trip(tiny_cfg, tmp_path):
    env = _env(tiny_cfg)
    teacher = LSTMTeacher.for_env(env, update="three_stage", beta=0.03)
    teacher.save(tmp_path / "t.pt")
    loaded = Teacher.load(tmp_path / "t.pt")
    assert isinstance(loaded, LSTMTeacher)
    assert loaded.update == "three_stage" and loaded.beta == 0.03
    for a, b in zip(teacher.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_loss_that_diverges_never_reaches_the_student(tiny_cfg):
    env = _env(tiny_cfg)
    env.reset(seed=0)
    bad = [p * float("nan") for p in env.base_phi]
    result = env.functional_step(bad)
    assert result.diverged
    assert env.t == tiny_cfg.unroll.steps, "the student still took its steps, under phi_0"
    assert all(torch.isfinite(p).all() for p in env.student.params.values())
    env.train_with(lambda z, y: z.sum() * float("inf"))
    assert all(torch.isfinite(p).all() for p in env.student.params.values())
    teacher = LSTMTeacher.for_env(env)
    teacher.start_episode(env)
    teacher.base_phi.fill_(float("nan"))  # a teacher whose loss is broken
    info = teacher.teacher_step(env, learn=True)
    assert info["diverged"] == 1.0
    assert all(torch.isfinite(p).all() for p in teacher.learnable())
    assert all(torch.isfinite(p).all() for p in env.student.params.values())


def test_the_scale_head_multiplies_the_whole_loss(tiny_cfg):
    """In float64: scaling the last layer and scaling the loss round differently."""
    from l2t.lifetime import Observation
    from l2t.loss_network import dln_loss

    env = _env(tiny_cfg)
    plain = LSTMTeacher.for_env(env, observe="state").double()
    scaled = LSTMTeacher.for_env(env, observe="state", scale=2.0).double()
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
