"""The one base class of teachers: a policy over loss parameters (docs/design.md §3) that
saves and loads in one file (Stable-Baselines3's habits)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from l2t.config import ConfigError, LossNetConfig, TeacherConfig
from l2t.engine.lifetime import Observation, TeacherState, Theta
from l2t.engine.student_state import LossFn
from l2t.engine.task import Task
from l2t.io.checkpoint import atomic_save, load_checkpoint


def _plain(value: Any) -> Any:
    """Shapes as tuples of ints (a torch.Size is one, but not plain data in a file)."""
    if isinstance(value, torch.Size):
        return tuple(int(n) for n in value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


TEACHER_FORMAT = 2  # 2: the run's config inside; 1: without it (still read)
READABLE_FORMATS = (1, 2)


class Teacher(nn.Module):
    """A teacher sets the student's loss each teacher step: `propose(theta, state, obs)`, pure
    in its parameters `theta`, so estimators can differentiate or perturb it and a frozen
    teacher trains students on the same path (`l2t.engine.teaching.run_student`). The defaults
    are those of a policy that observes only the student state and keeps no state.

    A teacher's constructor arguments, by name, are its `hparams` (recorded by `__new__`:
    what `save` writes and `load` passes back), so no subclass copies them by hand;
    `unsaved` names those that are not data (a fixed loss's base tensors, given at load).
    """

    kind: ClassVar[str]
    registry: ClassVar[dict[str, type[Teacher]]] = {}
    observes_gradient = False  # whether `propose` reads dL_val/dphi (a second-order unroll)
    teacher_set = True  # a loss it sets is judged by the divergence guard (lifetime.broken)
    optimizer: torch.optim.Optimizer | None = None  # a learning teacher's own Adam
    unsaved: ClassVar[tuple[str, ...]] = ()  # constructor arguments `save` leaves out
    # its facts, which l2t/config/parts.py `check` reads: an estimator trains it on a
    # population of students (else it learns from its own episodes, or not at all); it sets
    # the soft labels' mix (`teacher.mix_range`); PES/ES may perturb it with a sigma per
    # control; the loss families it sets (empty: any)
    trained_by_estimator: ClassVar[bool] = True
    can_set_mix: ClassVar[bool] = False
    sigma_per_control: ClassVar[bool] = False
    acts_in_env: ClassVar[bool] = False  # it acts through the gymnasium environment (envs/)
    families: ClassVar[tuple[str, ...]] = ()
    defers_to: ClassVar[dict[str, str]] = {}  # family -> the teacher that takes its place there
    hparams: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Teacher.registry[cls.kind] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> Teacher:
        teacher = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(teacher, *args, **kwargs)
        except TypeError:  # copy or unpickle: no arguments; `hparams` comes with __dict__
            return teacher
        bound.apply_defaults()
        named = list(bound.arguments.items())[1:]  # after self
        hparams = {k: _plain(v) for k, v in named if k not in cls.unsaved}
        object.__setattr__(teacher, "hparams", hparams)  # before nn.Module.__init__
        return teacher

    @classmethod
    def from_settings(
        cls, t: TeacherConfig, loss: LossNetConfig, base: list[Tensor], env: Any = None
    ) -> Teacher:
        """The teacher the `teacher:` section configures around the base loss parameters
        `base` of the `loss:` section's family (the REINFORCE agent: sized for the gymnasium
        environment `env` it acts in); it reads the keys it takes, by name."""
        raise ConfigError(f"teacher.agent={cls.kind} is not configured by a run")

    def theta(self) -> Theta:
        """The learnable parameters as values: what estimators perturb and differentiate."""
        return {name: p.detach() for name, p in self.named_parameters()}

    def initial_state(self) -> TeacherState:
        return {}

    def propose(
        self, theta: Theta, state: TeacherState, obs: Observation
    ) -> tuple[list[Tensor], TeacherState]:
        raise NotImplementedError(f"the {self.kind} teacher acts through the environment")

    def base_params(self) -> list[Tensor]:
        raise NotImplementedError(f"the {self.kind} teacher sets no loss parameters")

    def loss_fn(self, task: Task, params: Sequence[Tensor]) -> LossFn:
        return task.loss_fn(params)

    def extra_state(self) -> dict[str, Any]:
        """Training state beyond the weights (optimizer moments) needed to resume exactly."""
        return {} if self.optimizer is None else {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])

    def save(self, path: str | Path, config: dict[str, Any] | None = None) -> None:
        """One self-contained file of plain data: format, kind, constructor arguments,
        weights (an LSTM teacher's include its base loss `phi_0`) and the run's config."""
        atomic_save(
            {
                "format": TEACHER_FORMAT,
                "kind": self.kind,
                "hparams": self.hparams,
                "state_dict": self.state_dict(),
                "config": config,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Teacher:
        """Load any saved teacher; its class comes from the file. A file that is not a
        teacher, of another format or that does not fit its class is one clear error."""
        data = load_checkpoint(path, device)
        if not isinstance(data, dict) or not {"kind", "hparams", "state_dict"} <= set(data):
            raise ConfigError(f"'{path}' is not a teacher written by l2t train-teacher")
        version = data.get("format", 1)  # files before the format field are format 1
        if version not in READABLE_FORMATS:
            raise ConfigError(
                f"'{path}' is a teacher file of format {version}; this l2t reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))} (train it again with this version)"
            )
        if data["kind"] not in Teacher.registry:
            raise ConfigError(f"'{path}' holds a teacher of unknown kind {data['kind']!r}")
        try:
            teacher = Teacher.registry[data["kind"]](**data["hparams"])
            teacher.load_state_dict(data["state_dict"])
        except (TypeError, RuntimeError, KeyError) as exc:
            reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "?"
            raise ConfigError(
                f"'{path}' does not fit this l2t's {data['kind']} teacher ({reason})"
            ) from None
        return teacher.to(device)
