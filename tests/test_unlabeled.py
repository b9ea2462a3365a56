"""Distillation with an unlabeled pool (issue 33): `labeled=` and `unlabeled=` split the data,
MNIST-1D generates the samples its split lacks, a model labels the pool once, and the pool's
true labels reach no method and no teacher — only the oracle rows."""

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from l2t.commands.compare import compare
from l2t.config import ConfigError, from_dict, parts
from l2t.data.datasets import load_data
from l2t.engine.teaching import run_student
from l2t.methods.model_training import train_model

ROOT = Path(__file__).resolve().parents[1]
POOL = {"labeled": 200, "unlabeled": 5000, "val_size": 200}


def test_the_pool_takes_the_rest_of_train_then_new_samples_and_leaves_test_alone():
    plain = load_data("mnist1d", val_size=200)
    splits = load_data("mnist1d", val_size=200, labeled=200, unlabeled=5000)
    assert splits.x_train.shape == (200, 40) and splits.pool == 0  # no model: labeled only
    assert splits.x_unlabeled is not None and splits.hidden_labels is not None
    assert splits.x_unlabeled.shape == (5000, 40) and splits.hidden_labels.shape == (5000,)
    assert torch.equal(splits.x_test, plain.x_test) and torch.equal(splits.x_val, plain.x_val)
    assert torch.equal(splits.x_train, plain.x_train[:200])
    assert torch.equal(splits.x_unlabeled[:3600], plain.x_train[200:])  # then 1,400 new ones
    seen = torch.cat([plain.x_train, plain.x_val, plain.x_test])
    new = splits.x_unlabeled[3600:]
    assert torch.cdist(new, seen).min() > 1e-3, "generated samples are new samples"


def test_bad_pool_sizes_are_one_line():
    with pytest.raises(ConfigError, match="only mnist1d generates more"):
        load_data("digits", val_size=200, labeled=100, unlabeled=5000)
    with pytest.raises(ConfigError, match="unlabeled=N needs labeled=M"):
        from_dict({"unlabeled": 100})
    with pytest.raises(ConfigError, match=r"exceeds optim\.batch_size"):
        from_dict({**POOL, "labeled_batch": 30})


