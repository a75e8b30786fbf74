"""Convolutional jet-image taggers: the ``qg``, ``deeptop`` and ``wtag`` presets.

All take images ``(batch, C, H, W)`` (float32, any ``H, W`` given at construction) and return
logits ``(batch, n_classes)``. Convolutions with even kernels are padded like Keras' ``'same'``
(one pixel before, two after for a 4×4 kernel) with an explicit :class:`torch.nn.ZeroPad2d`, so
the graphs script and export to ONNX without the asymmetric ``padding='same'`` special case.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

__all__ = ["JetCNN", "qg_cnn", "deeptop_cnn", "wtag_cnn", "CNN_PRESETS"]


def _same_pad(k: int) -> nn.ZeroPad2d:
    total = k - 1
    before = total // 2
    return nn.ZeroPad2d((before, total - before, before, total - before))


class JetCNN(nn.Module):
    """A stack of (padded conv → ReLU [→ max-pool]) blocks, then dense layers, then logits.

    Parameters
    ----------
    input_shape : (C, H, W)
    conv : sequence of (filters, kernel, pool_after)
        ``pool_after`` is the max-pool size after that convolution (0 or 1 for none).
    dense : sequence of int
        Widths of the hidden dense layers (ReLU).
    n_classes : int
    dropout : float
        Dropout probability after each hidden dense layer (and after each pooling when
        ``conv_dropout``).
    input_norm : bool
        Start with a per-channel :class:`~torch.nn.BatchNorm2d` of the input (not in the
        papers, which fed fixed-normalised images; it only rescales the pixel values, and
        without it the networks barely train on sum-normalised images with ``lr = 1e-3``).
    """

    def __init__(self, input_shape: Sequence[int], conv: Sequence[tuple[int, int, int]], dense: Sequence[int],
                 n_classes: int = 2, dropout: float = 0.0, conv_dropout: float = 0.0, input_norm: bool = True) -> None:
        super().__init__()
        c, h, w = (int(v) for v in input_shape)
        # sum-normalised images have pixels ~1e-3: a per-channel batch-norm on the input is a
        # learned rescaling (a fixed affine map at inference) that lets the ReLU stack train
        layers: list[nn.Module] = [nn.BatchNorm2d(c)] if input_norm else []
        for filters, k, pool in conv:
            layers += [_same_pad(k), nn.Conv2d(c, filters, k), nn.ReLU()]
            c = filters
            if pool and pool > 1:
                layers.append(nn.MaxPool2d(pool))
                if conv_dropout > 0:
                    layers.append(nn.Dropout(conv_dropout))
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = int(self.features(torch.zeros(1, int(input_shape[0]), h, w)).numel())
        head: list[nn.Module] = [nn.Flatten()]
        n_in = n_flat
        for width in dense:
            head += [nn.Linear(n_in, width), nn.ReLU()]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            n_in = width
        head.append(nn.Linear(n_in, n_classes))
        self.head = nn.Sequential(*head)
        self.input_shape = (int(input_shape[0]), h, w)
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def qg_cnn(input_shape: Sequence[int] = (1, 33, 33), n_classes: int = 2, filters: int = 64, dropout: float = 0.2,
           **kw: Any) -> JetCNN:
    """Quark/gluon CNN (the ATLAS / Komiske-Metodiev-Schwartz arXiv:1612.01551 design).

    Three convolutions (8×8, 4×4, 4×4; ``filters`` each), each followed by 2×2 max-pooling, a
    128-wide dense layer with dropout, and 2 logits.
    """
    return JetCNN(input_shape, [(filters, 8, 2), (filters, 4, 2), (filters, 4, 2)], [128], n_classes, dropout, **kw)


def deeptop_cnn(input_shape: Sequence[int] = (1, 40, 40), n_classes: int = 2, filters: int = 8, kernel: int = 4,
                dropout: float = 0.0, pool_after_fourth: bool = True, **kw: Any) -> JetCNN:
    """DeepTop CNN (Kasieczka, Plehn, Russell, Schell, arXiv:1701.08784).

    Four convolutions of 8 filters 4×4 (zero padded, ReLU) with 2×2 max-pooling after the second
    and, when ``pool_after_fourth`` (the default, as drawn in the paper's architecture figure),
    after the fourth; then dense 64-256-256 (ReLU) and the output layer.
    """
    conv = [(filters, kernel, 0), (filters, kernel, 2), (filters, kernel, 0),
            (filters, kernel, 2 if pool_after_fourth else 0)]
    return JetCNN(input_shape, conv, [64, 256, 256], n_classes, dropout, **kw)


def wtag_cnn(input_shape: Sequence[int] = (1, 25, 25), n_classes: int = 2, filters: int = 32, dropout: float = 0.5,
             **kw: Any) -> JetCNN:
    """W-vs-QCD CNN (de Oliveira et al., "Jet-images — deep learning edition", arXiv:1511.05190).

    An 11×11 first convolution then two 3×3 ones (``filters`` each), 2×2 max-pooling and dropout
    after each, dense 64 with dropout, 2 logits.
    """
    return JetCNN(input_shape, [(filters, 11, 2), (filters, 3, 2), (filters, 3, 2)], [64], n_classes,
                  dropout, conv_dropout=min(dropout, 0.25), **kw)


CNN_PRESETS: dict[str, Callable[..., JetCNN]] = {"qg": qg_cnn, "deeptop": deeptop_cnn, "wtag": wtag_cnn}
