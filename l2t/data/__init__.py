"""Data: datasets and their splits (`datasets`, `splits`) and a model's soft labels to
distill from (`distill`). `from l2t.data import load_splits` (the module before the
subpackages) keeps working."""

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("l2t.data.datasets"), name)
