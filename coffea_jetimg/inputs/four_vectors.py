"""Constituent 4-vectors (LoLa): :func:`coffea_jetimg.lorentz.constituent_p4s` → ``(n_jets, 4, N)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputsError
from ._base import ConstituentInput, register

if TYPE_CHECKING:  # pragma: no cover
    from .plan import BuildContext

__all__ = ["FourVectorInput"]


@register
class FourVectorInput(ConstituentInput):
    """``{"kind": "lorentz", "n_constituents": N}``: rows E, px, py, pz (GeV), pT-ordered."""

    kind = "lorentz"
    KEYS = {"n_constituents": None}
    smear_per_epoch = True  # E, px, py, pz scale with the JES factor: fit redraws it per epoch

    @classmethod
    def validate(cls, block: dict[str, Any]) -> None:
        if not block.get("n_constituents"):
            raise InputsError("input kind 'lorentz' needs 'n_constituents'")

    @classmethod
    def make(cls, *, jets: str = "FatJet", n_constituents: int = 40, **_ignored: Any) -> dict[str, Any]:
        n = int(n_constituents)
        return {"kind": cls.kind, "n_constituents": n, "jets": jets, "shape": [4, n]}

    def describe(self) -> str:
        return f"4-vectors of {self.spec['n_constituents']} constituents"

    def build(self, ctx: BuildContext) -> np.ndarray:
        from ..lorentz import constituent_p4s

        return constituent_p4s(ctx.cands(), n_constituents=int(self.spec["n_constituents"]))
