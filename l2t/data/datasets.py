"""Datasets as tensors on the device, split into train / val (the teacher's) / test (never
seen by the teacher). Small datasets fit in memory, so batches are index draws, not a
DataLoader: that keeps the unrolled inner loop free of host work.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from l2t.config import ConfigError
from l2t.data.splits import LabelNoise, Splits
from l2t.io.checkpoint import atomic_write_json

DATASETS = ("mnist1d", "digits", "cifar10", "cifar100", "mnist", "fashion-mnist")
NOISE_KINDS = ("symmetric", "pairflip")
_TEST_SPLIT_SEED = 12345  # datasets without a published test split get one fixed test set
_NOISE_STREAM = 0x4E015E  # the noise draw's own random stream beside the split's (same seed)
_MORE_MNIST1D_SEED = 4321  # the generator's seed for samples beyond the published 5,000


@lru_cache(maxsize=1)
def _mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = _generate_mnist1d()
    return data["x"], data["y"], data["x_test"], data["y_test"]


@lru_cache(maxsize=2)
def _more_mnist1d(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` further MNIST-1D training samples for an unlabeled pool: the same generator with
    its own seed (the published 4,000 / 1,000 split is left as it is; each set is
    standardized by its own mean and std, both ~0 and ~1)."""
    per_class = -(-n // 10)
    data = _generate_mnist1d(num_samples=10 * per_class, train_split=1.0, seed=_MORE_MNIST1D_SEED)
    return data["x"][:n], data["y"][:n]


def _generate_mnist1d(**changes: Any) -> dict[str, Any]:
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    for key, value in changes.items():
        setattr(args, key, value)
    state = np.random.get_state()  # mnist1d seeds numpy's global RNG; leave it as it was
    data = mnist1d.data.make_dataset(args)
    np.random.set_state(state)
    return data


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


class _CifarUnpickler(pickle.Unpickler):
    """Reads what a CIFAR python batch holds (a dict of bytes, lists and one uint8 array)
    and refuses every other global: a file that would run code when unpickled stays data."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}; a CIFAR batch never does")
        return super().find_class(module, name)


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one CIFAR python batch, or one clear line about the file."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[label_key], dtype=np.int64)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ConfigError(f"'{path}' is not a CIFAR python batch ({reason})") from None
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"'{path}' holds {x.shape[0]} images but {y.shape[0]} labels")
    return x, y


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
            x, y = _cifar_batch(path, label_key)
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    x, y = read(files[:-1])
    x_test, y_test = read(files[-1:])
    mean = x.mean(axis=(0, 2, 3), keepdims=True) / 255.0
    std = x.std(axis=(0, 2, 3), keepdims=True) / 255.0
    return (x / 255.0 - mean) / std, y, (x_test / 255.0 - mean) / std, y_test


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("no IDX header of unsigned bytes")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, ValueError, struct.error) as exc:
        raise ConfigError(f"'{path}' is not an IDX file of unsigned bytes ({exc})") from None


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
    label_noise: float = 0.0,
    label_noise_kind: str = "symmetric",
    labeled: int = 0,
    unlabeled: int = 0,
) -> Splits:
    """Load `name`, split val off train with `seed`, move everything to `device`.

    `label_noise` corrupts that fraction of the training labels (`corrupt_labels`, seeded
    by `seed`); the validation and test labels stay clean: the teacher's validation split
    is the small trusted set that learned losses and reweighting methods assume.
    `labeled` keeps that many training samples; `unlabeled` sets the next ones (and, for
    MNIST-1D, newly generated ones where the split has too few) aside as an unlabeled pool
    whose labels are hidden (`Splits.x_unlabeled`, `hidden_labels`)."""
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
    if labeled > len(train):
        raise ConfigError(
            f"labeled={labeled} exceeds the {len(train)} training samples after val_size={val_size}"
        )
    kept = labeled or train_size  # 0: every sample after the val split
    train, rest = (train[:kept], train[kept:]) if kept else (train, train[:0])
    x_pool, y_pool = x[rest[:unlabeled]], y[rest[:unlabeled]]
    if len(rest) < unlabeled:
        if name != "mnist1d":
            raise ConfigError(
                f"'{name}' has {len(rest)} training samples beyond labeled={labeled} and "
                f"val_size={val_size}; unlabeled={unlabeled} asks for more (only mnist1d "
                "generates more)"
            )
        x_more, y_more = _more_mnist1d(unlabeled - len(rest))
        x_pool, y_pool = np.concatenate([x_pool, x_more]), np.concatenate([y_pool, y_more])
    num_classes = int(max(y.max(), y_test.max())) + 1
    y_train, noise = np.asarray(y[train], dtype=np.int64), None
    if label_noise:
        y_train, noise = corrupt_labels(y_train, label_noise, label_noise_kind, num_classes, seed)

    def tensors(xs: np.ndarray, ys: np.ndarray) -> tuple[Tensor, Tensor]:
        return (
            torch.as_tensor(np.asarray(xs, dtype=np.float32), device=device),
            torch.as_tensor(np.asarray(ys, dtype=np.int64), device=device),
        )

    pool = tensors(x_pool, y_pool) if unlabeled else (None, None)
    return Splits(
        name,
        num_classes,
        *tensors(x[train], y_train),
        *tensors(x[val], y[val]),
        *tensors(x_test, y_test),
        noise,
        x_unlabeled=pool[0],
        hidden_labels=pool[1],
    )


def corrupt_labels(
    y: np.ndarray, rate: float, kind: str, num_classes: int, seed: int
) -> tuple[np.ndarray, LabelNoise]:
    """`round(rate * n)` labels, drawn with `seed`, changed to another class: a uniformly
    drawn one (`symmetric`) or the next one, c -> c + 1 mod C (`pairflip`). Exactly that
    many labels change, so the noise rate is the fraction of wrong labels."""
    if kind not in NOISE_KINDS:
        raise ConfigError(f"label_noise_kind must be one of {', '.join(NOISE_KINDS)}; got {kind!r}")
    rng = np.random.default_rng([seed, _NOISE_STREAM])
    index = np.sort(rng.choice(len(y), size=round(rate * len(y)), replace=False))
    clean = y[index]
    if kind == "symmetric":  # a shift of 1..C-1 classes: any other class, uniformly
        shift = rng.integers(1, num_classes, size=len(index))
    else:
        shift = np.ones(len(index), dtype=np.int64)
    noisy = (clean + shift) % num_classes
    out = y.copy()
    out[index] = noisy
    return out, LabelNoise(rate, kind, seed, len(y), index, clean, noisy)


def record_noise(splits: Splits, run_dir: str | Path) -> None:
    """Write which training labels are wrong to `run_dir/label_noise.json` (if any are)."""
    if splits.noise is not None:
        atomic_write_json(splits.noise.to_dict(), Path(run_dir) / "label_noise.json")
