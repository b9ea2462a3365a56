"""Students never collide: every student of every role (training, selection, evaluation,
tuning, distillation models) in runs of seeds 0..20 has a seed of its own."""

import pytest
import torch

from l2t.commands.cli import main
from l2t.engine.seeds import INDEX_BITS, ROLES, student_seed
from l2t.engine.task import Task


def test_runs_with_seeds_0_to_20_share_no_student():
    students = [
        student_seed(run, role, i) for run in range(21) for role in ROLES for i in range(2000)
    ]
    assert len(set(students)) == len(students)
    # the old scheme, seed * 1000 + offset, gave run 5's training students to run 0's selection
    assert student_seed(0, "selection", 0) != student_seed(5, "train", 0)


def test_out_of_range_seeds_are_refused(capsys):
    with pytest.raises(ValueError, match="student index"):
        student_seed(0, "train", 2**INDEX_BITS)
    assert main(["train-teacher", "seed=-1"]) == 2
    assert main(["train-teacher", f"seed={2**20}"]) == 2
    assert "'seed' must be in [0, 1048576)" in capsys.readouterr().err


def test_every_student_a_run_and_its_comparison_train_is_named_by_the_scheme(
    tmp_path, monkeypatch, capsys
):
    seen = []
    original = Task.init

    def init(self, seed):
        seen.append(seed)
        return original(self, seed)

    monkeypatch.setattr(Task, "init", init)
    tiny = ["steps=10", "eval_every=10", "episodes=1", "unroll.steps=5", "loss.init_steps=10"]
    tiny += ["val_batch=50", "estimator.population=1", "estimator.horizon=1", "select_students=2"]
    run = tmp_path / "run"
    assert main(["train-teacher", f"out={run}", "seed=7", *tiny]) == 0
    assert main(["compare", f"teacher={run}", "seeds=3", "methods=ce,ce_tuned,teacher_online"]) == 0
    named = {student_seed(7, role, i): (role, i) for role in ROLES for i in range(64)}
    assert {named[s][0] for s in seen} == {"train", "selection", "evaluation", "tuning"}
    evaluation = sorted(i for role, i in map(named.__getitem__, seen) if role == "evaluation")
    assert set(evaluation) == {0, 1, 2}  # the run's final student is compare's first


def test_a_batch_is_the_training_samples_its_indices_name():
    """`Task.train_indices` names the samples of `Task.batches` (the reweighting
    diagnostics find the noisy labels in a batch by them)."""
    from l2t.commands.applying import make_task
    from l2t.config import from_dict

    task = make_task(from_dict({"steps": 40, "unroll": {"steps": 15}}))
    for seed, t in ((3, 0), (5, 2)):  # t = 2: the last teacher step, 10 student steps
        idx = task.train_indices(seed, t)
        assert idx.shape == (15 if t < 2 else 10, task.batch_size)
        assert torch.equal(task.batches(seed, t).x, task.splits.x_train[idx])
    assert not torch.equal(task.train_indices(3, 0), task.train_indices(4, 0))
