"""One run over two processes (torchrun, gloo, 127.0.0.1 only): each runs its share of the
population, the estimates are summed once per update, rank 0 alone writes the run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from l2t.commands.cli import main
from l2t.io.checkpoint import load_checkpoint

RUN = ["steps=60", "eval_every=30", "episodes=2", "select_students=3", "val_batch=100"]
RUN += ["unroll.steps=5", "loss.init_steps=20", "progress=false"]
RUN += ["estimator.kind=pes", "estimator.population=3", "estimator.horizon=2"]


def _torchrun(out, *args, processes=2, start=subprocess.run):
    with socket.socket() as s:  # a free port on the loopback interface
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    command += ["--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={port}"]
    command += ["-m", "l2t", "train-teacher", f"out={out}", *RUN, *args]
    # torchrun's own files (torchelastic_*) in the test's folder, not left in the system's
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(Path(out).parent)}
    if start is subprocess.run:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    return start(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)


def test_two_processes_train_the_teacher_one_process_trains_on_the_whole_population(
    tmp_path, capsys
):
    two = _torchrun(tmp_path / "two", "episodes=1")  # PES at this size amplifies rounding
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("run directory:") == 2  # rank 0 names it at start and end, rank 1
    # is silent
    assert main(["train-teacher", f"out={tmp_path / 'one'}", *RUN, "episodes=1"]) == 0
    split = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    whole = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    assert len(split["estimators"]) == 2 and len(whole["estimators"]) == 1
    pairs = [len(share["pairs"]) for share in split["estimators"]]
    assert pairs == [2, 1]  # members {0, 2} and {1} of the three pairs
    for name, value in whole["teacher"].items():  # the same estimates, summed in another order
        torch.testing.assert_close(split["teacher"][name], value, rtol=1e-5, atol=1e-6)
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "one").iterdir())
    # a run over two processes resumes with two, and says so when given another number
    capsys.readouterr()
    resume = ["resume=true", "episodes=1"]
    assert main(["train-teacher", f"out={tmp_path / 'two'}", *RUN, *resume]) == 2
    assert "resume it with as many (torchrun --nproc_per_node=2)" in capsys.readouterr().err


def _rank_pids(torchrun_pid):
    """{rank: pid} of the workers a torchrun process started (read from /proc)."""
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
        rank = next((e for e in environ if e.startswith(b"RANK=")), None)
        if parent == torchrun_pid and rank is not None:
            ranks[int(rank[5:])] = int(stat.parent.name)
    return ranks


def test_a_killed_run_resumes_with_two_and_ends_byte_identical(tmp_path):
    """Whole group killed, or one rank: the survivor leaves within seconds (no hang), and a
    resume with two processes ends as the uninterrupted run did."""
    quick = ("select_students=1", "checkpoint_every=1")  # the selection split is tested above
    reference = _torchrun(tmp_path / "reference", *quick)
    assert reference.returncode == 0, reference.stderr
    for kill in ("group", "rank 1"):
        out = tmp_path / kill.replace(" ", "")
        proc = _torchrun(out, *quick, start=subprocess.Popen)
        deadline = time.monotonic() + 120
        while True:  # kill once a checkpoint inside episode 0 exists
            assert proc.poll() is None, "the run finished before the kill point"
            assert time.monotonic() < deadline
            checkpoint = out / "checkpoint.pt"
            if checkpoint.exists() and load_checkpoint(checkpoint)["update"] >= 2:
                break
            time.sleep(0.05)
        if kill == "group":
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:  # rank 0 must notice and leave; torchrun then exits non-zero
            os.kill(_rank_pids(proc.pid)[1], signal.SIGKILL)
            assert proc.wait(timeout=60) != 0
        assert not (out / "summary.json").exists()
        resumed = _torchrun(out, *quick, "resume=true")
        assert resumed.returncode == 0, resumed.stderr
        for name in ("metrics.jsonl", "summary.json"):
            assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()


def test_a_population_of_two_architectures_trains_one_teacher_that_teaches_both(tmp_path):
    mix = ["students_mix=mlp,cnn1d", "estimator.population=2", "episodes=1"]
    run = _torchrun(tmp_path / "run", *mix)  # member 0 on process 0, member 1 on process 1
    assert run.returncode == 0, run.stderr
    shares = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["estimators"]
    layers = [next(iter(share["pairs"][0]["plus"]["student"]["params"])) for share in shares]
    assert layers == ["net.1.weight", "features.0.weight"]  # an MLP and a 1-d CNN
    for student in ("mlp", "cnn1d"):
        out = tmp_path / student
        args = ["compare", f"teacher={tmp_path / 'run'}", f"student={student}", f"out={out}"]
        assert main([*args, "methods=teacher_online", "seeds=1", "progress=false"]) == 0
        curve = json.loads((out / "results.json").read_text())["teacher_online"]["curves"][0]
        assert curve[-1]["test_acc"] > curve[0]["test_acc"] + 0.02  # it learned under the teacher
