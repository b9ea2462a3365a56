"""A learned loss in your own training loop: scikit-learn's digits, a model and a DataLoader
defined here, AdamW with a linear warm-up and a cosine decay — nothing of l2t's but the
criterion.

    l2t train-teacher out=runs/teacher        # any run of l2t train-teacher
    python examples/digits_learned_loss.py runs/teacher [epochs]
"""

from __future__ import annotations

import math
import sys

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import l2t


def main(run: str, epochs: int = 20, mode: str = "schedule") -> float:
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(y))
    train, test = order[:1400], order[1400:]
    loader = DataLoader(TensorDataset(x[train], y[train]), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    total = epochs * len(loader)
    warmup = max(1, total // 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    criterion = l2t.LearnedLoss.from_run(run, mode=mode, total_steps=total)  # the one l2t line

    for _ in range(epochs):
        for xb, yb in loader:
            loss = criterion(model(xb), yb)  # like nn.CrossEntropyLoss()(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            criterion.step()  # training progress: the learned loss follows it

    with torch.no_grad():
        accuracy = (model(x[test]).argmax(dim=1) == y[test]).float().mean().item()
    print(f"digits, learned loss ({mode}) from {run}: test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20)
