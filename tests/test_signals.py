"""A run stopped by SIGTERM (a pre-empting scheduler) or Ctrl-C exits 0 with one line that
says how to go on, and resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

from l2t.cli import main

RUN = ["steps=60", "eval_every=30", "episodes=4", "select_students=1", "val_batch=100"]
RUN += ["unroll.steps=5", "loss.init_steps=20", "teacher.population=1", "teacher.horizon=2"]


def _start(out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "l2t", "train-teacher", f"out={out}", *RUN],
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


def test_sigterm_after_a_checkpoint_says_how_to_resume_and_resume_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("l2t: stopped;") and f"out={out} resume=true" in last, err
    assert main(["train-teacher", f"out={out}", *RUN, "resume=true"]) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [r["episode"] for r in lines if r.get("phase") == "episode"]
    assert episodes == [0, 1, 2, 3]  # none lost, none twice
    assert json.loads((out / "summary.json").read_text())["teacher_test_acc"] is not None


def test_sigterm_before_any_checkpoint_says_there_is_nothing_to_resume(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(out / "config.yaml", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "nothing to resume" in err.strip().splitlines()[-1], err
