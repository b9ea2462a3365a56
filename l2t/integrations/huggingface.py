"""`l2t.LearnedLoss` in a Hugging Face `Trainer` (`pip install 'l2t[huggingface]'`;
docs/design.md §3).

    criterion = l2t.LearnedLoss.from_run("runs/latest", mode="online", total_steps=N)
    trainer = Trainer(
        model, args,                               # args.max_steps = N
        compute_loss_func=compute_loss_func(criterion),
        compute_metrics=...,                       # returns {"ce": ..., "accuracy": ...}
        callbacks=[LearnedLossTrainerCallback(criterion)],
    )

`compute_loss_func` is the Trainer's loss hook: the criterion on the model's logits,
scaled so that the micro-batches of one optimizer step sum to the whole batch's mean (the
Trainer divides by `num_items_in_batch`, not by the accumulation steps, once a hook is
given). The callback moves the criterion to the Trainer's device, keeps its step count at
`state.global_step` and, in online mode, observes the evaluation's cross-entropy and
accuracy (`eval_ce`, `eval_accuracy`: what `compute_metrics` returns, prefixed `eval_`).
The Trainer's own `eval_loss` is the learned loss, not what the teacher read in training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from l2t.learned_loss import LearnedLoss


def compute_loss_func(criterion: LearnedLoss) -> Callable[..., Tensor]:
    """The Trainer's `compute_loss_func` for `criterion`."""

    def loss(outputs: Any, labels: Tensor, num_items_in_batch: Any = None) -> Tensor:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        value = criterion(logits, labels)
        if num_items_in_batch is None:
            return value
        if not labels.is_floating_point() and criterion.ignore_index is not None:
            counted = (labels != criterion.ignore_index).sum()
        else:
            counted = torch.tensor(labels.shape[0])
        total = torch.as_tensor(num_items_in_batch).to(value)
        if criterion.reduction == "sum":
            return value / total
        return value * counted.to(value) / total  # this micro-batch's share of the whole

    return loss


class LearnedLossTrainerCallback(TrainerCallback):
    """Steps and observes a `LearnedLoss` at the times a hand-written loop would."""

    def __init__(
        self, criterion: LearnedLoss, val_loss: str = "eval_ce", val_acc: str = "eval_accuracy"
    ) -> None:
        self.criterion = criterion
        self.val_loss, self.val_acc = val_loss, val_acc  # the evaluation metrics' names

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self.criterion.to(args.device)
        if state.max_steps != self.criterion.total_steps:  # the schedule reads t / N
            warnings.warn(
                f"LearnedLossTrainerCallback: the Trainer plans {state.max_steps} optimizer "
                f"steps, the criterion total_steps={self.criterion.total_steps}: its schedule "
                "will be stretched or cut",
                stacklevel=2,
            )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        while self.criterion.t < state.global_step:
            self.criterion.step()

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.criterion.mode != "online":
            return
        metrics = kw.get("metrics") or {}
        missing = [k for k in (self.val_loss, self.val_acc) if k not in metrics]
        if missing:
            raise ValueError(
                f"LearnedLossTrainerCallback reads {', '.join(missing)} from the evaluation "
                f"metrics; return them from compute_metrics or name yours "
                f"(val_loss=..., val_acc=...); got: {', '.join(sorted(metrics)) or 'none'}"
            )
        self.criterion.observe(metrics[self.val_loss], metrics[self.val_acc], kw.get("model"))
