import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from l2t.commands.cli import main
from l2t.commands.sweep import digest, load_sweep, random_trials
from l2t.io.tracking import wait_for_wandb_file


def wandb_offline_summary(run_dir: Path) -> dict[str, Any]:
    """The summary an offline wandb run under `run_dir` logged (last value per key)."""
    if not list(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        raise FileNotFoundError(f"no offline wandb run under '{run_dir}'")
    summary: dict[str, Any] = {}
    for record in wait_for_wandb_file(run_dir):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                summary[key] = json.loads(item.value_json)
    return summary


TINY = [
    "steps=10",
    "episodes=1",
    "eval_every=10",
    "unroll.steps=5",
    "loss.init_steps=20",
    "val_batch=100",
]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_offline_wandb_run_holds_the_final_metric(tmp_path, offline, capsys):
    out = tmp_path / "run"
    assert main(["train-teacher", f"out={out}", "tracking=wandb", *TINY]) == 0
    runs = list(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    kinds = {r.WhichOneof("record_type") for r in wait_for_wandb_file(out)}
    assert {"run", "history", "summary"} <= kinds
    logged = wandb_offline_summary(out)
    written = json.loads((out / "summary.json").read_text())
    assert logged["teacher_test_acc"] == pytest.approx(written["teacher_test_acc"])
    assert logged["ce_test_acc"] == pytest.approx(written["ce_test_acc"])


def test_a_failing_wandb_never_loses_the_run(tmp_path, monkeypatch, capsys):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("no server")

    monkeypatch.setattr(wandb, "init", broken)
    out = tmp_path / "run"
    assert main(["train-teacher", f"out={out}", "tracking=wandb", *TINY]) == 0
    assert "wandb tracking disabled (no server)" in capsys.readouterr().err
    assert (out / "summary.json").exists() and (out / "metrics.jsonl").stat().st_size > 0


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


GRID = {
    "name": "g",
    "method": "grid",
    "metric": {"name": "best_val_acc", "goal": "maximize"},
    "parameters": {"teacher.beta": {"values": [0.01, 0.03]}, "seed": {"values": [0, 1]}},
}


def test_local_grid_runs_the_product_once_and_resumes(tmp_path, offline, capsys):
    path = _write(tmp_path, GRID)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--workers", "2", f"out={out}", *TINY]) == 0
    trials = sorted(p for p in out.iterdir() if p.name.startswith("trial-"))
    assert len(trials) == 4
    seen = set()
    for trial in trials:
        cfg = yaml.safe_load((trial / "config.yaml").read_text())
        seen.add((cfg["teacher"]["beta"], cfg["seed"]))
        assert cfg["wandb"]["group"] == "g"
        assert list(trial.glob("wandb/offline-run-*"))
    assert seen == {(0.01, 0), (0.01, 1), (0.03, 0), (0.03, 1)}
    table = (out / "sweep_results.md").read_text()
    values = [float(line.split("|")[4]) for line in table.splitlines()[2:]]
    assert values == sorted(values, reverse=True), "sorted by the metric"
    stamps = {t.name: (t / "summary.json").stat().st_mtime_ns for t in trials}
    capsys.readouterr()
    assert main(["sweep", str(path), f"out={out}", *TINY]) == 0
    assert "4 trials, 4 already done" in capsys.readouterr().out
    assert stamps == {t.name: (t / "summary.json").stat().st_mtime_ns for t in trials}


def test_random_search_is_reproducible_with_a_seed(tmp_path):
    spec = load_sweep(
        _write(
            tmp_path,
            {
                "method": "random",
                "metric": {"name": "best_val_acc"},
                "parameters": {
                    "optim.lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.3},
                    "unroll.steps": {"distribution": "int_uniform", "min": 5, "max": 20},
                    "teacher.update": {"values": ["fused", "three_stage"]},
                },
            },
        )
    )
    a, b, c = (
        random_trials(spec, 6, seed=1),
        random_trials(spec, 6, seed=1),
        random_trials(spec, 6, seed=2),
    )
    assert a == b and a != c
    assert all(0.01 <= t["optim.lr"] <= 0.3 and 5 <= t["unroll.steps"] <= 20 for t in a)
    assert all(isinstance(t["unroll.steps"], int) for t in a)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "hyperband"}, "sweep method must be one of grid, random, bayes"),
        (
            {"parameters": {"teacher.alpah": {"values": [1]}}},
            "sweep parameter 'teacher.alpah' is not a config key",
        ),
        ({"parameters": {"teacher.alpha": {"values": []}}}, "empty or non-list values"),
        ({"parameters": {"teacher.alpha": {"min": 0.1, "max": 0.2}}}, "grid sweeps need 'values'"),
        ({"parameters": {"steps": {"values": ["many"]}}}, "config key 'steps' expects int"),
        ({"metric": {"name": "test_loss"}}, "sweep metric.name must be one of"),
    ],
)
def test_malformed_sweep_fails_before_any_trial(tmp_path, change, message, capsys):
    path = _write(tmp_path, {**GRID, **change})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), f"out={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


