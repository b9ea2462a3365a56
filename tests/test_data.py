import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from l2t.commands.sweep import load_sweep
from l2t.config import ConfigError, load_config
from l2t.data.datasets import load_data
from l2t.engine.students import STUDENTS, build_student


def test_mnist1d_is_generated_locally_with_published_sizes_and_seeded_splits():
    a = load_data("mnist1d", seed=0, val_size=1000)
    b = load_data("mnist1d", seed=1, val_size=1000)
    assert a.x_train.shape == (3000, 40) and a.x_val.shape == (1000, 40)
    assert a.x_test.shape == (1000, 40) and a.num_classes == 10
    assert torch.equal(a.x_test, b.x_test), "the test split does not depend on the seed"
    assert not torch.equal(a.x_val, b.x_val), "the val split does"
    rows = {tuple(r.tolist()) for r in a.x_train}
    assert not any(tuple(r.tolist()) in rows for r in a.x_val), "train and val are disjoint"


def test_digits_has_a_fixed_test_split():
    a = load_data("digits", seed=0, val_size=300)
    b = load_data("digits", seed=5, val_size=300)
    assert a.input_shape == (1, 8, 8) and len(a.y_test) == 360
    assert torch.equal(a.y_test, b.y_test)
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797


def _write_cifar(root: Path, classes: int, n: int = 6) -> None:
    rng = np.random.default_rng(0)
    key = b"labels" if classes == 10 else b"fine_labels"
    names = (
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if classes == 10
        else ["train", "test"]
    )
    for name in names:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            key: list(rng.integers(0, classes, n)),
        }
        batch[key][0] = classes - 1
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_python_batches(tmp_path, classes):
    _write_cifar(tmp_path, classes)
    splits = load_data(f"cifar{classes}", data_dir=str(tmp_path), val_size=4)
    train_files = 5 if classes == 10 else 1
    assert splits.input_shape == (3, 32, 32)
    assert len(splits.y_train) + len(splits.y_val) == 6 * train_files
    assert len(splits.y_test) == 6 and splits.num_classes == classes
    assert abs(splits.x_train.mean().item()) < 0.5


def test_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", n, 28, 28) + images.tobytes())
        with open(tmp_path / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", n) + labels.tobytes())
    splits = load_data("fashion-mnist", data_dir=str(tmp_path), val_size=5)
    assert (
        splits.input_shape == (1, 28, 28) and len(splits.y_train) == 15 and len(splits.y_test) == 5
    )


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("content", ["code", "garbage", "truncated"])
def test_a_cifar_batch_is_read_as_data_and_a_bad_one_is_one_line(tmp_path, content):
    _write_cifar(tmp_path, 10)
    marker = tmp_path / "ran"
    bad = tmp_path / "data_batch_1"
    if content == "code":
        bad.write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}))
    elif content == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(500))
    else:
        bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(ConfigError, match=r"'.*data_batch_1' is not a CIFAR python batch"):
        load_data("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()


def test_a_garbage_idx_file_is_one_line(tmp_path):
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        (tmp_path / f"{name}-idx3-ubyte".replace("labels-idx3", "labels-idx1")).write_bytes(b"xx")
    with pytest.raises(ConfigError, match="is not an IDX file of unsigned bytes"):
        load_data("mnist", data_dir=str(tmp_path))


def test_missing_files_name_what_is_needed(tmp_path):
    with pytest.raises(ConfigError, match="CIFAR-10 python batches"):
        load_data("cifar10", data_dir=str(tmp_path))


@pytest.mark.parametrize("name", STUDENTS)
def test_every_student_maps_its_input_to_class_logits(name):
    shape = (40,) if name in ("mlp", "cnn1d") else (3, 16, 16)
    student = build_student(name, shape, 7)
    assert student(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/*.yaml")))
def test_every_shipped_config_is_valid(path):
    if "sweep" in path.name:
        assert load_sweep(path).parameters
    else:
        assert load_config(path).steps > 0


def test_crop_and_flip_is_each_images_padded_crop_mirrored_or_not():
    """Against one image at a time: the padded image's window at the drawn offset, mirrored
    when drawn so; exact (no arithmetic), seeded, the labels untouched."""
    import torch.nn.functional as F

    from l2t.data.augment import crop_flip

    x = torch.randn(16, 3, 8, 8)
    got = crop_flip(x, torch.Generator().manual_seed(5), padding=2)
    g = torch.Generator().manual_seed(5)
    dy, dx = torch.randint(5, (16,), generator=g), torch.randint(5, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(16):
        window = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        assert torch.equal(got[i], window.flip(-1) if flip[i] else window)
    assert flip.any() and not flip.all() and (dy != 2).any()
    assert torch.equal(got, crop_flip(x, torch.Generator().manual_seed(5), padding=2))


def test_augmented_batches_hold_the_same_samples_seeded_and_only_cifar_by_default():
    from l2t.config import ConfigError, from_dict, parts

    cfg = from_dict({"dataset": "digits", "student": "lenet", "steps": 20, "augment": "on"})
    data = parts.splits(cfg)
    plain = parts.task(from_dict({**cfg.to_dict(), "augment": "off"}), data)
    task = parts.task(cfg, data)
    a, b, c = task.batches(3, 1), task.batches(3, 1), plain.batches(3, 1)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x) and a.x.shape == c.x.shape
    assert torch.equal(a.y, c.y) and torch.equal(a.x_val, c.x_val)
    assert torch.equal(task.train_indices(3, 1), plain.train_indices(3, 1))
    assert parts.augments(from_dict({"dataset": "cifar10"}), data)
    assert not parts.augments(from_dict({"dataset": "digits"}), data)
    with pytest.raises(ConfigError, match=r"augment=on crops and flips images \(C, H, W\)"):
        mnist1d = from_dict({"augment": "on", "steps": 20})
        parts.task(mnist1d, parts.splits(mnist1d))
