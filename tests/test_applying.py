import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from runs import trained_run

import l2t.engine.task
from l2t.commands.cli import main
from l2t.commands.compare import METHODS, Method
from l2t.commands.compare.distilled import Distilled
from l2t.commands.compare.pool import PoolMethod
from l2t.io.tracking import read_metrics


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("teacher") / "run", observe="grad")  # the paper's


@pytest.fixture
def unroll_calls(monkeypatch) -> list[int]:
    """Counts second-order unrolls (the real function still runs)."""
    calls: list[int] = []
    real = l2t.engine.task.unroll

    def counting(*args, **kwargs):
        if kwargs.get("create_graph") or (len(args) > 6 and args[6]):
            calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(l2t.engine.task, "unroll", counting)
    return calls


@pytest.mark.parametrize("mode", ["online", "schedule"])
def test_teach_trains_a_new_student_and_schedule_mode_has_no_meta_gradients(
    run_dir, tmp_path, mode, unroll_calls, capsys
):
    out = tmp_path / mode
    assert main(["teach", f"teacher={run_dir}", f"mode={mode}", f"out={out}", "seed=3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 < summary["test_acc"] <= 1.0 and summary["mode"] == mode
    assert (out / "plots" / "curves.png").stat().st_size > 0
    assert "test accuracy" in capsys.readouterr().out
    if mode == "schedule":
        assert unroll_calls == []
    else:
        assert len(unroll_calls) == 12  # 60 steps / K=5: dL_val/dphi, the teacher observes it


def test_teach_transfers_to_another_student_and_dataset(run_dir, tmp_path):
    out = tmp_path / "transfer"
    args = [
        "teach",
        f"teacher={run_dir}",
        "mode=schedule",
        "student=lenet",
        "dataset=digits",
        "val_size=300",
        f"out={out}",
    ]
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["student"] == "lenet"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mode=sometimes"], "mode must be one of online, schedule"),
        (["student=resnet8"], "needs image input"),
        (["optim.lr=x"], "expects float"),
        (["loss.family=parametric"], "loss.family belongs to the teacher's run"),
    ],
)
def test_teach_with_bad_input_is_one_line(run_dir, tmp_path, args, message, capsys):
    assert main(["teach", f"teacher={run_dir}", f"out={tmp_path / 'x'}", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_teacher_pt_alone_is_enough_to_teach(run_dir, tmp_path):
    """teacher.pt holds its kind, weights, base loss and the run's config: nothing else
    of the run is needed."""
    alone = tmp_path / "copied"
    alone.mkdir()
    shutil.copy(run_dir / "teacher.pt", alone / "teacher.pt")
    full, copied, named = tmp_path / "full", tmp_path / "alone", tmp_path / "named"
    assert main(["teach", f"teacher={run_dir}", f"out={full}"]) == 0
    assert main(["teach", f"teacher={alone}", f"out={copied}"]) == 0
    assert main(["teach", f"teacher={alone / 'teacher.pt'}", f"out={named}"]) == 0
    a, b, c = (json.loads((d / "summary.json").read_text()) for d in (full, copied, named))
    assert a["test_acc"] == b["test_acc"] == c["test_acc"]
    # compare takes the file too, and writes beside it by default
    args = ["compare", f"teacher={alone / 'teacher.pt'}", "seeds=1", "methods=teacher_online"]
    assert main(args) == 0
    assert (alone / "compare-mnist1d-mlp" / "results.md").is_file()


def test_a_frozen_teacher_gives_the_same_student_on_every_path(run_dir, tmp_path):
    """Training's final evaluation, `teach` (online and schedule) and `compare`'s first seed
    train the student of one seed on one engine (l2t/engine/teaching.py): the same curves."""
    final = next(r for r in read_metrics(run_dir) if r.get("phase") == "final")
    curves = {}
    for mode in ("online", "schedule"):
        out = tmp_path / mode
        assert main(["teach", f"teacher={run_dir}", f"mode={mode}", f"out={out}"]) == 0
        curves[mode] = next(r for r in read_metrics(out) if r.get("phase") == "final")["curve"]
    cmp = tmp_path / "cmp"
    methods = "methods=ce,base_dln,teacher_online,teacher_schedule"
    assert main(["compare", f"teacher={run_dir}", "seeds=1", methods, f"out={cmp}"]) == 0
    results = json.loads((cmp / "results.json").read_text())
    assert final["teacher_curve"] == curves["online"] == results["teacher_online"]["curves"][0]
    assert curves["online"][-1]["test_acc"] == final["teacher_test_acc"]
    assert final["ce_curve"] == results["ce"]["curves"][0]
    assert final["base_loss_test_acc"] == results["base_dln"]["test_acc"][0]
    # the recorded schedule replays the frozen teacher's losses: a first-order unroll where
    # the online teacher's was second order (it observes dL_val/dphi), so float-close only
    replayed = [p["test_acc"] for p in curves["schedule"]]
    assert replayed == [p["test_acc"] for p in results["teacher_schedule"]["curves"][0]]
    assert abs(replayed[-1] - final["teacher_test_acc"]) <= 0.02


def test_teach_needs_a_finished_run(tmp_path, capsys):
    assert main(["teach", f"teacher={tmp_path}"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["teach"]) == 2
    assert "teach needs teacher=RUN_DIR" in capsys.readouterr().err


def test_compare_writes_tables_and_plots(run_dir, tmp_path):
    out = tmp_path / "cmp"
    composite_only = {m for m in METHODS if "_base" in m}  # tests/test_composite_loss.py
    pool_only = {m for m in METHODS if issubclass(Method.registry[m], PoolMethod)}
    distilled = {m for m in METHODS if issubclass(Method.registry[m], Distilled)}
    skipped = {*distilled, *composite_only, *pool_only}
    methods = ",".join(m for m in METHODS if m not in skipped)
    assert (
        main(["compare", f"teacher={run_dir}", "seeds=2", f"methods={methods}", f"out={out}"]) == 0
    )
    table = (out / "results.md").read_text()
    for method in methods.split(","):
        assert f"| {method} |" in table
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(methods.split(","))
    assert all(0.0 < float(r["test_acc"]) <= 1.0 for r in rows)
    ce_curves = json.loads((out / "results.json").read_text())["ce"]["curves"]
    assert ce_curves[0] != ce_curves[1], "seeds give different students"
    assert (out / "plots" / "curves.png").stat().st_size > 0
    assert (out / "plots" / "learned_loss.png").stat().st_size > 0
    assert (out / "plots" / "differences.png").stat().st_size > 0
    assert "Against the best baseline" in table and "95% interval" in table
    lines = [line for line in table.splitlines() if line.startswith("| ce_cosine |")]
    assert len(lines) == 2  # its row of accuracies, and its row against the best baseline


def test_paired_statistics_by_hand():
    from l2t.commands.compare import paired_stats

    mean, half, t, p = paired_stats([0.61, 0.63, 0.62], [0.60, 0.60, 0.60])
    # differences 0.01, 0.03, 0.02: sd 0.01, sem 0.01/sqrt(3), t_0.975(2) = 4.3027
    assert mean == pytest.approx(0.02)
    assert t == pytest.approx(0.02 / (0.01 / 3**0.5))
    assert half == pytest.approx(4.302653 * 0.01 / 3**0.5, rel=1e-5)
    # two-sided p of t = 2 sqrt(3) with 2 df: 2 (1 - F(t)) = 1 - t / sqrt(t^2 + 2) for df 2
    assert p == pytest.approx(1 - t / math.sqrt(t**2 + 2))


def test_small_seed_counts_give_no_absurd_t_and_say_so():
    """Two equal paired differences have no spread: no t (not -1476395 nor -inf); the win
    rule follows the degrees of freedom (t_0.975(1) = 12.71 > 2.5) and says when too few
    seeds make every claim weak."""
    from l2t.commands.compare import MethodResult, paired_stats, results_table, win_rule
    from l2t.config import Config
    from l2t.engine.teaching import EpisodeResult

    mean, half, t, p = paired_stats([0.41, 0.43], [0.432, 0.452])  # -0.022 twice, float noise
    assert mean == pytest.approx(-0.022) and math.isnan(half) and math.isnan(t) and math.isnan(p)
    assert "t >= 12.71" in win_rule(2) and "fewer than 5 seeds" in win_rule(2)
    assert "t >= 2.50" in win_rule(10) and "weak" not in win_rule(10)

    def method(name, accs):
        return MethodResult(name, [EpisodeResult(test_acc=a) for a in accs])

    table = results_table(
        {"ce": method("ce", [0.41, 0.43]), "sce": method("sce", [0.432, 0.452]),
         "gce": method("gce", [0.432, 0.452])},
        Config(),
    )  # fmt: skip
    assert "| ce | -2.20 | n/a | n/a (no spread) | n/a | 0/2 |" in table
    assert "| gce | +0.00 | n/a | n/a (identical) | n/a | 0/2 |" in table
    assert "inf" not in table and "fewer than 5 seeds" in table
    pool = {
        "kd": method("kd", [0.60, 0.62, 0.61]),
        "meta_trust": method("meta_trust", [0.61, 0.635, 0.62]),
        "oracle_drop": method("oracle_drop", [0.64, 0.66, 0.65]),
    }
    table = results_table(pool, Config())
    assert "| wins | share of oracle_drop's headroom |" in table
    assert "| meta_trust | +1.17 |" in table and "| 3/3 | +29% |" in table  # 1.17 of 4.00


@pytest.mark.parametrize("agent", ["mlp", "reinforce", "fixed"])
def test_every_agent_can_be_applied_and_compared(tmp_path, agent):
    run = tmp_path / agent
    args = [
        f"out={run}",
        "steps=30",
        "episodes=1",
        "eval_every=15",
        "unroll.steps=5",
        "loss.family=parametric",
        f"teacher.agent={agent}",
        f"select_students={0 if agent in ('reinforce', 'fixed') else 1}",
    ]
    assert main(["train-teacher", *args]) == 0
    modes = ["online"] + (["schedule"] if agent != "fixed" else [])
    for mode in modes:
        assert main(["teach", f"teacher={run}", f"mode={mode}", f"out={tmp_path / mode}"]) == 0
    out = tmp_path / "cmp"
    methods = "ce,teacher_online" + (",teacher_schedule" if agent != "fixed" else "")
    assert main(["compare", f"teacher={run}", "seeds=1", f"methods={methods}", f"out={out}"]) == 0
    assert (out / "results.csv").exists()


def test_compare_rejects_teacher_methods_without_a_teacher(tmp_path, capsys):
    assert main(["compare", "methods=ce,teacher_online", f"out={tmp_path}"]) == 2
    assert "need teacher=RUN_DIR" in capsys.readouterr().err


class _RunsCode:
    """A pickle whose loading would create a file: what a checkpoint must never do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["teacher.pt", "checkpoint.pt"])
def test_a_file_that_would_run_code_is_refused(run_dir, tmp_path, name, capsys):
    import shutil

    import torch

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    marker = tmp_path / "ran"
    torch.save({"kind": _RunsCode(marker)}, copy / name)
    if name == "teacher.pt":
        args = ["teach", f"teacher={copy}", "mode=online", f"out={tmp_path / 'out'}"]
    else:
        args = [
            "train-teacher",
            f"out={copy}",
            "resume=true",
            "steps=60",
            "episodes=2",
            "eval_every=30",
            "val_batch=200",
            "loss.init_steps=100",
            "unroll.steps=5",
            "estimator.kind=greedy",
            "teacher.observe=grad",
        ]
    assert main(args) == 2
    assert not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data only" in err[0]


def test_compare_never_overwrites_results_without_overwrite_true(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny = ["methods=ce", "seeds=1", "steps=20", "eval_every=10", "loss.init_steps=5"]
    tiny += ["unroll.steps=5"]
    assert main(["compare", *tiny]) == 0
    assert main(["compare", *tiny]) == 0, "the default place: a new directory beside it"
    assert (tmp_path / "runs/compare/results.md").is_file()
    assert (tmp_path / "runs/compare-2/results.md").is_file()
    before = (tmp_path / "runs/compare/results.md").read_text()
    assert main(["compare", *tiny, "out=runs/compare", "seeds=2"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (tmp_path / "runs/compare/results.md").read_text() == before
    assert main(["compare", *tiny, "out=runs/compare", "overwrite=true"]) == 0
    assert "overwrite=true: the results in 'runs/compare' (config.yaml" in capsys.readouterr().err


def test_the_curves_zoom_on_the_second_half_and_name_the_seed_count(tmp_path, monkeypatch):
    """Issue 34: the points that separate methods are late and close together, so the
    second panel fits its y axis to the second half's curves (±1 std), while the first
    shows the climb from chance; the title says over how many seeds."""
    from l2t.io import plots

    drawn = []
    monkeypatch.setattr(plots, "_written", lambda fig, out: drawn.append(fig) or out)

    def curve(end):
        points = ((0, 0.1), (500, 0.5), (1500, 0.62), (2000, end))
        return [{"step": s, "test_acc": a, "val_acc": a} for s, a in points]

    groups = {"a": [curve(0.64), curve(0.66)], "b": [curve(0.65), curve(0.65)]}
    plots.plot_curves(groups, tmp_path / "curves.png")
    whole, late = drawn[0].axes[:2]
    assert "over 2 seeds" in drawn[0].get_suptitle()
    low, high = late.get_ylim()
    assert 0.6 < low < 0.62 and 0.66 < high < 0.7, (low, high)
    assert whole.get_ylim()[0] < 0.1 and late.get_xlim() == (1000, 2000)
