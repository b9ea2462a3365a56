"""Old import paths keep working (issue 32): `l2t` was one flat package until its modules
moved into subpackages by role (docs/design.md §2). `import l2t.task` or `from l2t.lifetime
import advance` gets the module at its new place (the same module object, so a monkeypatch
through either name patches both), with a DeprecationWarning naming that place."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {  # old module under l2t -> its place now
    "labels": "losses.labels",
    "fixed_losses": "losses.fixed",
    "loss_network": "losses.dln",
    "parametric_loss": "losses.parametric",
    "composite_loss": "losses.composite",
    "base_loss": "config.parts",  # base_loss_params(cfg) is parts.base_loss(cfg)
    "student_state": "engine.student_state",
    "task": "engine.task",
    "lifetime": "engine.lifetime",
    "population": "engine.population",
    "students": "engine.students",
    "teaching": "engine.teaching",
    "evaluation": "engine.evaluation",
    "selection": "engine.selection",
    "seeds": "engine.seeds",
    "schedule": "engine.schedule",
    "splits": "data.splits",
    "distill": "data.distill",
    "base_point": "methods.base_point",
    "reweighting": "methods.reweighting",
    "model_training": "methods.model_training",
    "checkpoint": "io.checkpoint",
    "tracking": "io.tracking",
    "run_lock": "io.run_lock",
    "progress": "io.progress",
    "threads": "io.threads",
    "distributed": "io.distributed",
    "device": "io.device",
    "plots": "io.plots",
    "stopping": "io.stopping",
    "cli": "commands.cli",
    "training": "commands.training",
    "applying": "commands.applying",
    "compare": "commands.compare",
    "sweep": "commands.sweep",
    "bench": "commands.bench",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module ran under its new name already; importing it under the old one set
        its `__spec__` to the alias's, which is put back."""
        module.__spec__ = self.spec


class MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        old = fullname.removeprefix("l2t.")
        if fullname == old or old not in MOVED:
            return None
        new = f"l2t.{MOVED[old]}"
        warnings.warn(f"{fullname} moved to {new}", DeprecationWarning, stacklevel=2)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
