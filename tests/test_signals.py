"""A run stopped by SIGTERM (a pre-empting scheduler) or Ctrl-C exits 143 or 130 with one line that
says how to go on, and resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from l2t.commands.cli import main
from l2t.io.checkpoint import load_checkpoint

RUN = ["steps=60", "eval_every=30", "episodes=2", "select_students=1", "val_batch=100"]
RUN += ["unroll.steps=5", "loss.init_steps=20", "estimator.population=1", "estimator.horizon=2"]


def _start(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "l2t", "train-teacher", f"out={out}", *RUN, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run wrote no checkpoint in time"
        time.sleep(0.05)


def _saved_update(path):
    from l2t.io.checkpoint import load_checkpoint

    if not path.exists():
        return None
    saved = load_checkpoint(path)
    return saved["episode"], saved["update"]


def _results(out):
    return (out / "metrics.jsonl").read_bytes(), (out / "summary.json").read_bytes()


def test_sigterm_mid_episode_checkpoints_there_says_how_to_resume_and_resume_finishes(
    tmp_path, capsys
):
    reference = tmp_path / "reference"
    assert main(["train-teacher", f"out={reference}", *RUN, "checkpoint_every=0"]) == 0
    out = tmp_path / "run"
    proc = _start(out, "checkpoint_every=0")  # only the stop writes a checkpoint mid-episode
    _wait_for(out / "metrics.jsonl", proc)
    while b'"phase": "meta"' not in (out / "metrics.jsonl").read_bytes():
        assert proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM: a pre-empted job, not a finished one
    last = err.strip().splitlines()[-1]
    assert last.startswith("l2t: stopped;") and f"out={out} resume=true" in last, err
    episode, update = _saved_update(out / "checkpoint.pt")
    assert f"episode {episode}, update {update}" in last and update > 0  # not the episode start
    assert main(["train-teacher", f"out={out}", *RUN, "checkpoint_every=0", "resume=true"]) == 0
    assert _results(out) == _results(reference)  # none lost, none twice, the same numbers


@pytest.mark.parametrize("point", ["mid-episode", "selection", "final evaluation"])
def test_sigkill_then_resume_ends_byte_identical(tmp_path, point, capsys):
    args = [*RUN, "checkpoint_every=1"]
    reference = tmp_path / "reference"
    assert main(["train-teacher", f"out={reference}", *args]) == 0
    out = tmp_path / "run"
    proc = _start(out, "checkpoint_every=1")
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "the run finished before the kill point"
        assert time.monotonic() < deadline
        saved = _saved_update(out / "checkpoint.pt")
        if point == "mid-episode" and saved is not None and saved[1] >= 1:
            break
        if point == "final evaluation" and (out / "teacher.pt").exists():
            break
        metrics = out / "metrics.jsonl"  # episode 0's last update (of 6) is logged: selection
        if point == "selection" and metrics.exists() and b'"update": 6,' in metrics.read_bytes():
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert not (out / "summary.json").exists()
    assert main(["train-teacher", f"out={out}", *args, "resume=true"]) == 0
    assert _results(out) == _results(reference)
    saved = [
        yaml.safe_load((out / "config.yaml").read_text()),
        load_checkpoint(out / "teacher.pt")["config"],
        load_checkpoint(out / "checkpoint.pt")["config"],
    ]
    assert all(c["resume"] is False for c in saved)  # the files say what the run is


TEACHERS = {  # each estimator, and the agent that learns inside the env (one student)
    "greedy": ["estimator.kind=greedy"],
    "tbptt": ["estimator.kind=tbptt"],
    "pes": ["estimator.kind=pes"],
    "es": ["estimator.kind=es"],
    "reinforce": ["teacher.agent=reinforce"],
}


@pytest.mark.parametrize("teacher", TEACHERS)
def test_a_stop_after_any_update_resumes_byte_identical(tmp_path, monkeypatch, capsys, teacher):
    """A stop at the end of the third teacher update of episode 0 (the first for es, whose
    update is a whole lifetime): the checkpoint there holds everything to go on exactly."""
    from l2t.io import stopping

    args = [*RUN, *TEACHERS[teacher], "checkpoint_every=0"]
    reference = tmp_path / "reference"
    assert main(["train-teacher", f"out={reference}", *args]) == 0
    at = 1 if teacher == "es" else 3
    calls = iter(range(1, 1000))
    out = tmp_path / "run"
    with monkeypatch.context() as patch:  # (undo() would also drop conftest's thread count)
        patch.setattr(stopping, "requested", lambda: next(calls) == at)
        assert main(["train-teacher", f"out={out}", *args]) == 130  # as after Ctrl-C
    assert "stopped;" in capsys.readouterr().err
    assert _saved_update(out / "checkpoint.pt") == (0, at)
    assert not (out / "summary.json").exists()
    assert main(["train-teacher", f"out={out}", *args, "resume=true"]) == 0
    assert _results(out) == _results(reference)


def test_sigterm_before_any_checkpoint_says_there_is_nothing_to_resume(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(out / "config.yaml", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM: a pre-empted job, not a finished one
    assert "nothing to resume" in err.strip().splitlines()[-1], err


def test_an_injected_divergent_loss_is_rolled_back_counted_and_never_saved(
    tmp_path, monkeypatch, capsys
):
    import torch

    from agents import LSTMTeacher, Teacher
    from l2t.io.checkpoint import load_checkpoint

    original, calls = LSTMTeacher.loss_fn, [0]

    def sometimes_broken(self, task, params):
        loss = original(self, task, params)
        base = self.base_params()
        if all(torch.equal(p, b) for p, b in zip(params, base)):
            return loss  # the base loss the guard falls back to stays sound
        calls[0] += 1
        if calls[0] % 5 == 0:
            return lambda z, y: loss(z, y) * float("inf")
        return loss

    monkeypatch.setattr(LSTMTeacher, "loss_fn", sometimes_broken)
    out = tmp_path / "run"
    assert main(["train-teacher", f"out={out}", *RUN]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta_training_diverged_steps"] > 0
    assert f"{summary['meta_training_diverged_steps']} in meta-training" in capsys.readouterr().out
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    per_update = sum(r.get("diverged_steps", 0) for r in lines if r.get("phase") == "meta")
    assert per_update == summary["meta_training_diverged_steps"]
    teacher = Teacher.load(out / "teacher.pt")
    assert all(torch.isfinite(p).all() for p in teacher.state_dict().values())
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert all(torch.isfinite(p).all() for p in checkpoint["teacher"].values())
    assert all(v is not None for v in summary.values())  # no NaN (written as null) anywhere


def test_a_setting_that_breaks_every_student_stops_with_one_line(tmp_path, capsys):
    """optim.lr=50 keeps the students finite but at ten times chance-level loss: every step
    is retaken under the base loss, which breaks them too; the run stops and says why."""
    out = tmp_path / "run"
    args = ["optim.lr=50", "max_divergences=5", "checkpoint_every=1"]
    assert main(["train-teacher", f"out={out}", *RUN, *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("l2t: stopped: 5 teacher steps in a row"), err
    assert "lower optim.lr" in err[0]
    assert not (out / "summary.json").exists() and not (out / "teacher.pt").exists()
