"""Fully connected baselines on flattened inputs (images, 4-vector matrices or features).

* :class:`FCNet` — 5 hidden layers of 500 ReLU units with dropout 0.5 (the dense baseline of the
  jet-image papers).
* :class:`MaxOutNet` — MaxOut layers (Goodfellow et al. arXiv:1302.4389; the W-tagging baseline of
  de Oliveira et al. arXiv:1511.05190: two MaxOut layers of 256 and 128 units with 5 pieces, then
  dense 64, 25).

Inputs of any shape ``(batch, ...)`` are flattened; outputs are logits ``(batch, n_classes)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["FCNet", "MaxOut", "MaxOutNet"]


def _n_in(input_shape: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in input_shape))


class FCNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], n_classes: int = 2, hidden: Sequence[int] = (500,) * 5,
                 dropout: float = 0.5, standardize: bool = True) -> None:
        super().__init__()
        self.net = _stack(input_shape, n_classes, (), 1, hidden, dropout, standardize)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MaxOut(nn.Module):
    """``y_i = max_k (W_k x + b_k)_i`` over ``pieces`` linear maps."""

    def __init__(self, n_in: int, n_out: int, pieces: int = 5) -> None:
        super().__init__()
        self.n_out = int(n_out)
        self.pieces = int(pieces)
        self.linear = nn.Linear(n_in, n_out * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x).view(-1, self.n_out, self.pieces)
        return y.amax(dim=2)


def _stack(input_shape: Sequence[int], n_classes: int, maxout: Sequence[int], pieces: int, dense: Sequence[int],
           dropout: float, standardize: bool) -> nn.Sequential:
    """Flatten → [BatchNorm] → MaxOut layers → ReLU dense layers (each with dropout) → logits."""
    n_in = _n_in(input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    if standardize:  # inputs in GeV or pixel fractions: learn the scale
        layers.append(nn.BatchNorm1d(n_in))
    for h in maxout:
        layers += [MaxOut(n_in, h, pieces), nn.Dropout(dropout)]
        n_in = h
    for h in dense:
        layers += [nn.Linear(n_in, h), nn.ReLU(), nn.Dropout(dropout)]
        n_in = h
    layers.append(nn.Linear(n_in, n_classes))
    return nn.Sequential(*layers)


class MaxOutNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], n_classes: int = 2, maxout: Sequence[int] = (256, 128),
                 pieces: int = 5, dense: Sequence[int] = (64, 25), dropout: float = 0.2,
                 standardize: bool = True) -> None:
        super().__init__()
        self.net = _stack(input_shape, n_classes, maxout, pieces, dense, dropout, standardize)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
