"""`l2t.LearnedLoss` in a Lightning fit (`pip install 'l2t[lightning]'`; docs/design.md §3).

    criterion = l2t.LearnedLoss.from_run("runs/latest", mode="online", total_steps=N)
    module.criterion = criterion             # a submodule: moved, put in eval, checkpointed
    trainer = L.Trainer(max_steps=N, callbacks=[LearnedLossCallback(criterion)])

The callback keeps the criterion's step count at `trainer.global_step` (optimizer steps, so
gradient accumulation is one step per `accumulate_grad_batches` batches, as the criterion
asks) and, in online mode, hands it the validation loss and accuracy the module logs
(`val_loss` and `val_acc` unless named otherwise) after every validation run. The sanity
check's numbers are not observed: before the first validation the criterion assumes its
documented start (the training loss, chance accuracy).
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl

from l2t.learned_loss import LearnedLoss


class LearnedLossCallback(pl.Callback):
    """Steps and observes a `LearnedLoss` at the times a hand-written loop would."""

    def __init__(
        self, criterion: LearnedLoss, val_loss: str = "val_loss", val_acc: str = "val_acc"
    ) -> None:
        self.criterion = criterion
        self.val_loss, self.val_acc = val_loss, val_acc  # the logged metrics' names

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        planned = trainer.estimated_stepping_batches
        if planned != self.criterion.total_steps:  # the schedule is read by progress t / N
            warnings.warn(
                f"LearnedLossCallback: the trainer plans {planned} optimizer steps, the "
                f"criterion total_steps={self.criterion.total_steps}: its schedule will be "
                "stretched or cut",
                stacklevel=2,
            )

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        while self.criterion.t < trainer.global_step:  # an optimizer step was taken
            self.criterion.step()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.criterion.mode != "online":
            return
        metrics = trainer.callback_metrics
        missing = [k for k in (self.val_loss, self.val_acc) if k not in metrics]
        if missing:
            logged = ", ".join(sorted(metrics)) or "none"
            raise ValueError(
                f"LearnedLossCallback reads {', '.join(missing)} from the validation metrics; "
                f"log them with self.log(...) in validation_step or name yours "
                f"(LearnedLossCallback(criterion, val_loss=..., val_acc=...)); logged: {logged}"
            )
        self.criterion.observe(
            float(metrics[self.val_loss]), float(metrics[self.val_acc]), pl_module
        )
