"""CoLa + LoLa: the Lorentz-layer top tagger (Butter, Kasieczka, Plehn, Russell, arXiv:1707.08966).

Input: constituent 4-vectors ``(batch, 4, N)`` ordered ``(E, px, py, pz)`` in GeV, pT-sorted and
zero-padded (what :func:`coffea_jetimg.lorentz.constituent_p4s` returns).

* :class:`CoLa` — combination layer: ``k̃_j = Σ_i k_i C_ij`` with ``C = [1_N | W]``: the N
  constituents pass through unchanged and ``M − N`` trainable linear combinations are appended.
* :class:`LoLa` — Lorentz layer: for each ``k̃_j`` the features
  ``(m², pT, E, Σ_m w^E_jm E_m …, Σ_m w^d_jm d²_jm …, min_{m≠j} d²_jm)`` with the Minkowski
  distance ``d²_jm = (k̃_j − k̃_m)^μ g_μν (k̃_j − k̃_m)^ν``; ``g`` is fixed
  ``diag(1, −1, −1, −1)`` or a trainable diagonal initialised to it.
* :class:`LoLaNet` — CoLa → LoLa → batch-norm → dense 100 → dense 50 → logits.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["CoLa", "LoLa", "LoLaNet"]


class CoLa(nn.Module):
    """Combination layer: ``(batch, 4, N) → (batch, 4, N + n_combinations)``."""

    def __init__(self, n_constituents: int, n_combinations: int = 15):
        super().__init__()
        self.n_constituents = int(n_constituents)
        self.n_combinations = int(n_combinations)
        self.register_buffer("identity", torch.eye(self.n_constituents))
        w = torch.empty(self.n_constituents, self.n_combinations)
        nn.init.uniform_(w, -0.05, 0.05)
        w += 1.0 / self.n_constituents  # start near the jet sum, as in the paper's init
        self.weight = nn.Parameter(w)

    @property
    def n_out(self) -> int:
        return self.n_constituents + self.n_combinations

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        # (N, M); the buffer `identity` is a Tensor (mypy sees Tensor | Module)
        c = torch.cat([self.identity, self.weight], dim=1)  # type: ignore[list-item]
        return torch.matmul(k, c)


class LoLa(nn.Module):
    """Lorentz layer: ``(batch, 4, M) → (batch, n_features, M)``.

    Features per combined vector, in order: ``m²``, ``pT``, ``E``, ``n_energy_sums`` weighted sums
    of the energies, ``n_distance_sums`` weighted sums of ``d²_jm``, ``min_{m≠j} d²_jm``.

    Parameters
    ----------
    n_vectors : int
        M, the number of input 4-vectors.
    trainable_metric : bool
        Learn the diagonal of the metric (initialised to ``(1, −1, −1, −1)``); else it is fixed.
    """

    def __init__(self, n_vectors: int, n_energy_sums: int = 1, n_distance_sums: int = 4,
                 trainable_metric: bool = True):
        super().__init__()
        m = int(n_vectors)
        self.n_vectors = m
        self.trainable_metric = bool(trainable_metric)
        minkowski = torch.tensor([1.0, -1.0, -1.0, -1.0])
        if trainable_metric:
            self.metric = nn.Parameter(minkowski.clone())
        else:
            self.register_buffer("metric", minkowski.clone())
        self.w_energy = nn.Parameter(torch.randn(n_energy_sums, m, m) * (1.0 / m))
        self.w_distance = nn.Parameter(torch.randn(n_distance_sums, m, m) * (1.0 / m))
        self.n_features = 3 + n_energy_sums + n_distance_sums + 1

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        e = k[:, 0, :]
        px = k[:, 1, :]
        py = k[:, 2, :]
        g = self.metric
        m2 = g[0] * e * e + g[1] * px * px + g[2] * py * py + g[3] * k[:, 3, :] * k[:, 3, :]
        pt = torch.sqrt(px * px + py * py + 1e-12)  # eps: finite gradient for zero padding
        # weighted energy sums: (batch, S, M) = Σ_m w[s, j, m] E_m
        e_sums = torch.einsum("sjm,bm->bsj", self.w_energy, e)
        # Minkowski distances d²_jm = Σ_μ g_μ (k_jμ − k_mμ)²: (batch, M, M)
        diff = k.unsqueeze(3) - k.unsqueeze(2)  # (batch, 4, M, M)
        d2 = torch.einsum("bujm,u->bjm", diff * diff, g)
        d_sums = torch.einsum("sjm,bjm->bsj", self.w_distance, d2)
        # minimum over m ≠ j: push the diagonal above every entry before the min
        big = d2.abs().amax(dim=(1, 2), keepdim=True) * 2.0 + 1.0
        eye = torch.eye(self.n_vectors, dtype=k.dtype, device=k.device).unsqueeze(0)
        d_min = (d2 + eye * big).amin(dim=2)
        feats = [m2.unsqueeze(1), pt.unsqueeze(1), e.unsqueeze(1), e_sums, d_sums, d_min.unsqueeze(1)]
        return torch.cat(feats, dim=1)


class LoLaNet(nn.Module):
    """CoLa → LoLa → batch-norm → dense 100 → dense 50 → ``n_classes`` logits.

    Parameters
    ----------
    n_constituents : int
        N, the padded constituent count of the input ``(batch, 4, N)``.
    n_combinations : int
        M − N trainable combinations in CoLa (the paper uses 15 for N = 40... 60).
    scale : float
        GeV: 4-vectors are divided by it before CoLa so the features are O(1) (the network is
        still a function of the input in GeV).
    """

    def __init__(self, n_constituents: int = 40, n_classes: int = 2, n_combinations: int = 15,
                 trainable_metric: bool = True, n_energy_sums: int = 1, n_distance_sums: int = 4,
                 scale: float = 100.0, hidden: Sequence[int] = (100, 50)) -> None:
        super().__init__()
        self.scale = float(scale)
        self.cola = CoLa(n_constituents, n_combinations)
        self.lola = LoLa(self.cola.n_out, n_energy_sums, n_distance_sums, trainable_metric)
        n_flat = self.lola.n_features * self.cola.n_out
        self.norm = nn.BatchNorm1d(n_flat)
        layers: list[nn.Module] = []
        n_in = n_flat
        for h in hidden:
            layers += [nn.Linear(n_in, h), nn.ReLU()]
            n_in = h
        layers.append(nn.Linear(n_in, n_classes))
        self.head = nn.Sequential(*layers)
        self.input_shape = (4, int(n_constituents))
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.cola(x / self.scale)
        f = self.lola(k)
        return self.head(self.norm(torch.flatten(f, 1)))
