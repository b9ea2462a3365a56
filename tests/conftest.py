import pytest
import torch
import yaml

from l2t.config import Config, from_dict


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what l2t.io.threads honours in auto mode


@pytest.fixture
def float64():
    """Students, data, losses and teachers built in float64: where two computations that sum
    in different orders are compared, float32's gap depends on the CPU's kernels (AVX2 vs
    AVX-512); float64's is ~1e-16 relative per sum, far below any bound a test sets."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.fixture
def tiny_cfg(tmp_path) -> Config:
    """A run that finishes in seconds: MNIST-1D, MLP, 60 student steps, a quickly fitted DLN."""
    return from_dict(
        {
            "steps": 60,
            "episodes": 2,
            "select_students": 1,
            "select_level": 1.0,  # one student has no paired test: keep the best mean
            "eval_every": 30,
            "val_batch": 200,
            "out": str(tmp_path / "run"),
            "loss": {"init_steps": 100},
            "unroll": {"steps": 5},
        }
    )


@pytest.fixture
def grid_sweep(tmp_path):
    """(name, key, values) -> the path of a grid sweep file over one config key."""

    def write(name: str, key: str, values: list) -> str:
        spec = {
            "name": name,
            "method": "grid",
            "metric": {"name": "teacher_test_acc", "goal": "maximize"},
            "parameters": {key: {"values": values}},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return str(path)

    return write
