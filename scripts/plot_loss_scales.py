"""The gradient scale of several teachers' learned losses over training, in one figure
(`docs/results/*_loss_scale.png`). Usage:

    python scripts/plot_loss_scales.py OUT.png NAME=RUN_DIR [NAME=RUN_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from agents import LSTMTeacher, Teacher
from l2t.engine.schedule import Schedule
from l2t.io.plots import plot_loss_scale


def main(out: str, runs: list[str]) -> None:
    schedules, base = {}, None
    for name, run_dir in (arg.split("=", 1) for arg in runs):
        teacher = Teacher.load(Path(run_dir) / "teacher.pt")
        assert isinstance(teacher, LSTMTeacher)
        base = teacher.split(teacher.base_phi)
        schedules[name] = Schedule.load(Path(run_dir) / "schedule.pt")
    assert base is not None, "name at least one run"
    print(plot_loss_scale(schedules, base, Path(out)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
