"""Datasets as tensors on the device, split into train / val (the teacher's) / test (never
seen by the teacher). Small datasets fit in memory, so batches are index draws, not a
DataLoader: that keeps the unrolled inner loop free of host work.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from l2t.config import ConfigError

DATASETS = ("mnist1d", "digits", "cifar10", "cifar100", "mnist", "fashion-mnist")
_TEST_SPLIT_SEED = 12345  # datasets without a published test split get one fixed test set


@dataclass
class Splits:
    """Train / val / test tensors of one dataset, already on the target device."""

    name: str
    num_classes: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def train_and_val(self) -> Splits:
        """The split a user without a teacher would train on: train + val together."""
        return Splits(
            self.name,
            self.num_classes,
            torch.cat([self.x_train, self.x_val]),
            torch.cat([self.y_train, self.y_val]),
            self.x_val,
            self.y_val,
            self.x_test,
            self.y_test,
        )


@lru_cache(maxsize=1)
def _mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import mnist1d.data

    state = np.random.get_state()  # mnist1d seeds numpy's global RNG; leave it as it was
    data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    np.random.set_state(state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target
    order = np.random.default_rng(_TEST_SPLIT_SEED).permutation(len(y))
    test, train = order[:360], order[360:]
    return x[train], y[train], x[test], y[test]


def _find(root: Path, names: list[str], what: str) -> list[Path]:
    for folder in (root, *sorted(p for p in root.glob("*") if p.is_dir())):
        paths = [folder / n for n in names]
        found = [p if p.exists() else p.with_name(p.name + ".gz") for p in paths]
        if all(p.exists() for p in found):
            return found
    raise ConfigError(
        f"dataset needs {what} in data_dir='{root}' ({', '.join(names)}); none found there"
    )


def _cifar(root: Path, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if classes == 10:
        train_names = [f"data_batch_{i}" for i in range(1, 6)]
        files = _find(root, [*train_names, "test_batch"], "CIFAR-10 python batches")
        label_key = b"labels"
    else:
        files = _find(root, ["train", "test"], "CIFAR-100 python batches")
        label_key = b"fine_labels"

    def read(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for path in paths:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key]))
        return np.concatenate(xs), np.concatenate(ys)

    x, y = read(files[:-1])
    x_test, y_test = read(files[-1:])
    mean = x.mean(axis=(0, 2, 3), keepdims=True) / 255.0
    std = x.std(axis=(0, 2, 3), keepdims=True) / 255.0
    return (x / 255.0 - mean) / std, y, (x_test / 255.0 - mean) / std, y_test


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    _, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if dtype_code != 0x08:
        raise ConfigError(f"'{path}' is not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _mnist_like(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    xtr, ytr, xte, yte = (_read_idx(p) for p in _find(root, names, "MNIST IDX files"))
    mean, std = xtr.mean() / 255.0, xtr.std() / 255.0
    return (xtr[:, None] / 255.0 - mean) / std, ytr, (xte[:, None] / 255.0 - mean) / std, yte


def load_data(
    name: str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    data_dir: str = "",
    val_size: int = 1000,
    train_size: int = 0,
) -> Splits:
    """Load `name`, split val off train with `seed`, move everything to `device`."""
    root = Path(data_dir or ".").expanduser()
    if name == "mnist1d":
        x, y, x_test, y_test = _mnist1d()
    elif name == "digits":
        x, y, x_test, y_test = _digits()
    elif name in ("cifar10", "cifar100"):
        x, y, x_test, y_test = _cifar(root, 10 if name == "cifar10" else 100)
    elif name in ("mnist", "fashion-mnist"):
        x, y, x_test, y_test = _mnist_like(root)
    else:
        raise ConfigError(f"unknown dataset '{name}'; allowed: {', '.join(DATASETS)}")
    if val_size >= len(y):
        raise ConfigError(
            f"val_size={val_size} leaves no training data ('{name}' has {len(y)} train samples)"
        )
    order = np.random.default_rng(seed).permutation(len(y))
    val, train = order[:val_size], order[val_size:]
    if train_size:
        train = train[:train_size]
    num_classes = int(max(y.max(), y_test.max())) + 1

    def tensors(idx: np.ndarray | None, xs: np.ndarray, ys: np.ndarray) -> tuple[Tensor, Tensor]:
        xs, ys = (xs, ys) if idx is None else (xs[idx], ys[idx])
        return (
            torch.as_tensor(np.asarray(xs, dtype=np.float32), device=device),
            torch.as_tensor(np.asarray(ys, dtype=np.int64), device=device),
        )

    return Splits(
        name,
        num_classes,
        *tensors(train, x, y),
        *tensors(val, x, y),
        *tensors(None, x_test, y_test),
    )


def sample_batches(
    num_samples: int, batch_size: int, count: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """`count` independent batches of indices, drawn with replacement across batches."""
    idx = torch.randint(num_samples, (count, batch_size), generator=generator)
    return idx.to(device)
