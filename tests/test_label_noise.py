import json

import numpy as np
import pytest
import torch

from l2t.commands.cli import main
from l2t.data.datasets import corrupt_labels, load_data


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_noise_changes_exactly_the_rate_of_training_labels_only(kind):
    clean = load_data("mnist1d", seed=3)
    noisy = load_data("mnist1d", seed=3, label_noise=0.4, label_noise_kind=kind)
    changed = (clean.y_train != noisy.y_train).float().mean().item()
    assert abs(changed - 0.4) <= 0.01
    assert torch.equal(clean.x_train, noisy.x_train)
    assert torch.equal(clean.y_val, noisy.y_val) and torch.equal(clean.y_test, noisy.y_test)
    assert noisy.noise is not None
    index = torch.as_tensor(noisy.noise.index)
    assert torch.equal(noisy.y_train[index], torch.as_tensor(noisy.noise.noisy))
    assert torch.equal(clean.y_train[index], torch.as_tensor(noisy.noise.clean))
    if kind == "pairflip":
        assert torch.equal(noisy.y_train[index], (clean.y_train[index] + 1) % 10)


def test_noise_is_a_function_of_the_seed():
    a = load_data("digits", seed=1, val_size=300, label_noise=0.3)
    b = load_data("digits", seed=1, val_size=300, label_noise=0.3)
    c = load_data("digits", seed=2, val_size=300, label_noise=0.3)
    assert torch.equal(a.y_train, b.y_train)
    assert a.noise is not None and c.noise is not None
    assert not np.array_equal(a.noise.index, c.noise.index)


def test_symmetric_noise_reaches_every_other_class_uniformly():
    y = np.zeros(20_000, dtype=np.int64)
    noisy, _ = corrupt_labels(y, 0.5, "symmetric", 5, seed=0)
    counts = np.bincount(noisy, minlength=5)
    assert counts[0] == 10_000  # exactly half changed, none to their own class
    assert np.all(np.abs(counts[1:] - 2_500) < 200)


def test_compare_under_noise_records_the_flipped_labels_and_tables_robust_losses(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "label_noise=0.4", "methods=ce,gce,sce,base_dln", "seeds=2"]
    tiny = ["steps=30", "eval_every=15", "loss.init_steps=20", "unroll.steps=5", f"out={out}"]
    assert main(args + tiny) == 0
    table = (out / "results.md").read_text()
    assert "label_noise=0.4 (symmetric)" in table
    assert all(f"| {m} |" in table for m in ("ce", "gce", "sce", "base_dln"))
    record = json.loads((out / "label_noise.json").read_text())
    assert record["rate"] == 0.4 and record["changed"] == round(0.4 * record["train_size"])
    assert len(record["index"]) == len(record["clean"]) == len(record["noisy"])


def test_a_noise_rate_outside_0_1_is_one_line(tmp_path, capsys):
    assert main(["compare", "label_noise=1.5", f"out={tmp_path / 'c'}"]) == 2
    err = capsys.readouterr().err
    assert "label_noise' must be in [0, 1)" in err and len(err.strip().splitlines()) == 1
