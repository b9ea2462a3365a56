"""Every long phase shows a named bar whose total is the work the phase really does, so the
ETA is honest: a bar that ends below or above its total would mislead."""

from typing import ClassVar

import pytest

from l2t.commands.cli import main
from l2t.io import progress

TINY = ["steps=20", "eval_every=10", "episodes=1", "select_students=1", "val_batch=100"]
TINY += ["unroll.steps=5", "estimator.population=2", "estimator.horizon=2", "loss.init_steps=20"]


class Recorder:
    bars: ClassVar[list["Recorder"]] = []

    def __init__(self, name: str, total: int, unit: str = "step", initial: int = 0) -> None:
        self.name, self.total, self.n, self.closed = name, total, initial, False
        Recorder.bars.append(self)

    def update(self, n: int = 1) -> None:
        self.n += n

    def write(self, text: str) -> None:
        print(text)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    Recorder.bars = []
    monkeypatch.setattr(progress, "bar", Recorder)
    return Recorder.bars


def test_train_teacher_and_compare_name_every_phase_and_fill_its_total(tmp_path, bars, capsys):
    run = tmp_path / "run"
    assert main(["train-teacher", f"out={run}", *TINY]) == 0
    assert main(["compare", f"teacher={run}", "seeds=2", "methods=ce,teacher_online"]) == 0
    names = [b.name for b in bars]
    selection = ["selection students"] * 2  # the untrained teacher, then after episode 0
    assert names == ["meta-training", *selection, "final evaluation", "compare"]
    for b in bars:
        assert b.closed and b.n == b.total > 0, (b.name, b.n, b.total)


def test_a_sweep_shows_one_bar_over_its_trials(tmp_path, bars, grid_sweep, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    path = grid_sweep("p", "teacher.lr", [0.001, 0.002])
    assert main(["sweep", path, f"out={tmp_path / 's'}", *TINY]) == 0
    assert [(b.name, b.n, b.total, b.closed) for b in bars] == [("sweep p", 2, 2, True)]


def test_a_log_gets_plain_progress_lines_and_the_run_directory_first(tmp_path, monkeypatch, capsys):
    """With stderr not a terminal (a log, nohup, CI) the phases print plain lines as they go;
    the run directory is named before the work starts, and `started` (runs/latest) too."""
    from l2t.commands.training import train_teacher
    from l2t.config import from_dict

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    seen = []

    def started(run_dir):
        seen.append(not (run_dir / "summary.json").exists())

    cfg = from_dict({"out": str(tmp_path / "run")}, from_dict(dict(a.split("=") for a in TINY)))
    assert train_teacher(cfg, started=started) is not None
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"run directory: {tmp_path / 'run'}"
    assert seen == [True]
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("meta-training: update"))
    last = max(i for i, line in enumerate(lines) if line.startswith("final evaluation: step"))
    assert first < last and "elapsed" in lines[first]