def _permute_hidden_labels(monkeypatch):
    """From here on the pool's true labels load permuted: a row that reads them changes."""
    real = parts.load_data

    def permuted(*args, **kwargs):
        splits = real(*args, **kwargs)
        if splits.hidden_labels is not None:
            order = torch.randperm(
                len(splits.hidden_labels), generator=torch.Generator().manual_seed(0)
            )
            splits.hidden_labels = splits.hidden_labels[order]
        return splits

    monkeypatch.setattr(parts, "load_data", permuted)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A weak model trained on the labeled part alone (as `l2t train-model` does)."""
    out = tmp_path_factory.mktemp("model")
    train_model(from_dict({**POOL, "steps": 150, "eval_every": 150, "out": str(out)}))
    return out / "model.pt"


def test_the_model_labels_the_pool_once_and_batches_split_labeled_and_pool(model):
    cfg = from_dict({**POOL, "distill": {"model": str(model)}, "labeled_batch": 5})
    splits = parts.splits(cfg)
    assert splits.pool == 5000 and splits.labeled == 200 and splits.x_unlabeled is None
    assert splits.model_logits is not None and splits.model_logits.shape == (5200, 10)
    assert torch.equal(splits.y_train[200:], splits.model_logits[200:].argmax(dim=1))
    assert torch.equal(splits.y_train[:200], load_data("mnist1d", val_size=200).y_train[:200])
    wrong = (splits.y_train[200:] != splits.hidden_labels).float().mean()
    assert 0.05 < wrong < 0.9  # a weak model: some pseudo-labels are wrong
    idx = parts.task(cfg, splits).train_indices(seed=3, t=0)
    assert (idx[:, :5] < 200).all() and (idx[:, 5:] >= 200).all()


def test_only_the_oracles_read_the_hidden_labels(model, tmp_path, monkeypatch):
    """Statically (which files name them) and by running: the pool's true labels permuted,
    every other row trains the same students; the oracle rows do not."""
    allowed = {"l2t/data/datasets.py", "l2t/data/splits.py", "l2t/commands/compare/oracle.py"}
    for path in [*ROOT.glob("l2t/**/*.py"), *ROOT.glob("agents/*.py"), *ROOT.glob("envs/*.py")]:
        names = {
            n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)
        }
        if "hidden_labels" in names:
            assert str(path.relative_to(ROOT)) in allowed, path

    cfg = from_dict(
        {
            **POOL,
            "steps": 30,
            "eval_every": 15,
            "labeled_batch": 5,
            "distill": {"model": str(model)},
        }
    )
    methods = ["ce", "kd", "kd_tuned", "kd_trainval", "base_dln", "l2rw", "labeled_only"]
    methods += ["confident"]
    methods += ["self_train", "slam", "importance_kd"]
    methods += ["oracle_labels", "oracle_drop", "oracle_drop_kd", "oracle_drop_kd_tuned"]
    first = compare(cfg, methods, seeds=1, out=tmp_path / "a")
    _permute_hidden_labels(monkeypatch)
    second = compare(cfg, methods, seeds=1, out=tmp_path / "b")
    for m in methods:
        same = first[m].results[0].curve == second[m].results[0].curve
        assert same != m.startswith("oracle"), m
    assert first["labeled_only"].test_accs != first["ce"].test_accs  # it drops the pool
    # the trusted samples join the labeled part; (a, T) chosen on train-only students, as kd
    assert first["kd_trainval"].results[0].curve != first["kd"].results[0].curve
    table = (tmp_path / "a" / "results.md").read_text()
    assert "read the unlabeled pool's hidden true labels" in table
    assert "`oracle_labels`" in table
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert saved["oracle_labels"]["test_acc"]
    assert (
        saved["kd_tuned"]["chosen"]["lr"] in (0.1, 0.3, 1.0) and "lr" not in saved["kd"]["chosen"]
    )
    assert saved["slam"]["chosen"]["lr"] in (0.1, 0.3, 1.0)
    assert saved["importance_kd"]["chosen"]["mix"] in (0.25, 0.5, 0.75, 0.9)
    assert saved["oracle_drop_kd_tuned"]["chosen"]["lr"] in (0.1, 0.3, 1.0)
    assert "lr" not in saved["oracle_drop_kd"]["chosen"]
    assert saved["kd_trainval"]["chosen"] == saved["kd"]["chosen"]


TRUST = {
    **POOL,
    "steps": 40,
    "eval_every": 20,
    "val_batch": 100,
    "labeled_batch": 5,
    "unroll": {"steps": 5},
    "loss": {"family": "composite", "base": "kd"},
}


@pytest.fixture
def trust_splits(model):
    """The pool's data, labeled by the model in float32 (before `float64` is on)."""
    cfg = from_dict({**TRUST, "distill": {"model": str(model), "mix": 0.5}})
    return cfg, parts.splits(cfg)


def _at_the_base_point(trust_splits):
    """In float64: the task, its base point for the lookahead rows, and the base point's
    student (seed 0, evaluated every 20 steps)."""
    from precision import as_float64

    from agents import FixedLossTeacher
    from l2t.losses.composite import parse_ranges
    from l2t.methods.reweighting import BasePoint

    cfg, splits = trust_splits
    splits = dataclasses.replace(as_float64(splits), model_logits=splits.model_logits.double())
    task, base = parts.task(cfg, splits), parts.base_loss(cfg)
    point = BasePoint(task.composite, base, parse_ranges(cfg.loss.ranges))
    return task, point, run_student(task, FixedLossTeacher("base", base), {}, 0, 20)


