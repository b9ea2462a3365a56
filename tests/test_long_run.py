"""Long-run health: hundreds of teacher steps leave no more live tensors than a few did, so a
run of hours does not grow its memory (each estimator keeps a population, not a history)."""

import gc

import pytest
import torch

from l2t.commands.training import make_estimator
from l2t.config import from_dict, parts, teachers


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


@pytest.mark.parametrize("estimator", ["pes", "greedy"])
def test_live_tensors_stay_flat_over_hundreds_of_teacher_steps(estimator):
    cfg = from_dict(
        {
            "steps": 40,
            "val_batch": 50,
            "unroll": {"steps": 2},
            "loss": {"init_steps": 10, "hidden": 8, "layers": 2},
            "estimator": {"kind": estimator, "population": 1, "horizon": 2},
        }
    )
    teacher = teachers.teacher(cfg, parts.base_loss(cfg))
    est = make_estimator(cfg, parts.task(cfg, parts.splits(cfg)), teacher)

    def updates(n: int) -> None:
        for _ in range(n):
            grad, _ = est.estimate(teacher.theta())
            for name, p in teacher.named_parameters():
                p.grad = grad[name]
            teacher.optimizer.step()
            teacher.optimizer.zero_grad(set_to_none=True)

    updates(30)  # several lifetimes: the population and Adam's state exist now
    before = _live_tensors()
    updates(150)  # 300 teacher steps (pes: both students of the pair), ~15 lifetimes
    after = _live_tensors()
    assert after <= before + 5, (before, after)
