"""Particle Flow Network (Deep Sets; Komiske, Metodiev, Thaler, arXiv:1810.05165).

Each constituent's features go through the same per-particle network Φ; the sum over the jet's
constituents (a permutation-invariant latent vector) goes through F to the class logits:
``logits = F(Σ_i Φ(p_i))``. Takes the ``particles`` input (``(batch, n_features, N)``, zero
padding after the real constituents); a constituent whose features are all zero is padding.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["ParticleFlowNetwork", "build"]


class ParticleFlowNetwork(nn.Module):
    """PFN on per-constituent features.

    Parameters
    ----------
    n_features : int
        Features per constituent (F of the ``(F, N)`` input).
    n_classes : int
    phi_sizes : sequence of int
        Widths of Φ (the last is the latent dimension); the paper's default (100, 100, 256).
    f_sizes : sequence of int
        Widths of F; the paper's (100, 100, 100).
    dropout : float
        Dropout in F.
    """

    def __init__(self, n_features: int, n_classes: int = 2, phi_sizes: Sequence[int] = (100, 100, 128),
                 f_sizes: Sequence[int] = (100, 100, 100), dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for w in phi_sizes:  # Φ as 1×1 convolutions: the same network on every constituent
            layers += [nn.Conv1d(width, w, kernel_size=1), nn.ReLU()]
            width = w
        self.phi = nn.Sequential(*layers)
        dense: list[nn.Module] = []
        for w in f_sizes:
            dense += [nn.Linear(width, w), nn.ReLU()]
            if dropout > 0:
                dense.append(nn.Dropout(dropout))
            width = w
        dense.append(nn.Linear(width, n_classes))
        self.f = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x.abs().sum(dim=1, keepdim=True) > 0).to(x.dtype)  # (B, 1, N): real constituents
        latent = (self.phi(x) * mask).sum(dim=2)  # (B, L): Σ over the jet's constituents
        return self.f(latent)


def build(input_shape: Sequence[int], n_classes: int = 2, **kw: Any) -> ParticleFlowNetwork:
    """A PFN for the ``particles`` input of shape ``(F, N)``."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 2:
        raise ValueError(f"pfn takes per-constituent features (F, N); got input_shape {shape}")
    return ParticleFlowNetwork(shape[0], n_classes, **kw)
