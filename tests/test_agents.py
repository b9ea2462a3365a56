import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import FixedLossTeacher, LSTMTeacher, MLPTeacher, ReinforceTeacher, Teacher
from envs.student_training import StudentTrainingEnv
from l2t.commands.cli import main
from l2t.config import varied
from l2t.engine.lifetime import advance, start
from l2t.engine.teaching import run_student


class TargetBandit(gym.Env):
    """A toy where improvement is known to be possible: reward -|a - target|^2, 3 steps."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
        self.target = np.array([0.6, -0.4, 0.2], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        reward = -float(np.sum((action - self.target) ** 2))
        return np.full(2, self.t / 3, dtype=np.float32), reward, self.t >= 3, False, {}


def test_reinforce_improves_its_return_on_a_toy_problem():
    torch.manual_seed(0)
    env = TargetBandit()
    teacher = ReinforceTeacher.for_env(env, lr=0.02, init_std=0.5)
    returns = teacher.learn(env, episodes=300, seed=0)
    assert np.mean(returns[-50:]) > np.mean(returns[:50]) + 1.0
    action, _ = teacher.predict(np.full(2, 0.0, dtype=np.float32), deterministic=True)
    assert np.abs(action - env.target).max() < 0.25


def _env(tiny_cfg, **overrides):
    return StudentTrainingEnv(varied(tiny_cfg, overrides))


def test_mlp_teacher_update_lowers_validation_loss_of_the_same_unroll(tiny_cfg):
    env = _env(tiny_cfg, loss={"family": "parametric"})
    teacher = MLPTeacher.around(env.base_phi, "parametric", 0.02, lr=0.05)
    life = start(env.task, teacher, 0)
    theta = dict(teacher.named_parameters())
    losses = []
    for _ in range(5):
        loss = advance(env.task, teacher, theta, life, differentiable=True).val_loss
        losses.append(loss.item())
        teacher.optimizer.zero_grad()
        loss.backward()
        teacher.optimizer.step()
    assert losses[-1] < losses[0] - 1e-3, losses


def test_fixed_teachers_train_the_student(tiny_cfg):
    env = _env(tiny_cfg)
    for loss in ("ce", "label_smoothing", "focal", "base_dln"):
        result = run_student(env.task, FixedLossTeacher(loss, env.base_phi), {}, 0, 30)
        assert result.curve[-1]["val_acc"] > result.curve[0]["val_acc"] + 0.05, loss


@pytest.mark.parametrize(
    "make",
    [
        lambda env: LSTMTeacher.around(env.base_phi),
        lambda env: MLPTeacher.around(env.base_phi, "dln", 0.02),
        lambda env: ReinforceTeacher.for_env(env),
        lambda env: FixedLossTeacher("focal"),
    ],
)
def test_every_agent_saves_and_loads_the_same_way(tiny_cfg, tmp_path, make):
    env = _env(tiny_cfg)
    teacher = make(env)
    teacher.save(tmp_path / "t.pt")
    loaded = Teacher.load(tmp_path / "t.pt")
    assert type(loaded) is type(teacher) and loaded.hparams == teacher.hparams
    for (k, a), b in zip(teacher.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize(
    "args",
    [
        ["teacher.agent=mlp", "loss.family=parametric"],
        ["teacher.agent=reinforce", "loss.family=parametric"],
        ["teacher.agent=fixed", "teacher.fixed_loss=label_smoothing"],
    ],
)
def test_train_teacher_runs_every_agent(tiny_cfg, args, capsys):
    overrides = [
        f"out={tiny_cfg.out}",
        "steps=40",
        "episodes=2",
        "eval_every=20",
        "loss.init_steps=50",
        "unroll.steps=5",
        *args,
    ]
    assert main(["train-teacher", *overrides]) == 0
    assert "taught by the teacher" in capsys.readouterr().out


def test_lstm_teacher_needs_the_dln_family(tiny_cfg, capsys):
    args = ["train-teacher", f"out={tiny_cfg.out}", "loss.family=parametric", "steps=20"]
    assert main(args) == 2
    assert "teacher.agent=lstm sets the dln family" in capsys.readouterr().err
