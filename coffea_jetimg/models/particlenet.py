"""ParticleNet-Lite (Qu, Gouskos, arXiv:1902.08570): EdgeConv on the jet as a particle cloud.

Each EdgeConv block finds every constituent's k nearest neighbours, runs a shared network on the
edge features ``(x_i, x_j − x_i)``, averages over the neighbours and adds a 1×1 shortcut of
``x_i``. The first block's neighbours are nearest in ``(Δη, Δφ)``, the second's in the first
block's learned features (a dynamic graph). Lite: k = 7, channels (32, 32, 32) then (64, 64, 64),
global average over the constituents, dense 128 with dropout 0.1, logits.

Takes the ``particles`` input (``(batch, n_features, N)``, zero padding after the real
constituents, as the PFN): a constituent whose features are all zero is padding. Δη and Δφ are
the rows ``coord_index`` (``(0, 1)``: the first two of :data:`coffea_jetimg.lorentz.DEFAULT_FEATURES`).

Padding never changes the output (in eval mode): padded slots are never a neighbour (nor is a
constituent its own), a neighbourhood averages over real neighbours only (a jet with fewer than
k + 1 constituents has fewer), features of padded slots are zeroed after every block and the
pooling averages over the real constituents. The kNN is deterministic and the same in torch,
TorchScript and ONNX Runtime: distances are taken in float64 (the first block's as plain
differences, so identical coordinates tie exactly) and exact ties go to the lower index.
(Batch-norm statistics in training mode do see the zeroed padded slots, as in the paper's code.)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["EdgeConvBlock", "ParticleNet", "build", "knn"]



def knn(points: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest real neighbours of every slot.

    Parameters
    ----------
    points : Tensor (B, P, N)
        Coordinates.
    mask : Tensor (B, N)
        1 for real constituents, 0 for padding.
    k : int
        At most N − 1.

    Returns
    -------
    idx : Tensor int64 (B, N, k)
        Neighbour indices, nearest first.
    valid : Tensor (B, N, k), dtype of ``points``
        1 where the neighbour is a real constituent other than the slot itself (fewer than k
        exist when the jet has fewer than k + 1 constituents).
    """
    n = points.size(2)
    p = points.to(torch.float64)
    if p.size(1) <= 4:  # few coordinates: plain differences, exact for identical points
        diff = p.unsqueeze(3) - p.unsqueeze(2)  # (B, P, N, N)
        d = (diff * diff).sum(dim=1)
    else:  # learned features: |a|² + |b|² − 2 a·b, in float64
        sq = (p * p).sum(dim=1)  # (B, N)
        d = (sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * torch.bmm(p.transpose(1, 2), p)).clamp(min=0.0)
    ar = torch.arange(n, device=points.device)
    other = (ar.unsqueeze(0) != ar.unsqueeze(1)).unsqueeze(0)  # (1, N, N): j != i
    real = mask.unsqueeze(1) > 0  # (B, 1, N): j is real
    ok = other & real  # (B, N, N)
    key = torch.where(ok, d, torch.full_like(d, 1e30))  # no neighbour: padding, the slot itself
    # exact ties go to the lower index: a relative step of 2**-40 per index (distances that differ
    # in float32 keep their order for N < 2**16), and 2**-100 added so that distance 0 ties break too
    key = (key + 7.888609052210118e-31) * (1.0 + ar.to(torch.float64) * 9.094947017729282e-13)
    idx = torch.topk(key, k, dim=2, largest=False, sorted=True)[1]
    valid = torch.gather(ok.to(points.dtype).expand(idx.size(0), n, n), 2, idx)
    return idx, valid


