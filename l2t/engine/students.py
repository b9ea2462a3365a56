"""Student networks, chosen by name. Reference architectures: MNIST-1D's MLP and CNN
(Greydanus 2020), LeNet-5, and the CIFAR ResNets of He et al. 2016 (16/32/64 wide), plus
the authors' 64/128/256 ResNet-8 for comparison with their code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from l2t.config import ConfigError

STUDENTS = ("mlp", "cnn1d", "lenet", "resnet8", "resnet20", "resnet32", "resnet8_wide")


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CNN1D(nn.Module):
    """MNIST-1D's reference CNN: three strided 1-D convolutions and a linear read-out."""

    def __init__(self, length: int, num_classes: int, channels: int = 25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            width = self.features(torch.zeros(1, 1, length)).shape[1]
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.reshape(x.shape[0], 1, -1)))


class LeNet(nn.Module):
    """LeNet-5 with same-padded convolutions, so 8x8 digits fit as well as 28x28 or 32x32."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            width = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.head = nn.Sequential(
            nn.Linear(width, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2): three stages of `blocks` basic blocks each."""

    def __init__(
        self, in_channels: int, num_classes: int, blocks: int, widths: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.stem(x))
        return self.head(out.mean(dim=(2, 3)))


def build_student(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A freshly initialized student; seed torch before calling for a reproducible init."""
    numel = 1
    for size in input_shape:
        numel *= size
    if name == "mlp":
        return MLP(numel, num_classes)
    if name == "cnn1d":
        if len(input_shape) != 1 and input_shape[0] != 1:
            raise ConfigError(f"student 'cnn1d' needs 1-D input; the data has shape {input_shape}")
        return CNN1D(numel, num_classes)
    if name in ("lenet", "resnet8", "resnet20", "resnet32", "resnet8_wide"):
        if len(input_shape) != 3:
            raise ConfigError(
                f"student '{name}' needs image input (channels, height, width); "
                f"the data has shape {input_shape}"
            )
        if name == "lenet":
            return LeNet(input_shape, num_classes)
        widths = (64, 128, 256) if name == "resnet8_wide" else (16, 32, 64)
        blocks = {"resnet8": 1, "resnet8_wide": 1, "resnet20": 3, "resnet32": 5}[name]
        return ResNet(input_shape[0], num_classes, blocks, widths)
    raise ConfigError(f"unknown student '{name}'; allowed: {', '.join(STUDENTS)}")
