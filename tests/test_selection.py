"""Selection keeps a trained teacher only when a one-sided paired test says it beats the
untrained one (l2t/engine/selection.py, docs/design.md §5)."""

import json
import math

import pytest

from l2t.commands.training import train_teacher
from l2t.config import from_dict
from l2t.engine.selection import judge, paired_p


def _run(out, level):
    """Two greedy episodes of an LSTM teacher on MNIST-1D, three selection students."""
    cfg = from_dict(
        {
            "steps": 60,
            "episodes": 2,
            "eval_every": 30,
            "val_batch": 200,
            "select_students": 3,
            "select_level": level,
            "out": str(out),
            "loss": {"init_steps": 100},
            "unroll": {"steps": 5},
            "estimator": {"kind": "greedy"},
        }
    )
    assert train_teacher(cfg, show_progress=False) is not None
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return records, json.loads((out / "summary.json").read_text())


def test_the_p_value_is_student_t_of_the_paired_differences():
    """d = (1, 2, 3, 2) pt: mean 2, sd sqrt(2/3), t = 2 / (sd / 2) = 4.899 at 3 degrees of
    freedom, one-sided p 0.00813 (a table of Student's t)."""
    untrained = [0.60, 0.61, 0.62, 0.63]
    candidate = [0.61, 0.63, 0.65, 0.65]
    assert paired_p(candidate, untrained) == pytest.approx(0.00813, abs=2e-5)
    assert paired_p(untrained, candidate) == pytest.approx(1 - 0.00813, abs=2e-5)


def test_a_higher_mean_inside_the_spread_is_not_accepted():
    """+0.5 pt on average, from one student gaining 4 pt and the rest losing a little: the
    old rule (any higher mean) kept such a teacher; the paired test does not."""
    untrained = [0.60, 0.62, 0.58, 0.61, 0.59]
    candidate = [0.64, 0.615, 0.575, 0.605, 0.585]
    verdict = judge(candidate, untrained, 0.05)
    assert verdict.difference > 0 and not verdict.accepted
    assert judge(candidate, untrained, 1.0).accepted  # level 1: the old rule


def test_equal_differences_fall_back_to_the_sign_test():
    untrained = [0.5, 0.6, 0.7]
    assert paired_p([0.51, 0.61, 0.71], untrained) == pytest.approx(0.125)
    assert paired_p(untrained, untrained) == 1.0  # the untrained teacher itself: never kept
    assert not judge(untrained, untrained, 0.05).accepted
    assert math.isnan(paired_p([0.7], [0.6]))  # one student: no test, never accepted
    assert not judge([0.7], [0.6], 0.05).accepted


def test_a_run_keeps_the_untrained_teacher_unless_the_test_accepts(tmp_path):
    """A tiny run at a level no trained teacher can pass keeps the untrained one, and the
    log says why for every episode; the same run at level 1 keeps its best mean."""
    records, summary = _run(tmp_path / "strict", 1e-9)
    episodes = [r for r in records if r.get("phase") == "episode"]
    assert len(episodes) == 2
    assert all(r["selection_accepted"] is False for r in episodes)
    assert all(0 <= r["selection_p"] <= 1 for r in episodes if "selection_p" in r)
    assert summary["best_episode"] == -1
    records, summary = _run(tmp_path / "lenient", 1.0)
    scores = [r["selection_val_acc"] for r in records if "selection_val_acc" in r]
    assert summary["best_val_acc"] == max(scores)