@pytest.mark.parametrize("margins", ["none", "history", "prior"])
def test_meta_trust_starts_at_the_base_point_and_its_weights_move(
    trust_splits, margins, float64, monkeypatch
):
    """With its net held (learning rate 0) `meta_trust` (and `meta_trust_aum`, reading the
    margins so far; `meta_trust_aum2`, a first round's) weighs every sample 1: the base
    point's student exactly; learning, it trains another."""
    from l2t.methods import trust

    task, point, fixed = _at_the_base_point(trust_splits)
    splits = task.splits
    monkeypatch.setattr(trust, "WEIGHT_NET_LR", 0.0)
    history = margins == "history"
    prior = torch.randn(len(splits.y_train)) if margins == "prior" else None
    held = run_student(task, trust.TrustWeighted(task, 0, point, history, prior), {}, 0, 20)
    assert [p["val_acc"] for p in held.curve] == [p["val_acc"] for p in fixed.curve]
    monkeypatch.undo()
    policy = trust.TrustWeighted(task, 0, point, history, prior)
    moving = run_student(task, policy, {}, 0, 20)
    assert moving.curve != held.curve
    assert policy.net[-1].weight.abs().max() > 0  # the lookahead moved the trust net


def test_meta_correct_starts_at_the_base_point_and_corrects_only_the_pool(
    trust_splits, float64, monkeypatch
):
    """With its net held (learning rate 0) `meta_correct` moves no sample's loss (c_i = 0):
    the base point's student exactly; learning, the lookahead moves the net, trains another
    student, and gives a labeled sample no share."""
    from l2t.methods import correction

    task, point, fixed = _at_the_base_point(trust_splits)
    monkeypatch.setattr(correction, "WEIGHT_NET_LR", 0.0)
    held = run_student(task, correction.Corrected(task, 0, point), {}, 0, 20)
    assert [p["val_acc"] for p in held.curve] == [p["val_acc"] for p in fixed.curve]
    monkeypatch.undo()
    policy = correction.Corrected(task, 0, point)
    shares = []
    original = policy.corrected

    def recorded(out, pooled, logits, model_log_p, losses, trial=False):
        loss, share, label = original(out, pooled, logits, model_log_p, losses, trial)
        if not trial:
            shares.append((share.detach(), pooled))
        return loss, share, label

    policy.corrected = recorded
    moving = run_student(task, policy, {}, 0, 20)
    assert moving.curve != held.curve
    assert policy.net[-1].weight.abs().max() > 0  # the lookahead moved the correction net
    assert any((share > 0).any() for share, _ in shares)
    assert all((share[pooled == 0] == 0).all() for share, pooled in shares)
    assert all(pooled.sum() < len(pooled) for _, pooled in shares)  # labeled samples in each


