from l2t.commands.bench import saved_tensor_bytes
from l2t.config import from_dict


def test_unroll_memory_grows_linearly_in_k():
    from l2t.commands.applying import make_task

    cfg = from_dict({"steps": 40, "loss": {"init_steps": 10}})
    splits = make_task(cfg).splits
    b5, b10, b20 = (saved_tensor_bytes(cfg, splits, k) for k in (5, 10, 20))
    per_step_low, per_step_high = (b10 - b5) / 5, (b20 - b10) / 10
    assert b5 < b10 < b20
    assert abs(per_step_high - per_step_low) / per_step_low < 0.05


def test_bench_writes_every_row_as_json(tmp_path, capsys):
    import json

    from l2t.commands.cli import main

    out = tmp_path / "bench.json"
    tiny = ["steps=20", "unroll.steps=5", "loss.init_steps=10", "val_batch=50", "val_size=100"]
    assert main(["bench", "--budget", "0.05", f"out={out}", *tiny]) == 0
    record = json.loads(out.read_text())
    assert {"command", "date", "machine", "torch", "threads", "dataset", "student"} <= set(record)
    rows = record["rows"]
    for name in ("plain CE step", "schedule replay (fixed DLN)", "online learning, fused, func"):
        assert rows[name]["ms_per_student_step"] > 0 and rows[name]["x_plain_ce"] > 0
    assert rows["plain CE step"]["x_plain_ce"] == 1.0
    assert any(name.startswith("estimator pes") for name in rows)
    assert set(record["saved_mib"]) == {f"saved MiB, K={k}" for k in (5, 10, 20, 40)}
    assert set(record["concurrent_s"]) == {
        "plain CE, 1 process, s",
        "plain CE, 2 processes at once, s",
    }
    assert set(record["updates_per_s"]) == {  # one run's population over 1 and 2 processes
        *(f"pes, population 4, {n} process(es), updates/s" for n in (1, 2)),
        "pes, population 1, one at a time, updates/s",  # and 1 vs 8 students, vmapped or not
        "pes, population 8, one at a time, updates/s",
        "pes, population 8, vmapped, updates/s",
    }
    assert all(rate > 0 for rate in record["updates_per_s"].values())
    assert set(record["criterion_us"]) == {  # l2t.LearnedLoss against cross-entropy, per call
        "criterion: nn.CrossEntropyLoss, us",
        "criterion: LearnedLoss schedule, dln, us",
        "criterion: LearnedLoss schedule, composite at ce, us",
        "criterion: LearnedLoss schedule, composite at ce, default controls, us",
        "criterion: LearnedLoss online, us",
    }
    assert all(us > 0 for us in record["criterion_us"].values())
    assert "| plain CE step" in capsys.readouterr().out  # the Markdown table keeps its names


def test_bench_refuses_an_out_that_is_not_a_json_file(tmp_path, capsys):
    from l2t.commands.cli import main

    assert main(["bench", f"out={tmp_path}"]) == 2
    assert "out=FILE.json" in capsys.readouterr().err


def test_bench_online_rows_use_the_configured_teacher():
    from l2t.commands.applying import make_task
    from l2t.commands.bench import online_teacher

    cfg = from_dict(
        {"steps": 20, "teacher": {"hidden": 7, "beta": 0.05}, "loss": {"init_steps": 10}}
    )
    task, teacher = online_teacher(cfg, make_task(cfg), "higher", "three_stage")
    assert task.backend == "higher" and task.steps == 10 * cfg.unroll.steps
    assert teacher.hparams["update"] == "three_stage" and teacher.observes_gradient
    assert teacher.hparams["hidden"] == 7 and teacher.beta == 0.05
