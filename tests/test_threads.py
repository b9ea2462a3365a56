"""Thread selection: a fixed count is used as given; in auto mode each l2t process takes its
share of the cores among the running ones, and gives threads back when another starts."""

import os
import subprocess
import sys

import pytest
import torch
import yaml

from l2t.commands.cli import main
from l2t.io import threads


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A 4-core machine with an empty registry of l2t processes, auto mode."""
    monkeypatch.setattr(threads, "registry", lambda: tmp_path / "registry")
    monkeypatch.setattr(threads, "cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "_registered", None)
    yield tmp_path / "registry"
    threads._unregister()


@pytest.fixture
def other_process():
    """A live process that is not this one (for the registry, another l2t run)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def test_a_fixed_count_is_used_as_given(machine):
    assert threads.configure(3) == 3 == torch.get_num_threads()
    assert threads.configure(1) == 1 == torch.get_num_threads()
    assert (machine / str(os.getpid())).read_text() == "1"  # others count it


def test_omp_num_threads_fixes_the_count_in_auto_mode(machine, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.configure(0) == 2


def test_alone_a_process_takes_every_core_and_shares_them_when_another_starts(
    machine, other_process, monkeypatch
):
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    assert threads.configure(0) == 4
    (machine / str(other_process)).write_text("0")  # a second automatic process starts
    threads.rebalance()
    assert torch.get_num_threads() == 2
    (machine / str(other_process)).write_text("3")  # one that holds 3 threads of its own
    threads.rebalance()
    assert torch.get_num_threads() == 1


def test_the_files_of_dead_processes_are_removed(machine, other_process):
    machine.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (machine / str(dead.pid)).write_text("0")
    (machine / str(other_process)).write_text("0")
    assert threads.configure(0) == 2
    assert sorted(p.name for p in machine.iterdir()) == sorted(
        [str(other_process), str(os.getpid())]
    )


def test_sweep_workers_split_the_cores(machine, tmp_path, grid_sweep, monkeypatch, capsys):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    path = grid_sweep("t", "seed", [0, 1])
    tiny = ["steps=10", "episodes=1", "eval_every=10", "unroll.steps=5", "loss.init_steps=20"]
    out = tmp_path / "s"
    assert main(["sweep", path, "--workers", "2", f"out={out}", "val_batch=100", *tiny]) == 0
    used = [yaml.safe_load(c.read_text())["threads"] for c in out.glob("trial-*/config.yaml")]
    assert used == [1, 1]


def test_compare_workers_split_the_cores_and_train_the_serial_students(machine, tmp_path, capsys):
    tiny = ["steps=40", "eval_every=20", "unroll.steps=5", "loss.init_steps=20", "val_batch=100"]
    args = ["compare", "methods=ce,base_dln", "seeds=2", "progress=false", *tiny]
    assert main([*args, "workers=2", f"out={tmp_path / 'two'}"]) == 0
    # what the workers reported using: 4 cores (the fixture's machine) split between 2
    assert "4 students in 2 worker processes, 2 thread(s) each" in capsys.readouterr().out
    assert main([*args, "threads=2", f"out={tmp_path / 'one'}"]) == 0
    assert (tmp_path / "two" / "results.json").read_text() == (
        tmp_path / "one" / "results.json"
    ).read_text()


def test_negative_threads_is_one_line(capsys):
    assert main(["train-teacher", "threads=-1"]) == 2
    assert "'threads' must be >= 0" in capsys.readouterr().err
