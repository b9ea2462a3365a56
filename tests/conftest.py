import pytest
import torch

from l2t.config import Config, from_dict


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what l2t.threads honours in auto mode


@pytest.fixture
def tiny_cfg(tmp_path) -> Config:
    """A run that finishes in seconds: MNIST-1D, MLP, 60 student steps, a quickly fitted DLN."""
    return from_dict(
        {
            "steps": 60,
            "episodes": 2,
            "select_students": 1,
            "eval_every": 30,
            "val_batch": 200,
            "out": str(tmp_path / "run"),
            "loss": {"init_steps": 100},
            "unroll": {"steps": 5},
        }
    )
