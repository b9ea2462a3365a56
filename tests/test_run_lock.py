"""One writer per run directory, and writes that fail loudly (l2t/io/run_lock.py,
l2t/io/checkpoint.py): a second writer is refused and changes nothing; a lock whose process
died is taken over; a failed write leaves the last checkpoint intact and says so."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from l2t.commands.cli import main
from l2t.io import checkpoint

RUN = ["steps=60", "eval_every=30", "episodes=2", "select_students=1", "val_batch=100"]
RUN += ["unroll.steps=5", "loss.init_steps=20", "estimator.population=1", "estimator.horizon=2"]


def _files(out):
    return {name: (out / name).read_bytes() for name in ("metrics.jsonl", "summary.json")}


def test_a_second_writer_is_refused_and_the_first_run_ends_as_if_alone(tmp_path, capsys):
    reference = tmp_path / "reference"
    assert main(["train-teacher", f"out={reference}", *RUN, "checkpoint_every=1"]) == 0
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "l2t", "train-teacher", f"out={out}", *RUN, "checkpoint_every=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():  # the resume needs a checkpoint to start from
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    capsys.readouterr()
    assert main(["train-teacher", f"out={out}", "resume=true", *RUN, "checkpoint_every=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"being written by another l2t (pid {first.pid} on {socket.gethostname()}" in err
    assert len(err.splitlines()) == 1
    assert first.wait(timeout=300) == 0, first.communicate()
    assert _files(out) == _files(reference)
    assert not (out / ".lock").exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone.send_signal(signal.SIGKILL)
    gone.wait()
    out = tmp_path / "run"
    out.mkdir()
    lock = {"pid": gone.pid, "host": socket.gethostname(), "started": "earlier"}
    (out / ".lock").write_text(json.dumps(lock))
    assert main(["train-teacher", f"out={out}", *RUN, "episodes=1"]) == 0
    assert f"taking over the lock of '{out}' from pid {gone.pid}" in capsys.readouterr().err
    assert (out / "summary.json").is_file() and not (out / ".lock").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_lock_whose_pid_a_later_process_reuses_is_taken_over(tmp_path, capsys):
    """The lock records when its process started; a live process of that number that
    started at another time is not the writer (pid reuse, e.g. pid 1 in a container)."""
    from l2t.io.run_lock import _birth

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "run"
        out.mkdir()
        here = {"pid": live.pid, "host": socket.gethostname(), "started": "earlier"}
        (out / ".lock").write_text(json.dumps({**here, "birth": str(_birth(live.pid))}))
        assert main(["compare", "seeds=1", "methods=ce", f"out={out}", "steps=20"]) == 2
        assert "being written by another l2t" in capsys.readouterr().err  # it is the writer
        (out / ".lock").write_text(json.dumps({**here, "birth": "1"}))
        args = ["compare", "seeds=1", "methods=ce", f"out={out}", "steps=20", "unroll.steps=5"]
        assert main(args) == 0
        err = capsys.readouterr().err
        assert f"from pid {live.pid} (a later process reuses its number)" in err
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("content", ["", "garbage", '{"pid": "abc"}', "[1, 2]"])
def test_a_damaged_lock_says_how_to_clear_it(tmp_path, capsys, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(content)
    assert main(["compare", "seeds=1", "methods=ce", f"out={out}", "steps=20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a lock l2t wrote" in err[0], err
    assert "delete that file and run again" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written


def test_a_lock_from_another_host_says_how_to_clear_it(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    assert main(["compare", "seeds=1", "methods=ce", f"out={out}", "steps=20"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pid 1 on elsewhere, since then" in err and f"delete '{out / '.lock'}'" in err
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written


FULL_DISK = [  # as the OS reports it, and as torch's zip writer does (a RuntimeError)
    (lambda name: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name), "No space left"),
    (
        lambda name: RuntimeError(
            "PytorchStreamWriter failed writing file data/0: file write failed"
        ),
        "file write failed",
    ),
]


@pytest.mark.parametrize(("error", "phrase"), FULL_DISK, ids=["OSError", "RuntimeError"])
def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(
    tmp_path, capsys, monkeypatch, error, phrase
):
    out = tmp_path / "run"
    saves = []
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):  # the third checkpoint hits a full disk
        saves.append(1)
        if len(saves) == 3:
            f.write(b"half a checkpoint")
            raise error(str(f.name))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    assert main(["train-teacher", f"out={out}", *RUN, "checkpoint_every=1"]) == 1
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if x.startswith("l2t:")]
    assert len(errors) == 1 and "could not write" in errors[0]  # (progress lines aside)
    assert phrase in errors[0] and "resume=true" in errors[0]
    assert "Traceback" not in err
    assert not list(out.glob("*.tmp")) and not (out / ".lock").exists()
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    saved = checkpoint.load_checkpoint(out / "checkpoint.pt")  # the second, whole
    assert (saved["episode"], saved["update"]) == (0, 2)
    with open(out / "metrics.jsonl", "a") as f:  # and a crash mid-append left a torn line
        f.write('{"phase": "meta", "upd')
    assert main(["train-teacher", f"out={out}", "resume=true"]) == 0
    assert "line(s) written after the checkpoint dropped" in capsys.readouterr().err
    assert (out / "summary.json").is_file()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # valid JSON lines


def test_a_command_marks_its_directory_and_a_refusal_inside_leaves_nothing(tmp_path):
    """`locked` marks the directory as the command's (`.l2t`); a command refused before it
    wrote anything leaves no directory behind; another command's run is refused whole."""
    from l2t.config import ConfigError
    from l2t.io import out_dir, run_lock

    fresh = tmp_path / "new" / "run"
    with pytest.raises(ConfigError, match="refused"), run_lock.locked(fresh, "compare"):
        assert out_dir.kind_of(fresh) == "compare"
        raise ConfigError("refused inside")
    assert not (tmp_path / "new").exists()
    with run_lock.locked(fresh, "compare"):
        (fresh / "results.md").write_text("a table\n")
    assert sorted(p.name for p in fresh.iterdir()) == [".l2t", "results.md"]
    before = (fresh / "results.md").read_text()
    refused = pytest.raises(ConfigError, match="holds a compare run; teach writes only")
    with refused, run_lock.locked(fresh, "teach"):
        raise AssertionError("not reached")
    assert (fresh / "results.md").read_text() == before and (fresh / ".l2t").exists()
