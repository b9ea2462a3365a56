"""A learned loss in a Hugging Face `Trainer`: scikit-learn's digits, a small model defined
here (nothing from a hub), the Trainer's own loop, optimizer and evaluation; l2t comes in
through the Trainer's loss hook and one callback (`pip install 'l2t[huggingface]'`).

    l2t train-teacher teacher.observe=state out=runs/teacher   # online needs observe=state
    python examples/hf_trainer_learned_loss.py runs/teacher [steps] [online|schedule]
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from transformers import EvalPrediction, PrinterCallback, Trainer, TrainingArguments

import l2t
from l2t.integrations.huggingface import LearnedLossTrainerCallback, compute_loss_func


class Digits(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixels": self.x[i], "labels": self.y[i]}


class Classifier(nn.Module):
    """The Trainer passes the batch's fields by name and reads `logits`."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        return {"logits": self.net(pixels)}


def metrics(prediction: EvalPrediction) -> dict[str, float]:
    """What the teacher reads in online mode: the validation cross-entropy and accuracy."""
    logits, labels = torch.tensor(prediction.predictions), torch.tensor(prediction.label_ids)
    return {
        "ce": F.cross_entropy(logits, labels).item(),
        "accuracy": (logits.argmax(1) == labels).float().mean().item(),
    }


def main(run: str, steps: int = 300, mode: str = "online", accumulate: int = 1) -> float:
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(y))
    train, val, test = order[:1200], order[1200:1400], order[1400:]
    criterion = l2t.LearnedLoss.from_run(run, mode=mode, total_steps=steps)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=64 // accumulate,
            gradient_accumulation_steps=accumulate,
            learning_rate=3e-3,
            eval_strategy="steps",
            eval_steps=criterion.k,  # the teacher reads the student every K steps
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        trainer = Trainer(
            model=Classifier(),
            args=args,
            train_dataset=Digits(x[train], y[train]),
            eval_dataset=Digits(x[val], y[val]),
            compute_loss_func=compute_loss_func(criterion),  # the learned loss
            compute_metrics=metrics,
            callbacks=[LearnedLossTrainerCallback(criterion)],  # its steps and observations
        )
        trainer.remove_callback(PrinterCallback)  # no dict per evaluation on the terminal
        trainer.train()
        predicted = trainer.predict(Digits(x[test], y[test])).predictions
    accuracy = float((np.argmax(predicted, axis=1) == y[test].numpy()).mean())
    print(f"digits, Trainer, learned loss ({mode}) from {run}: test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(
        sys.argv[1],
        int(sys.argv[2]) if len(sys.argv) > 2 else 300,
        sys.argv[3] if len(sys.argv) > 3 else "online",
    )
