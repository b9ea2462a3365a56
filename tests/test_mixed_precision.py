"""`autocast` (docs/design.md §3, l2t/engine/student_state.py `MixedPrecision`): the students'
first-order SGD steps run their forward in bf16/fp16 and their loss in fp32, on the looped and
the vmapped path alike; second-order unrolls stay fp32; fp16 carries a dynamic loss scale
that skips an overflowing step and halves, as torch.amp.GradScaler does."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from l2t.config import ConfigError, parts, teachers, varied
from l2t.engine.lifetime import advance, start
from l2t.engine.population import advance_together
from l2t.engine.student_state import SCALE_START, StudentState

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _task(cfg, autocast):
    cfg = varied(cfg, {"autocast": autocast})
    return cfg, parts.task(cfg, parts.splits(cfg, torch.device("cpu")))


def _forward_dtypes(task):
    """The dtypes of the student's first layer's outputs, recorded by a hook."""
    seen: list[torch.dtype] = []
    layer = next(m for m in task.model.modules() if isinstance(m, torch.nn.Linear))
    layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_first_order_steps_run_the_forward_in_the_autocast_dtype(tiny_cfg, autocast):
    _, task = _task(tiny_cfg, autocast)
    seen = _forward_dtypes(task)
    student, batches = task.init(0), task.batches(0, 0)
    after = task.train(student, F.cross_entropy, batches)
    assert seen == [DTYPES[autocast]] * task.k
    assert after.train_loss.dtype == torch.float32  # the loss is float32, as F.cross_entropy's
    assert {p.dtype for p in after.params.values()} == {torch.float32}
    assert (after.loss_scale is not None) == (autocast == "fp16")
    seen.clear()
    task.train(student, F.cross_entropy, batches, create_graph=True)  # second order: fp32
    assert seen == [torch.float32] * task.k


def test_without_autocast_nothing_changes_dtype(tiny_cfg, float64):
    """The default keeps the float64 students of the equality tests float64 (no cast to
    float32 of the logits) and carries no loss scale."""
    _, task = _task(tiny_cfg, "off")
    task.splits.x_train = task.splits.x_train.double()
    task.model.double()
    student = task.train(task.init(0), F.cross_entropy, task.batches(0, 0))
    assert student.train_loss.dtype == torch.float64 and student.loss_scale is None


def test_an_overflowing_fp16_step_is_skipped_and_the_scale_halved(tiny_cfg):
    """A loss 1e4 times cross-entropy overflows fp16's backward at the starting scale 2^16:
    the unroll skips those steps (the student does not move) and halves the scale until the
    gradients fit. Exactly the same student as an unroll that started at the scale found and
    took only the steps that were not skipped."""
    cfg = varied(tiny_cfg, {"unroll": {"steps": 15}, "optim": {"lr": 1e-5}})  # 1e4 x 1e-5:
    _, task = _task(cfg, "fp16")  # the steps of cross-entropy at lr 0.1
    k = task.k
    loud = lambda logits, y: 1e4 * F.cross_entropy(logits, y)  # noqa: E731
    start_state, batches = task.init(0), task.batches(0, 0)
    after = task.train(start_state, loud, batches)
    scale, finite_steps = after.loss_scale.tolist()
    skipped = round(math.log2(SCALE_START / scale))
    assert 1 <= skipped < k and SCALE_START / 2**skipped == scale  # it overflowed, then fit
    assert finite_steps == k - skipped  # every later step fit at the scale found
    assert bool(after.finite)  # a skipped step is not a broken student
    at_scale = StudentState(**{**vars(start_state), "loss_scale": torch.tensor([scale, 0.0])})
    rest = dataclasses.replace(batches, x=batches.x[skipped:], y=batches.y[skipped:])
    direct = task.train(at_scale, loud, rest)
    for name, p in after.params.items():
        assert torch.equal(p, direct.params[name]), name
        assert not torch.equal(p, start_state.params[name])  # the steps that fit moved it


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_a_student_learns_under_autocast(tiny_cfg, autocast):
    _, task = _task(tiny_cfg, autocast)
    student = task.init(0)
    first = None
    for t in range(task.teacher_steps):
        student = task.train(student, F.cross_entropy, task.batches(0, t))
        first = float(student.train_loss) if first is None else first
    assert float(student.train_loss) < 0.9 * first


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_the_vmapped_population_runs_under_autocast_and_carries_each_scale(tiny_cfg, autocast):
    """First-order members run their forward in the autocast dtype, as the looped path does
    (the validation after the K steps in fp32),
    and each member's loss scale advances as its looped student's: the steps that overflowed
    fp16 halved it, the others counted."""
    cfg, task = _task(tiny_cfg, autocast)
    policy = teachers.teacher(cfg, parts.base_loss(cfg))
    lives = [start(task, policy, seed) for seed in (1, 2)]
    thetas = [policy.theta()] * 2
    seen = _forward_dtypes(task)
    together = advance_together(task, policy, thetas, lives)
    assert seen == [DTYPES[autocast]] * task.k + [torch.float32]  # validation stays fp32
    one = [advance(task, policy, th, life) for th, life in zip(thetas, lives)]
    for a, b in zip(one, together):
        if autocast == "bf16":
            assert a.life.student.loss_scale is None and b.life.student.loss_scale is None
        else:
            scale, finite_steps = a.life.student.loss_scale.tolist()
            skipped = round(math.log2(SCALE_START / scale))
            assert scale == SCALE_START / 2**skipped and finite_steps == task.k - skipped
            assert torch.equal(b.life.student.loss_scale, a.life.student.loss_scale)


def test_an_unknown_autocast_is_refused_with_the_choices(tiny_cfg):
    with pytest.raises(ConfigError, match="bf16"):
        varied(tiny_cfg, {"autocast": "fp8"})
