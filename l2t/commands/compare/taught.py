"""The teacher of `teacher=RUN_DIR` as compare rows: applied online (`teacher_online`), its
recorded schedule replayed (`teacher_schedule`, also on train + val: a replay reads no
validation split), a fresh copy that keeps learning on each student (`teacher_learning`),
and the run's teacher before any update (`teacher_untrained`: its base point)."""

from __future__ import annotations

from typing import cast

from agents import FixedLossTeacher, ReinforceTeacher
from l2t.commands.applying import load_teacher, teach_student
from l2t.commands.compare.method import Chosen, Method, Student, on_base_point
from l2t.config import Config, teachers
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.estimators.online import OnlineTeacher, teach_while_learning


class Taught(Method):
    names = (
        "teacher_online",
        "teacher_learning",
        "teacher_schedule",
        "teacher_untrained",
        "teacher_schedule_trainval",
    )
    baseline = False
    needs_teacher = True

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        if not have_teacher or name.endswith("_trainval"):
            return False
        return name != "teacher_untrained" or on_base_point(cfg)

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        cfg, device = s.cfg, s.task.device
        assert s.run_dir is not None
        run_dir = s.run_dir
        if self.name == "teacher_learning":  # a fresh copy per student learns on it (val only)

            def learning(seed: int) -> EpisodeResult:
                teacher = load_teacher(run_dir, "online", cfg, device)
                if isinstance(teacher, ReinforceTeacher | FixedLossTeacher):
                    raise ValueError(
                        f"teacher_learning needs an lstm or mlp teacher: {teacher.kind}"
                    )
                learner = cast(OnlineTeacher, teacher)  # lstm and mlp teachers carry an Adam
                return teach_while_learning(s.task, learner, seed, cfg.eval_every, s.test)

            return learning
        if self.name == "teacher_untrained":
            fresh = teachers.teacher(cfg, s.base)
            return lambda seed: run_student(
                s.task, fresh, fresh.theta(), seed, cfg.eval_every, s.test
            )
        mode = "online" if self.name == "teacher_online" else "schedule"
        teacher = load_teacher(run_dir, mode, cfg, device)
        task = s.task_for(self.name)
        return lambda seed: teach_student(cfg, task, teacher, s.base, seed, cfg.eval_every, s.test)
