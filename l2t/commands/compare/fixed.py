"""Fixed losses as compare rows (`l2t/losses/fixed.py`): at the run's optimizer on train, on
train + the trusted split (`*_trainval`), on the trusted split alone (`ce_val`), and
cross-entropy stopped early on validation."""

from __future__ import annotations

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Method, Student, on_base_point
from l2t.config import Config, ConfigError
from l2t.engine.teaching import EpisodeResult, run_student
from l2t.losses.fixed import LOSSES, ROBUST

LOSS_ROWS = (*LOSSES, "base_dln", "base")  # base: the run's family at its base point


class FixedLoss(Method):
    """The fixed loss the name says (`base`: the run's family at its base point, the
    composite's chosen on validation), on the data its suffix says."""

    names = (
        *LOSS_ROWS,
        *(f"{loss}_trainval" for loss in LOSS_ROWS if loss != "base_dln"),
        "ce_val",
    )

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        """Every fixed loss, the robust ones only under label noise; `ce_trainval`, so a
        table shows what the trusted split is worth as data; the family's own base loss."""
        if name in ROBUST:
            return bool(cfg.label_noise)
        if name in LOSSES or name == "ce_trainval":
            return True
        return name == ("base" if on_base_point(cfg) else "base_dln")

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        refuse_dln_rows_on_composite(name, cfg)

    def loss(self) -> str:
        return "ce" if self.name == "ce_val" else self.name.removesuffix("_trainval")

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        fixed = FixedLossTeacher(self.loss(), s.base)
        if self.name == "ce_val":
            task = make_task(s.cfg, s.task.splits.val_only())
        else:  # `_trainval` at the settings chosen on train-only students
            task = s.task_for(self.name)
        return lambda seed: run_student(task, fixed, {}, seed, s.cfg.eval_every, s.test)


class EarlyStopped(FixedLoss):
    """Cross-entropy, judged at its best validation point."""

    names = ("ce_early_stop",)

    @classmethod
    def by_default(cls, name: str, cfg: Config, have_teacher: bool) -> bool:
        return bool(cfg.label_noise)

    def loss(self) -> str:
        return "ce"

    def student(self, chosen: Chosen) -> Student:
        run = super().student(chosen)
        return lambda seed: early_stopped(run(seed))


def refuse_dln_rows_on_composite(name: str, cfg: Config) -> None:
    """`base_dln*` rows are the dln family's starting loss; the composite has `base`."""
    if name.startswith("base_dln") and on_base_point(cfg):
        raise ConfigError(
            "base_dln is the dln family's starting loss; with loss.family=composite compare "
            "`base`, the composite's base point"
        )


def early_stopped(result: EpisodeResult) -> EpisodeResult:
    """The student at the evaluation point of its best (clean) validation accuracy, the
    earliest of ties: early stopping, choosing only by the teacher's validation split."""
    best = max(result.curve, key=lambda point: point["val_acc"])
    return EpisodeResult(result.curve, best["val_acc"], best.get("test_acc"), result.diverged_steps)
