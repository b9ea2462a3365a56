import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # registers l2t/StudentTraining-v0
from l2t.config import ConfigError

TINY = {"steps": 20, "val_batch": 0, "loss": {"init_steps": 50}, "unroll": {"steps": 5}}


def test_check_env_passes_without_warnings():
    env = gym.make("l2t/StudentTraining-v0", **TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    assert [str(w.message) for w in caught] == []


def test_the_module_path_form_also_makes_the_env():
    env = gym.make("envs:l2t/StudentTraining-v0", **TINY)
    assert isinstance(env.unwrapped, envs.StudentTrainingEnv)


def _rollout(env, seed, actions):
    obs, info = env.reset(seed=seed)
    trace = [(obs, 0.0, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, info))
    return trace, terminated, truncated


@pytest.mark.parametrize("family", ["dln", "parametric"])
def test_same_seed_and_actions_give_the_same_episode(family):
    env = gym.make(
        "l2t/StudentTraining-v0", **{**TINY, "loss": {"family": family, "init_steps": 50}}
    )
    actions = [
        np.random.default_rng(i).uniform(-1, 1, env.action_space.shape).astype(np.float32)
        for i in range(4)
    ]
    a, terminated, truncated = _rollout(env, 7, actions)
    b, _, _ = _rollout(env, 7, actions)
    c, _, _ = _rollout(env, 8, actions)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        assert np.array_equal(oa, ob) and ra == rb and ia == ib
    assert not np.array_equal(a[1][0], c[1][0]), "another seed, another student"
    assert terminated and not truncated, "20 steps / K=5 = 4 env steps end the episode"
    assert sum(r for _, r, _ in a) == pytest.approx(
        a[-1][2]["val_acc"] - a[0][2]["val_acc"], abs=1e-6
    )
    assert env.observation_space.contains(a[-1][0])


def test_observation_holds_the_loss_state_when_asked():
    with_state = gym.make("l2t/StudentTraining-v0", **TINY)
    without = gym.make("l2t/StudentTraining-v0", **TINY, observe_loss_state=False)
    assert with_state.observation_space.shape == (9,) and without.observation_space.shape == (5,)
    with_state.reset(seed=0)
    obs, *_ = with_state.step(with_state.action_space.sample())
    assert obs[6] < 0, "log10 rms of the validation gradient is set after a step"


def test_time_limit_truncates():
    env = gym.make("l2t/StudentTraining-v0", max_episode_steps=2, **TINY)
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    env.step(zero)
    *_, terminated, truncated, _ = env.step(zero)
    assert truncated and not terminated


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_runs_several_students(mode):
    vec = gym.make_vec(
        "l2t/StudentTraining-v0",
        num_envs=2,
        vectorization_mode=mode,
        **TINY,
        observe_loss_state=False,
    )
    obs, _ = vec.reset(seed=[0, 1])
    assert obs.shape == (2, 5)
    obs, rewards, *_ = vec.step(np.zeros((2, *vec.single_action_space.shape), dtype=np.float32))
    assert obs.shape == (2, 5) and rewards.shape == (2,)
    vec.close()


def test_bad_kwargs_and_actions_raise_one_clear_error():
    with pytest.raises(ConfigError, match="config key 'dataset' must be one of"):
        gym.make("l2t/StudentTraining-v0", dataset="imagenet")
    with pytest.raises(ConfigError, match="unknown config key 'colour'"):
        gym.make("l2t/StudentTraining-v0", colour="red")
    env = gym.make("l2t/StudentTraining-v0", **TINY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(5000,\); got \(3,\)"):
        env.unwrapped.step(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("package", ["l2t", "envs", "agents"])
def test_each_package_imports_on_its_own(package):
    """No import cycle between l2t, envs and agents, whichever is imported first."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", f"import {package}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_observing_the_loss_state_trains_the_student_as_a_plain_step_would():
    """The loss state comes from a second-order unroll; the student ends where K plain
    updates under the same loss put it, and the update norm is over all K."""
    import torch

    observing = envs.StudentTrainingEnv(**TINY)
    plain = envs.StudentTrainingEnv(**TINY, observe_loss_state=False)
    action = np.random.default_rng(0).uniform(-1, 1, observing.n_phi).astype(np.float32)
    for env in (observing, plain):
        env.reset(seed=3)
        env.step(action)
    for name, p in plain.student.params.items():
        torch.testing.assert_close(observing.student.params[name], p, rtol=1e-4, atol=1e-6)
    assert observing.state["update_norm"] == pytest.approx(plain.state["update_norm"], rel=1e-4)
    assert observing.state["train_loss"] == pytest.approx(plain.state["train_loss"], rel=1e-4)
    loss_state = observing.observation()[len(plain.observation()) :]
    assert len(loss_state) == 4 and np.all(np.isfinite(loss_state)) and loss_state[1] > -12


@pytest.mark.parametrize("observe_loss_state", [True, False])
def test_a_teacher_set_loss_that_breaks_the_student_is_retaken_under_the_base_loss(
    observe_loss_state,
):
    """At lr 50 students stay finite at thousands of nats: broken (`Task.broken`). An action's
    loss is retaken under the base loss and reported (through the second-order step that
    observes the loss state, and the first-order one); a fixed loss stays itself."""
    import torch

    from agents.fixed_loss import FixedLossTeacher
    from l2t.engine.lifetime import advance, start

    def env_at_start():
        cfg = {**TINY, "optim": {"lr": 50.0}, "observe_loss_state": observe_loss_state}
        env = envs.StudentTrainingEnv(**cfg)
        env.reset(seed=3)
        return env

    acting = env_at_start()
    *_, info = acting.step(np.ones(acting.action_space.shape, dtype=np.float32))
    assert info["diverged"] == 1.0
    base = env_at_start()
    *_, info = base.step(np.zeros(base.action_space.shape, dtype=np.float32))
    assert info["diverged"] == 1.0  # the base loss breaks it too: retaken under itself
    for name, p in acting.student.params.items():
        assert torch.equal(p, base.student.params[name])
    fixed = FixedLossTeacher("base_dln", base.base_phi)
    step = advance(base.task, fixed, {}, start(base.task, fixed, 3))
    assert not step.diverged  # finite: a fixed baseline is never replaced
    assert step.val_loss > 10 * np.log(10)
    for name, p in base.student.params.items():
        torch.testing.assert_close(step.life.student.params[name], p)
