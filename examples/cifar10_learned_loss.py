"""A learned loss on CIFAR-10 with torchvision's data and a ResNet-18, in your own loop
(SGD with momentum, a cosine schedule, mixed precision on a GPU). Needs torchvision and the
CIFAR-10 python batches already on disk (nothing is downloaded).

    python examples/cifar10_learned_loss.py RUN_DIR DATA_DIR [epochs]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import l2t


def main(run: str, data: str, epochs: int = 30) -> float:
    try:
        import torchvision
        from torchvision import transforms
    except ImportError:
        print("this example needs torchvision (pip install torchvision); skipped")
        return float("nan")
    if not (Path(data) / "cifar-10-batches-py").is_dir():
        sys.exit(f"no CIFAR-10 python batches under '{data}' (expected {data}/cifar-10-batches-py)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    normalize = transforms.Normalize((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
    augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    train_set = torchvision.datasets.CIFAR10(
        data, train=True, transform=transforms.Compose([*augment, transforms.ToTensor(), normalize])
    )
    test_set = torchvision.datasets.CIFAR10(
        data, train=False, transform=transforms.Compose([transforms.ToTensor(), normalize])
    )
    loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    total = epochs * len(loader)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    criterion = l2t.LearnedLoss.from_run(run, mode="schedule", total_steps=total)
    scaler = torch.amp.GradScaler(enabled=device == "cuda")
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device, enabled=device == "cuda"):
                loss = criterion(model(x), y)  # follows the logits' device and dtype
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            criterion.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test_set, batch_size=500):
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
    accuracy = correct / len(test_set)
    print(f"CIFAR-10, ResNet-18, learned loss from {run}: test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 30)
