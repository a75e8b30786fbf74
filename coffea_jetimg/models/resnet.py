"""ResNet-18/34/50 (He et al., arXiv:1512.03385) in plain torch, for 224×224×3 event images.

Built from scratch (no torchvision): :class:`BasicBlock` (two 3×3 convolutions) for ResNet-18/34,
:class:`Bottleneck` (1×1 → 3×3 → 1×1, expansion 4) for ResNet-50. Input ``(batch, C, H, W)``,
output logits ``(batch, n_classes)`` (3 by default: the event classes of the event-image study).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "RESNETS"]


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _shortcut(cin: int, out: int, stride: int) -> nn.Module:
    """The residual branch: identity, or a strided 1x1 projection when the shape changes."""
    if stride != 1 or cin != out:
        return nn.Sequential(nn.Conv2d(cin, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    return nn.Identity()


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        out = planes * self.expansion
        self.shortcut = _shortcut(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (7×7/2 conv, 3×3/2 max-pool) → 4 stages → global average pool → linear.

    Parameters
    ----------
    block : BasicBlock or Bottleneck
    layers : 4 ints, blocks per stage
    width : int
        Channels of the first stage (64 in the paper); smaller widths make quick tests.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int], n_classes: int = 3,
                 in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        cin = width
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, n_classes)
        self.n_classes = n_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(y), 1))


def resnet18(n_classes: int = 3, in_channels: int = 3, width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], n_classes, in_channels, width)


def resnet34(n_classes: int = 3, in_channels: int = 3, width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], n_classes, in_channels, width)


def resnet50(n_classes: int = 3, in_channels: int = 3, width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], n_classes, in_channels, width)


RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
