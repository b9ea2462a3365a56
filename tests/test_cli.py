import json
from pathlib import Path

import pytest
import torch

from l2t.commands.cli import main


def _overrides(cfg):
    return [
        f"out={cfg.out}",
        f"steps={cfg.steps}",
        f"episodes={cfg.episodes}",
        f"select_students={cfg.select_students}",
        f"select_level={cfg.select_level}",
        f"eval_every={cfg.eval_every}",
        f"val_batch={cfg.val_batch}",
        f"loss.init_steps={cfg.loss.init_steps}",
        f"unroll.steps={cfg.unroll.steps}",
    ]


def test_train_teacher_writes_the_whole_run_directory(tiny_cfg, capsys):
    assert main(["train-teacher", *_overrides(tiny_cfg)]) == 0
    out = capsys.readouterr().out
    assert "taught by the teacher" in out and "cross-entropy student" in out
    run = tiny_cfg.out
    for name in [
        "config.yaml",
        "metrics.jsonl",
        "teacher.pt",
        "schedule.pt",
        "checkpoint.pt",
        "summary.json",
        "plots/curves.png",
        "plots/learned_loss.png",
    ]:
        assert (Path(run) / name).stat().st_size > 0, name
    records = [json.loads(line) for line in Path(f"{run}/metrics.jsonl").read_text().splitlines()]
    assert sum(r["phase"] == "episode" for r in records) == 2
    schedule = torch.load(f"{run}/schedule.pt")
    assert schedule["phi"].shape[0] == 12  # 60 steps / K=5
    summary = json.loads(Path(f"{run}/summary.json").read_text())
    assert 0.0 < summary["teacher_test_acc"] <= 1.0
    scores = [r["selection_val_acc"] for r in records if r["phase"] in ("initial", "episode")]
    assert len(scores) == 3, "the untrained teacher and each episode's are scored frozen"
    assert summary["best_val_acc"] == max(scores)
    assert summary["best_episode"] == scores.index(max(scores)) - 1


ESTIMATOR_ARGS = {
    "greedy": ["estimator.kind=greedy", "teacher.observe=grad"],
    "tbptt": [
        "estimator.kind=tbptt",
        "estimator.horizon=3",
        "estimator.population=2",
        "teacher.observe=grad",
    ],
    "pes": [
        "estimator.kind=pes",
        "estimator.horizon=4",
        "estimator.population=2",
        "teacher.observe=state",
        "estimator.objective=val_acc",
    ],
    "es": ["estimator.kind=es", "estimator.population=1", "teacher.observe=state"],
}


