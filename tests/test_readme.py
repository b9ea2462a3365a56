"""Every `l2t` command (and `make run`'s) in README.md runs as written, in order, with a
tiny budget added in front (the README's own arguments win, except that the budget keys of
`CAPS` are capped): copy-paste must work."""

import re
import shlex
from pathlib import Path

import pytest

from l2t.commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["steps=30", "eval_every=15", "episodes=1", "select_students=1", "val_batch=100"]
TINY += ["unroll.steps=5", "estimator.population=2", "estimator.horizon=2", "optim.batch_size=10"]
CAPS = {"seeds": 2, "episodes": 2, "estimator.population": 2, "estimator.horizon": 2}
CAPS |= {"steps": 30}
POOL_TINY = ["labeled_batch=5"]  # with an unlabeled pool's config: its share of the tiny batch


def capped(arg: str) -> str:
    """`key=value` with a budget key's value capped (`CAPS`): the same command, smaller."""
    key, _, value = arg.partition("=")
    if key in CAPS and value.isdigit():
        return f"{key}={min(int(value), CAPS[key])}"
    return arg


def make_run_config() -> str:
    """The config `make run` trains (the Makefile's `CONFIG`)."""
    match = re.search(r"^CONFIG \?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert match, "the Makefile names make run's config as `CONFIG ?= FILE`"
    return match.group(1)


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line == "make run":  # the default job, as the Makefile runs it
                line = f"l2t train-teacher --config {make_run_config()}"
            if line.startswith("l2t "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_has_commands_to_run():
    commands = readme_commands()
    assert len(commands) >= 8
    assert {c[0] for c in commands} >= {"train-teacher", "teach", "compare", "train-model"}


def test_every_readme_command_runs_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    for command in readme_commands():
        name, args = command[0], [capped(a) for a in command[1:]]
        applying = any(a.startswith("teacher=") for a in args)
        extra = [] if applying else ["loss.init_steps=10"]
        head = [a for a in args if a.startswith("--config")]
        if head:  # `--config FILE` stays an option; the tiny budget goes first
            i = args.index(head[0])
            if "labeled_batch" in (ROOT / args[i + 1]).read_text():
                extra += POOL_TINY
            args = args[:i] + args[i + 2 :] + args[i : i + 2]
        code = main([name, *TINY, *extra, *args])
        if code != 0:
            pytest.fail(f"README command failed (exit {code}): l2t {shlex.join(command)}")
