"""Data: datasets and their splits (`datasets`, `splits`) and a model's soft labels to
distill from (`distill`). `from l2t.data import load_data` (the module before the
subpackages) keeps working; a run's data from its config is `l2t.config.parts.splits`."""

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name == "load_splits":
        raise ImportError("load_splits(cfg) is now l2t.config.parts.splits(cfg)")
    return getattr(importlib.import_module("l2t.data.datasets"), name)
