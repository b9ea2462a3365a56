"""Property tests (hypothesis): whatever a user types as an override, and whatever bytes lie
in a file l2t reads, the answer is a value or one ConfigError — never another exception
(issue 35). Each reader is the one its command calls."""

import contextlib
import io
import os
import string
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import Teacher
from l2t.commands.sweep import load_sweep
from l2t.commands.training import Checkpoint
from l2t.config import ConfigError, allowed_keys, load_config, teachers
from l2t.data.datasets import load_data
from l2t.data.distill import load_model
from l2t.engine.schedule import Schedule
from l2t.io import run_lock
from l2t.io.tracking import Tracker

KEYS = allowed_keys()
VALUES = st.one_of(
    st.text(string.printable, max_size=20),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "true", "false", "none", "[1, 2]", "{a: 1}", "nan", "-0", "1e400"]),
)
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(  # L2T_PROPERTY_EXAMPLES=500 for a longer search by hand
    max_examples=int(os.environ.get("L2T_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FIELDS = [  # the keys l2t's files hold: a file that loads may hold any of them, of any type
    *("episode", "update", "teacher", "teacher_extra", "estimators", "best_teacher"),
    *("best_val_acc", "best_episode", "metrics_lines", "config", "kind", "hparams"),
    *("state_dict", "format", "phi_shapes", "progress", "phi", "input_shape", "num_classes"),
    *("student", "method", "metric", "parameters", "steps", "optim"),
    *("hidden", "lr", "update", "param", "phi_shapes", "n_params", "ranges", "name"),
]
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.sampled_from(["lstm", "model", "mlp", "pes"]),
    st.builds(torch.zeros, st.integers(0, 3)),
)
SAVED = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6)
    ),
    max_leaves=12,
)


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


BYTES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"{}", b"[1, 2, 3]", b"PK\x03\x04", b"\x80\x02}q\x00.", b"null"]),
    SAVED.map(_saved),  # files that load: torch's format, anything inside
    SAVED.map(lambda obj: yaml.safe_dump(obj).encode() if _yaml_safe(obj) else b""),
)


def _yaml_safe(obj) -> bool:
    try:
        yaml.safe_dump(obj)
    except yaml.YAMLError:
        return False
    return True


@QUICK
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_any_overrides_give_a_config_or_one_config_error(pairs):
    try:
        cfg = load_config(None, [f"{k}={v}" for k, v in pairs])
        teachers.check(cfg)
    except ConfigError:
        pass


@QUICK
@given(st.lists(st.text(string.printable, max_size=12), max_size=3))
def test_any_words_as_overrides_give_a_config_or_one_config_error(words):
    with contextlib.suppress(ConfigError):
        load_config(None, words)


@pytest.fixture(scope="module")
def splits():
    return load_data("digits", val_size=100)


def _refused_or_read(read, path: Path, data: bytes):
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        read(path)


@FILES
@given(data=BYTES)
def test_any_bytes_in_a_file_l2t_reads_are_read_or_refused_in_one_line(tmp_path, splits, data):
    readers = {
        "config.yaml": lambda p: load_config(p),
        "sweep.yaml": load_sweep,
        "checkpoint.pt": lambda p: Checkpoint.load(p, torch.device("cpu")),
        "teacher.pt": Teacher.load,
        "schedule.pt": Schedule.load,
        "model.pt": lambda p: load_model(p, splits),
    }
    for name, read in readers.items():
        _refused_or_read(read, tmp_path / name, data)


@FILES
@given(data=BYTES)
def test_any_bytes_in_a_lock_or_a_history_are_taken_over_or_refused(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / ".lock").write_bytes(data)
    with contextlib.suppress(ConfigError):
        run_lock.release(run_lock.acquire(run))
    (run / "metrics.jsonl").write_bytes(data)
    with contextlib.suppress(ConfigError):
        Tracker(run, keep_lines=2).close()
