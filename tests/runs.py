"""A small trained run that several test modules apply (teach, compare, LearnedLoss)."""

from pathlib import Path
from typing import Any

from l2t.commands.applying import make_task, run_config
from l2t.commands.training import train_teacher
from l2t.config import from_dict
from l2t.engine.seeds import student_seed


def trained_run(out: Path, **teacher: Any) -> Path:
    """A greedy-trained LSTM teacher on MNIST-1D in seconds; `teacher` sets teacher.* keys."""
    cfg = from_dict(
        {
            "steps": 60,
            "episodes": 1,
            "eval_every": 30,
            "val_batch": 200,
            "select_students": 1,
            "out": str(out),
            "loss": {"init_steps": 100},
            "unroll": {"steps": 5},
            "teacher": teacher,
            "estimator": {"kind": "greedy"},
        }
    )
    assert train_teacher(cfg, show_progress=False) is not None
    return out


def teach_student(run: Path) -> tuple[Any, Any, Any, Any, int]:
    """`l2t teach`'s first student of `run` as a loop by hand starts it: the run's config,
    task, the student's module at its initialization, that state, and its seed."""
    cfg = run_config(run, {})
    task = make_task(cfg)
    seed = student_seed(cfg.seed, "evaluation", 0)
    start = task.init(seed)
    model = task.build()
    model.load_state_dict({**start.params, **start.buffers})
    return cfg, task, model, start, seed
