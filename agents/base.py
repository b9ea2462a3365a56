"""The one base class of teachers: act on the student one teacher step at a time, learn
from it, and save / load in one file (Stable-Baselines3's habits)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from envs.student_training import StudentTrainingEnv
from l2t.checkpoint import atomic_save, load_checkpoint
from l2t.config import ConfigError
from l2t.teaching import EpisodeResult, run_student

TEACHER_FORMAT = 2  # 2: the run's config inside; 1: without it (still read)
READABLE_FORMATS = (1, 2)


class Teacher(nn.Module, ABC):
    """A teacher sets the student's loss each teacher step and may learn while doing it.

    Subclasses keep their constructor arguments in `self.hparams` (for `save`) and return
    a dict of scalars to log from `teacher_step`.
    """

    kind: ClassVar[str]
    registry: ClassVar[dict[str, type[Teacher]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Teacher.registry[cls.kind] = cls

    def __init__(self, **hparams: Any) -> None:
        super().__init__()
        self.hparams = hparams

    @abstractmethod
    def start_episode(self, env: StudentTrainingEnv) -> None:
        """Forget the previous student (recurrent state, current loss); keep what was learned."""

    @abstractmethod
    def teacher_step(self, env: StudentTrainingEnv, learn: bool = True) -> dict[str, float]:
        """Set the loss for the next K student updates, take them through `env`, and (if
        `learn`) update the teacher from the outcome."""

    def current_params(self) -> list[torch.Tensor] | None:
        """The loss parameters set by the last teacher step (recorded as the loss schedule);
        None for teachers without loss parameters (fixed losses)."""
        return None

    def teach(
        self,
        env: StudentTrainingEnv,
        seed: int,
        eval_every: int,
        test: tuple[torch.Tensor, torch.Tensor] | None = None,
        learn: bool = False,
    ) -> EpisodeResult:
        """Train a fresh student (seeded) in `env` for its whole budget; with `learn` the
        teacher keeps learning from this student's validation loss as it goes."""
        self.start_episode(env)
        return run_student(env, lambda e: self.teacher_step(e, learn=learn), seed, eval_every, test)

    def episode_state(self) -> dict[str, Any]:
        """What this teacher holds about the student in hand (plain data), so that an episode
        stopped part way continues exactly; teachers that hold nothing return {}."""
        return {}

    def load_episode_state(self, state: dict[str, Any]) -> None:
        return None

    def extra_state(self) -> dict[str, Any]:
        """Training state beyond the weights (optimizer moments) needed to resume exactly."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        return None

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