def test_the_trust_features_are_what_a_teacher_sees_of_a_sample():
    from l2t.losses.labels import pack
    from l2t.methods.trust import FEATURES, trust_features

    model = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).log_softmax(dim=1)
    student = torch.tensor([[0.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0])
    got = trust_features(student, pack(labels, model), torch.tensor([0.0, 1.0]))
    p = model.softmax(dim=1)
    assert got.shape == (2, len(FEATURES))
    assert torch.allclose(got[:, 0], p.amax(dim=1))
    assert torch.allclose(got[:, 1], torch.tensor([p[0, 0] - p[0, 1], 0.0]))
    assert torch.allclose(got[:, 2], student.softmax(dim=1)[:, 0])
    assert got[:, 3].tolist() == [0.0, 1.0]  # the student agrees with the label on sample 2
    assert torch.allclose(got[:, 4], torch.tensor([0.0, 1.0]).log1p())


def test_meta_trust_chooses_its_rate_on_validation_and_trains_beside_base(
    model, tmp_path, monkeypatch
):
    """... and reads no hidden label: with them permuted it trains the same student."""
    cfg = from_dict({**TRUST, "distill": {"model": str(model), "mix": 0.5}})
    rows = ["meta_trust", "meta_trust_aum", "meta_trust_aum2", "meta_correct", "aum_drop"]
    rows += ["aum_knn_drop"]
    results = compare(cfg, ["base", *rows], seeds=1, out=tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    for row in rows:
        assert saved[row]["chosen"]["lr"] in (0.1, 0.3, 1.0)
        assert results[row].results[0].curve != results["base"].results[0].curve, row
    assert saved["aum_drop"]["chosen"]["drop"] in (0.0, 0.15, 0.3, 0.45)
    assert saved["aum_knn_drop"]["chosen"]["drop"] in (0.0, 0.15, 0.3, 0.45)
    _permute_hidden_labels(monkeypatch)
    again = compare(cfg, rows, seeds=1, out=tmp_path / "b")
    for row in rows:
        assert again[row].results[0].curve == results[row].results[0].curve, row


def test_the_margin_memory_counts_every_sample_of_every_batch_and_changes_no_step(
    trust_splits,
):
    """A student under `MarginRecorded` is the base point's student; its memory has seen
    each training sample as often as the task's batches hold it, and holds its margins."""
    from agents import FixedLossTeacher
    from l2t.methods.margins import MarginRecorded, margin_on

    cfg, splits = trust_splits
    task, base = parts.task(cfg, splits), parts.base_loss(cfg)
    recorded = MarginRecorded(task, 3, task.loss_fn(base))
    got = run_student(task, recorded, {}, 3, 20)
    fixed = run_student(task, FixedLossTeacher("base", base), {}, 3, 20)
    assert got.curve == fixed.curve
    drawn = torch.cat([task.train_indices(3, t).flatten() for t in range(task.teacher_steps)])
    counts = torch.bincount(drawn, minlength=len(splits.y_train)).float()
    assert torch.equal(recorded.memory.seen, counts)
    unseen = counts == 0
    assert (recorded.memory.mean()[unseen] == 0).all() and recorded.memory.mean()[~unseen].ne(
        0
    ).all()
    z = torch.tensor([[1.0, 3.0, 2.0], [0.5, 0.0, -1.0]])
    assert margin_on(z, torch.tensor([2, 0])).tolist() == [-1.0, 0.5]


def test_aum_drop_keeps_the_pool_samples_of_highest_margin():
    from l2t.commands.compare.margin_drop import lowest_dropped

    margins = torch.tensor([0.3, -2.0, 1.5, 0.1, -0.4, 2.0])
    assert lowest_dropped(margins, 0.5).tolist() == [True, False, True, False, False, True]
    assert lowest_dropped(margins, 0.0).all()


def test_a_pseudo_label_is_checked_against_its_nearest_labeled_samples():
    """`neighbour_agreement` in a student whose last layer reads its input: each pool
    sample's share of its 2 nearest (cosine) labeled samples that carry its pseudo-label."""
    from l2t.data.splits import Splits
    from l2t.engine.student_state import SGD
    from l2t.engine.task import Task
    from l2t.methods.neighbours import neighbour_agreement, neighbour_labels

    labeled = torch.tensor([[1.0, 0.0], [0.9, 0.2], [0.0, 1.0], [0.2, 0.9]])
    pool = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.1, 1.0], [3.0, 0.5]])
    y = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])  # the last four: the model's pseudo-labels
    x = torch.cat([labeled, pool])
    splits = Splits("toy", 2, x, y, x, y, x, y, pool=4, hidden_labels=torch.tensor([0, 1, 1, 0]))
    task = Task(splits, lambda: torch.nn.Sequential(torch.nn.Linear(2, 2)), SGD(0.1), 4, 2, 2)
    agreement = neighbour_agreement(task, task.init(0), k=2)
    assert agreement.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert neighbour_labels(task, task.init(0), k=2).tolist() == [[0, 0], [1, 1], [1, 1], [0, 0]]


