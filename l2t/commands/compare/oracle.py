"""The headroom of an unlabeled pool (issue 33): students that read the pool's hidden true
labels, which no method and no teacher may (`tests/test_unlabeled.py`). `oracle_labels`
trains on the pool with its true labels; `oracle_drop` on the pool without the samples
whose pseudo-label is wrong. Both with cross-entropy on hard labels at the run's optimizer.
They are never the best baseline: the table says they read hidden labels."""

from __future__ import annotations

import dataclasses

import torch

from agents import FixedLossTeacher
from l2t.commands.applying import make_task
from l2t.commands.compare.method import Chosen, Method, Student
from l2t.config import Config, ConfigError
from l2t.data.splits import Splits
from l2t.engine.teaching import run_student


class Oracle(Method):
    names = ("oracle_labels", "oracle_drop")
    baseline = False  # it reads what no user has
    reads_hidden_labels = True

    @classmethod
    def check(cls, name: str, cfg: Config) -> None:
        if not (cfg.unlabeled and cfg.distill.model):
            raise ConfigError(
                f"{name} reads an unlabeled pool's hidden labels: unlabeled=N and distill.model"
            )

    def student(self, chosen: Chosen) -> Student:
        s = self.setting
        splits = oracle_splits(s.task.splits, drop=self.name == "oracle_drop")
        task, fixed = make_task(s.cfg, splits), FixedLossTeacher("ce", s.base)
        return lambda seed: run_student(task, fixed, {}, seed, s.cfg.eval_every, s.test)


def oracle_splits(splits: Splits, drop: bool) -> Splits:
    """The pool with its true labels, or without its wrong pseudo-labels (`drop`)."""
    assert splits.hidden_labels is not None and splits.pool, "an unlabeled pool, labeled"
    n, true = splits.labeled, splits.hidden_labels
    if not drop:
        return dataclasses.replace(splits, y_train=torch.cat([splits.y_train[:n], true]))
    keep = torch.cat(
        [torch.ones(n, dtype=torch.bool, device=true.device), splits.y_train[n:] == true]
    )
    logits = splits.model_logits
    return dataclasses.replace(
        splits,
        x_train=splits.x_train[keep],
        y_train=splits.y_train[keep],
        model_logits=None if logits is None else logits[keep],
        pool=int(keep[n:].sum()),
        hidden_labels=true[keep[n:]],
    )