class EdgeConvBlock(nn.Module):
    """EdgeConv: ``x_i ← ReLU(shortcut(x_i) + mean_{j ∈ kNN(i)} h(x_i, x_j − x_i))``.

    ``h`` is 1×1 convolutions with batch norm and ReLU of widths ``out_feats``; the shortcut a
    1×1 convolution with batch norm to the last width.
    """

    def __init__(self, k: int, in_feat: int, out_feats: Sequence[int]) -> None:
        super().__init__()
        self.k = int(k)
        layers: list[nn.Module] = []
        width = 2 * int(in_feat)
        for w in out_feats:
            layers += [nn.Conv2d(width, int(w), kernel_size=1, bias=False), nn.BatchNorm2d(int(w)), nn.ReLU()]
            width = int(w)
        self.edge = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv1d(int(in_feat), width, kernel_size=1, bias=False),
                                      nn.BatchNorm1d(width))
        self.act = nn.ReLU()
        self.out_feat = width

    def forward(self, points: torch.Tensor, fts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, n = fts.size(0), fts.size(1), fts.size(2)
        k = min(self.k, n - 1)
        if k < 1:  # one slot: no neighbours
            return self.act(self.shortcut(fts))
        idx, valid = knn(points, mask, k)
        nb = torch.gather(fts, 2, idx.reshape(b, 1, n * k).expand(b, c, n * k)).reshape(b, c, n, k)
        ctr = fts.unsqueeze(3).expand(b, c, n, k)
        edge = self.edge(torch.cat([ctr, nb - ctr], dim=1))  # (B, C', N, k)
        w = valid.unsqueeze(1)  # (B, 1, N, k)
        agg = (edge * w).sum(dim=3) / w.sum(dim=3).clamp(min=1.0)
        return self.act(self.shortcut(fts) + agg)


class ParticleNet(nn.Module):
    """ParticleNet on per-constituent features.

    Parameters
    ----------
    n_features : int
        Features per constituent (F of the ``(F, N)`` input).
    n_classes : int
    conv_params : sequence of (k, channels)
        The EdgeConv blocks; Lite's ``((7, (32, 32, 32)), (7, (64, 64, 64)))``, the full
        ParticleNet's ``((16, (64, 64, 64)), (16, (128, 128, 128)), (16, (256, 256, 256)))``.
    fc_params : sequence of (width, dropout)
        Dense layers after the pooling; Lite's ``((128, 0.1),)``.
    coord_index : (int, int)
        The input rows of Δη and Δφ, the first block's kNN coordinates.
    """

    def __init__(self, n_features: int, n_classes: int = 2,
                 conv_params: Sequence[tuple[int, Sequence[int]]] = ((7, (32, 32, 32)), (7, (64, 64, 64))),
                 fc_params: Sequence[tuple[int, float]] = ((128, 0.1),),
                 coord_index: Sequence[int] = (0, 1)) -> None:
        super().__init__()
        coords = [int(i) for i in coord_index]
        if not coords or any(not 0 <= i < n_features for i in coords):
            raise ValueError(f"coord_index {tuple(coord_index)} outside the {n_features} input features")
        self.n_classes = int(n_classes)
        self.register_buffer("coord_index", torch.tensor(coords, dtype=torch.long), persistent=False)
        self.bn_fts = nn.BatchNorm1d(int(n_features))
        blocks: list[nn.Module] = []
        width = int(n_features)
        for k, channels in conv_params:
            block = EdgeConvBlock(int(k), width, channels)
            blocks.append(block)
            width = block.out_feat
        self.edge_convs = nn.ModuleList(blocks)
        dense: list[nn.Module] = []
        for w, drop in fc_params:
            dense += [nn.Linear(width, int(w)), nn.ReLU()]
            if drop > 0:
                dense.append(nn.Dropout(float(drop)))
            width = int(w)
        dense.append(nn.Linear(width, self.n_classes))
        self.fc = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x.abs().sum(dim=1) > 0).to(x.dtype)  # (B, N): real constituents
        m = mask.unsqueeze(1)
        points = torch.index_select(x, 1, self.coord_index)  # type: ignore[arg-type]
        fts = self.bn_fts(x) * m
        for conv in self.edge_convs:
            fts = conv(points, fts, mask) * m
            points = fts
        pooled = fts.sum(dim=2) / m.sum(dim=2).clamp(min=1.0)  # mean over the real constituents
        return self.fc(pooled)


def build(input_shape: Sequence[int], n_classes: int = 2, **kw: Any) -> ParticleNet:
    """A ParticleNet-Lite for the ``particles`` input of shape ``(F, N)``."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 2:
        raise ValueError(f"particlenet takes per-constituent features (F, N); got input_shape {shape}")
    return ParticleNet(shape[0], n_classes, **kw)