def test_the_pool_diagnostics_read_right_and_wrong_pseudo_labels(model, tmp_path, capsys):
    """scripts/pool_signals.py (AUC of each signal), scripts/reweighting_diagnostics.py
    (each group's weight; its picture) and scripts/importance_weights.py on a tiny pool."""
    import runpy

    pool = [f"unlabeled={POOL['unlabeled']}", f"labeled={POOL['labeled']}"]
    tiny = [f"distill.model={model}", "steps=40", "eval_every=20", "labeled_batch=5", *pool]
    tiny += [f"val_size={POOL['val_size']}", "val_batch=100", "unroll.steps=5"]
    signals = runpy.run_path(str(ROOT / "scripts" / "pool_signals.py"))
    signals["main"](["kd", "0", "distill.mix=0.5", *tiny])
    out = capsys.readouterr().out
    assert "pseudo-labels right" in out and "student mean margin" in out
    aucs = [float(a) for pair in re.findall(r"(\d\.\d{3}) / (\d\.\d{3})", out) for a in pair]
    # 7 signals and every signal at once, 2 groups
    assert len(aucs) == 16 and all(0.0 <= a <= 1.0 for a in aucs)
    assert "labeled neighbours' agreement" in out
    assert "every signal at once" in out
    assert "lowest 15% by mean margin + neighbours, the true class named by: pseudo-label" in out
    diagnostics = runpy.run_path(str(ROOT / "scripts" / "reweighting_diagnostics.py"))
    picture = tmp_path / "weights.png"
    diagnostics["main"](["kd", "trust_aum", "0", f"plot={picture}", "distill.mix=0.5", *tiny])
    out = capsys.readouterr().out
    assert "mean weight x B: labeled" in out and " wrong " in out and picture.stat().st_size
    diagnostics["main"](["kd", "correct", "0", f"plot={picture}", "distill.mix=0.5", *tiny])
    out = capsys.readouterr().out
    assert "corrected label true on wrong pseudo-labels" in out and "mean share c_i: " in out
    assert "effective" not in out  # a weight's columns, not a share's
    weights = runpy.run_path(str(ROOT / "scripts" / "importance_weights.py"))
    weights["main"]([f"distill.model={model}", *pool, f"val_size={POOL['val_size']}"])
    out = capsys.readouterr().out
    means = [float(m) for m in re.findall(r"on (?:right|wrong) (\d\.\d{3})", out)]
    assert len(means) == 6 and all(0.0 <= m <= 1.0 for m in means)  # 3 groups, right and wrong
    assert re.search(r"the pool's weight \d+\.\d%", out) and "AUC of alpha: " in out


def test_bench_times_the_pool_rows_against_the_base_point(trust_splits):
    from l2t.commands.bench import pool_rows

    cfg, splits = trust_splits
    rows = pool_rows(cfg, parts.task(cfg, splits), 0.05)
    assert set(rows) == {
        "pool: the base point",
        "pool: meta_trust",
        "pool: meta_trust_aum",
        "pool: meta_correct",
        "pool: aum_drop's first round",
    }
    assert all(ms > 0 for ms in rows.values())
    plain = from_dict({"steps": 20, "loss": {"init_steps": 10}})
    assert pool_rows(plain, parts.task(plain, parts.splits(plain)), 0.05) == {}


def test_a_row_that_chooses_its_rate_can_keep_the_runs_own():
    """`kd_tuned`, `slam`, `meta_trust*` and `aum_drop` choose from RATES and the run's
    learning rate (digits' 0.05 was missing: `kd_tuned` fell below `kd`)."""
    from l2t.commands.compare.method import RATES, Setting

    assert Setting(from_dict({"optim": {"lr": 0.05}}), None, None, []).rates == (0.05, *RATES)
    assert Setting(from_dict({"optim": {"lr": 0.1}}), None, None, []).rates == RATES