BAYES = {
    "name": "b",
    "method": "bayes",
    "metric": {"name": "best_val_acc", "goal": "maximize"},
    "parameters": {
        "optim.lr": {"distribution": "log_uniform_values", "min": 0.05, "max": 0.3},
        "teacher.beta": {"values": [0.01, 0.03]},
        "seed": {"value": 0},
    },
}


def test_a_local_bayes_sweep_is_optunas_tpe_and_its_study_resumes(tmp_path, offline, capsys):
    """Without a server `bayes` runs optuna's TPE on a journal in the sweep directory:
    `--workers 2` share the study, a second call continues it (finished trials untouched),
    and a trial cut off mid-way is asked again with its parameters."""
    from l2t.commands import sweep_optuna

    path, out = _write(tmp_path, BAYES), tmp_path / "sweep"
    args = [f"out={out}", *TINY, "select_students=1"]
    assert main(["sweep", str(path), "--count", "3", "--workers", "2", *args]) == 0
    trials = sorted(p for p in out.iterdir() if p.name.startswith("trial-"))
    assert len(trials) == 3 and (out / sweep_optuna.JOURNAL).stat().st_size > 0
    for trial in trials:
        cfg = yaml.safe_load((trial / "config.yaml").read_text())
        assert 0.05 <= cfg["optim"]["lr"] <= 0.3 and cfg["teacher"]["beta"] in (0.01, 0.03)
    stamps = {t.name: (t / "summary.json").stat().st_mtime_ns for t in trials}
    table = (out / "sweep_results.md").read_text()
    values = [float(line.split("|")[5]) for line in table.splitlines()[2:]]
    assert len(values) == 3 and values == sorted(values, reverse=True)

    spec = load_sweep(path)  # a trial cut off mid-way: RUNNING in the journal
    study = sweep_optuna._study(spec, out, 0, 1)
    cut = study.ask()
    cut_params = {k: sweep_optuna.suggest(cut, k, p) for k, p in spec.parameters.items()}
    capsys.readouterr()
    assert main(["sweep", str(path), "--count", "4", *args]) == 0
    assert "4 trials, 3 already done" in capsys.readouterr().out
    assert stamps == {t.name: (t / "summary.json").stat().st_mtime_ns for t in trials}
    rows = [line for line in (out / "sweep_results.md").read_text().splitlines()[2:]]
    assert len(rows) == 4 and all(line.rstrip(" |").endswith("done") for line in rows)
    redone = out / f"trial-{digest(cut_params)}"
    assert (redone / "summary.json").exists()  # asked again with the cut trial's parameters


def test_a_pruned_run_stops_after_its_episode_and_resumes_to_the_same_end(tmp_path):
    """The sweep's pruner reads each episode's selection score through `on_episode`; a
    run it stops has its checkpoint at that episode's end, and resumes to the summary of
    a run never stopped."""
    from l2t.commands.training import train_teacher
    from l2t.config import load_config

    class Pruned(Exception):
        pass

    def cfg(out, resume=False):
        return load_config(None, [*TINY, "episodes=2", "select_students=1", f"out={out}"]
                           + (["resume=true"] if resume else []))  # fmt: skip

    seen = []
    train_teacher(
        cfg(tmp_path / "whole"), show_progress=False, on_episode=lambda *a: seen.append(a)
    )
    logged = [
        json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    ]
    episodes = [
        (r["episode"], r["selection_val_acc"]) for r in logged if r.get("phase") == "episode"
    ]
    assert seen == episodes and len(seen) == 2

    def prune(episode, score):
        raise Pruned(episode)

    with pytest.raises(Pruned):
        train_teacher(cfg(tmp_path / "cut"), show_progress=False, on_episode=prune)
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    assert not (tmp_path / "cut" / "summary.json").exists()
    train_teacher(cfg(tmp_path / "cut", resume=True), show_progress=False)
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    cut = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert {k: v for k, v in cut.items() if "time" not in k} == {
        k: v for k, v in whole.items() if "time" not in k
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"method": "grid", "early_terminate": {"type": "hyperband"}},
            "early_terminate runs locally",
        ),
        (
            {"early_terminate": {"type": "median"}},
            "early_terminate must be a mapping with type: hyperband",
        ),
        (
            {"early_terminate": {"type": "hyperband", "min_iter": 0}},
            "min_iter must be an integer >= 1",
        ),
        (
            {"parameters": {"optim.lr": {"distribution": "normal", "mu": 0.1, "sigma": 0.01}}},
            "normal has no bounds for optuna's TPE",
        ),
    ],
)
def test_what_the_local_bayes_sweep_cannot_run_is_one_line(
    tmp_path, offline, change, message, capsys
):
    path = _write(tmp_path, {**BAYES, **change})
    assert main(["sweep", str(path), f"out={tmp_path / 's'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_sweep_with_failed_trials_exits_1_and_says_how_many(tmp_path, grid_sweep, capsys):
    path = grid_sweep("half", "optim.lr", [0.1, 50.0])  # lr 50 breaks every student
    args = [f"out={tmp_path / 's'}", *TINY, "max_divergences=1", "select_students=1"]
    assert main(["sweep", path, *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "l2t: sweep: 1 of 2 trials failed (sweep_results.md says why)", err
    assert "teacher steps in a row" in (tmp_path / "s" / "sweep_results.md").read_text()