@pytest.mark.parametrize("estimator", list(ESTIMATOR_ARGS))
def test_resume_after_a_stop_gives_the_same_result(tiny_cfg, tmp_path, estimator):
    """Each estimator end to end; stopped after episode 1 and resumed, it ends as the
    uninterrupted run does (the population's students and accumulators are checkpointed)."""
    extra = ESTIMATOR_ARGS[estimator]
    whole = [*_overrides(tiny_cfg), *extra, f"out={tmp_path / 'whole'}"]
    assert main(["train-teacher", *whole]) == 0
    split = [*_overrides(tiny_cfg), *extra, f"out={tmp_path / 'split'}"]
    assert main(["train-teacher", *split[:-1], f"out={tmp_path / 'split'}", "episodes=1"]) == 0
    assert main(["train-teacher", *split, "episodes=2", "resume=true"]) == 0
    a = torch.load(tmp_path / "whole" / "teacher.pt")["state_dict"]
    b = torch.load(tmp_path / "split" / "teacher.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads(Path(tmp_path / "whole" / "summary.json").read_text())
    sb = json.loads(Path(tmp_path / "split" / "summary.json").read_text())
    assert sa == sb
    lines_a = Path(tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    lines_b = Path(tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert lines_a == lines_b
    meta = [json.loads(line) for line in lines_a if '"meta"' in line]
    assert meta and all(r["phase"] == "meta" for r in meta)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stepz=10"], "unknown config key 'stepz'"),
        (["teacher.alpah=1"], "unknown config key 'teacher.alpah'"),
        (["steps=ten"], "config key 'steps' expects int"),
        (["dataset=imagenet"], "config key 'dataset' must be one of"),
        (["student=vgg"], "config key 'student' must be one of"),
        (["teacher.update=sometimes"], "must be one of fused, three_stage"),
        (["steps"], "not of the form key=value"),
        (["--config", "/nonexistent.yaml"], "does not exist"),
        (["student=resnet8"], "needs image input"),
        (["loss.family=composit"], "(did you mean 'composite'?)"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message, tmp_path, capsys):
    assert main(["train-teacher", f"out={tmp_path / 'run'}", "loss.init_steps=5", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists(), "a rejected run leaves nothing behind"


def test_resume_refuses_another_config(tiny_cfg, capsys):
    assert main(["train-teacher", *_overrides(tiny_cfg), "episodes=1"]) == 0
    args = ["train-teacher", *_overrides(tiny_cfg), "resume=true", "teacher.beta=0.5"]
    assert main(args) == 2
    assert "teacher.beta was 0.02 in this run and is now 0.5" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(tiny_cfg, capsys):
    assert main(["train-teacher", *_overrides(tiny_cfg), "episodes=1"]) == 0
    before = Path(f"{tiny_cfg.out}/metrics.jsonl").read_text()
    assert main(["train-teacher", *_overrides(tiny_cfg), "episodes=1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert Path(f"{tiny_cfg.out}/metrics.jsonl").read_text() == before


def test_metrics_and_summaries_are_strict_json_with_null_for_non_finite_values(tiny_cfg):
    from l2t.io.tracking import Tracker

    run = Path(tiny_cfg.out)
    run.mkdir(parents=True)
    tracker = Tracker(run)
    tracker.log({"phase": "meta", "val_loss": float("nan"), "curve": [{"x": float("inf")}]})
    tracker.close()

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    line = (run / "metrics.jsonl").read_text().splitlines()[-1]
    record = json.loads(line, parse_constant=refuse)
    assert record["val_loss"] is None and record["curve"] == [{"x": None}]


def test_the_default_job_can_run_again_and_resume_continues_the_latest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["steps=30", "episodes=1", "select_students=1", "eval_every=15", "val_batch=100"]
    tiny += ["loss.init_steps=10", "unroll.steps=5"]
    assert main(["train-teacher", *tiny]) == 0
    first = (tmp_path / "runs" / "latest").resolve()
    assert main(["train-teacher", *tiny]) == 0, "a second default run gets its own directory"
    second = (tmp_path / "runs" / "latest").resolve()
    assert first != second and (first / "summary.json").is_file()
    assert (second / "summary.json").is_file()
    assert main(["train-teacher", *tiny, "resume=true", "episodes=2"]) == 0
    assert (tmp_path / "runs" / "latest").resolve() == second
    episodes = [r for r in map(json.loads, (second / "metrics.jsonl").read_text().splitlines())]
    assert [r["episode"] for r in episodes if r["phase"] == "episode"] == [0, 1]


def test_commands_and_their_keys_are_discoverable(capsys):
    """`compare --help` lists its own keys and every method; `teach --help` its mode; a
    mistyped command or mode gets a "did you mean"."""
    for name, keys in (("compare", ("seeds=", "methods=", "workers=", "teacher_untrained")),
                       ("teach", ("mode=online|schedule", "teacher="))):  # fmt: skip
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert all(key in out for key in keys), name
    assert main(["trian-teacher"]) == 2
    assert "did you mean 'train-teacher'?" in capsys.readouterr().err
    assert main(["teach", "teacher=nowhere", "mode=shedule"]) == 2
    assert "did you mean 'schedule'?" in capsys.readouterr().err


def test_a_torn_history_is_refused_in_one_line_and_a_missing_one_said(tiny_cfg, capsys):
    """metrics.jsonl torn inside the records its checkpoint counts cannot be repaired: one
    line, nothing changed; without the file, resume says its history starts over."""
    from l2t.io.checkpoint import load_checkpoint

    assert main(["train-teacher", *_overrides(tiny_cfg), "episodes=1"]) == 0
    run = Path(tiny_cfg.out)
    counted = load_checkpoint(run / "checkpoint.pt", "cpu")["metrics_lines"]
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    torn = "".join(lines[: counted - 1]) + lines[counted - 1][: len(lines[counted - 1]) // 2]
    (run / "metrics.jsonl").write_text(torn)
    capsys.readouterr()
    resume = ["train-teacher", *_overrides(tiny_cfg), "episodes=2", "resume=true"]
    assert main(resume) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"holds {counted - 1} whole record(s) of the {counted}" in err[0]
    assert (run / "metrics.jsonl").read_text() == torn
    (run / "metrics.jsonl").unlink()
    assert main(resume) == 0
    assert (
        "metrics.jsonl is missing; the resumed run's history starts here" in capsys.readouterr().err
    )


def test_a_real_directory_at_runs_latest_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "latest").mkdir(parents=True)
    assert main(["train-teacher", "steps=20", "unroll.steps=5"]) == 2
    assert "runs/latest is a directory, where train-teacher keeps a link" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["latest"]
