"""Per-constituent features for particle-cloud networks (PFN / Deep Sets, ParticleNet):
:func:`coffea_jetimg.lorentz.constituent_features` → ``(n_jets, F, N)``, zero-padded, pT-ordered.

Features (:data:`coffea_jetimg.lorentz.FEATURES`): Δη, Δφ to the jet axis, log pT, log E, log of
pT and E over the jet's, ΔR, charge, ... The jet axis is the direction of the constituents'
4-vector sum (as the features' kernel computes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputsError
from ._base import ConstituentInput, register

if TYPE_CHECKING:  # pragma: no cover
    from .plan import BuildContext

__all__ = ["ParticleInput"]


@register
class ParticleInput(ConstituentInput):
    """``{"kind": "particles", "n_constituents": N, "particle_features": [names]}``."""

    kind = "particles"
    KEYS = {"n_constituents": None, "particle_features": None}

    @classmethod
    def validate(cls, block: dict[str, Any]) -> None:
        from ..lorentz import FEATURES

        if not block.get("n_constituents"):
            raise InputsError("input kind 'particles' needs 'n_constituents'")
        feats = block.get("particle_features")
        if not feats:
            raise InputsError("input kind 'particles' needs a list of 'particle_features'")
        bad = [f for f in feats if f not in FEATURES]
        if bad:
            raise InputsError(f"particle_features: unknown name(s) {bad}; choose from {tuple(FEATURES)}")

    @classmethod
    def make(cls, *, jets: str = "FatJet", n_constituents: int = 40, particle_features: Any = None,
             **_ignored: Any) -> dict[str, Any]:
        from ..lorentz import DEFAULT_FEATURES

        feats = list(particle_features or DEFAULT_FEATURES)
        n = int(n_constituents)
        return {"kind": cls.kind, "n_constituents": n, "particle_features": feats, "jets": jets,
                "shape": [len(feats), n]}

    def describe(self) -> str:
        return f"{len(self.spec['particle_features'])} features of {self.spec['n_constituents']} constituents"

    def constituent_fields(self) -> tuple[str, ...]:
        return ("charge",) if "charge" in self.spec["particle_features"] else ()

    def build(self, ctx: BuildContext) -> np.ndarray:
        from ..lorentz import constituent_features

        return constituent_features(ctx.cands(), n_constituents=int(self.spec["n_constituents"]),
                                    features=tuple(self.spec["particle_features"]), return_mask=False)
