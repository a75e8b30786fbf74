"""Jet-level features (the BDT / dense-network input): stored jet fields, ratios of them, or
substructure observables computed from the constituents when the jets lack them → ``(n_jets, F)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import awkward as ak
import numpy as np

from .._constituents import detect_layout
from .._util import fields_of
from ..errors import ConstituentsError, InputsError
from ._base import InputSpec, has_collection, register

if TYPE_CHECKING:  # pragma: no cover
    from .plan import BuildContext

__all__ = ["FeatureInput", "FEATURE_ALIASES", "jet_features"]

#: Derived feature names → how to compute them from jet fields (numerator, denominator).
FEATURE_ALIASES: dict[str, tuple[str, str]] = {
    "tau21": ("tau2", "tau1"),
    "tau32": ("tau3", "tau2"),
    "tau31": ("tau3", "tau1"),
    "tau42": ("tau4", "tau2"),
}


def _substructure_features() -> tuple[str, ...]:
    from ..substructure import SUBSTRUCTURE_FEATURES

    return SUBSTRUCTURE_FEATURES


def _stored(feature: str, have: set[str] | list[str]) -> bool:
    return all(g in have for g in FEATURE_ALIASES.get(feature, (feature,)))


def jet_features(jets_arr: ak.Array, features: Sequence[str], cands: ak.Array | None = None) -> np.ndarray:
    """Per-jet feature matrix.

    Parameters
    ----------
    jets_arr : ak.Array
        Jets, ``n_jets * {fields}`` or ``n_events * var * {fields}`` (flattened).
    features : list of str
        Jet field names (e.g. ``pt`` GeV, ``eta``, ``msoftdrop`` GeV, ``tau1``), ratios
        from :data:`FEATURE_ALIASES` (``tau21`` = τ2/τ1, ``tau32``, ...; 0 where the
        denominator is 0), or, when the jets lack them, observables of
        :func:`coffea_jetimg.substructure.substructure` computed from ``cands``
        (``width``, ``n_track``, ``c2``, ``d2``, ...).
    cands : ak.Array, optional
        Constituents of the same jets (``n_jets * var`` or ``n_events * var * var``).

    Returns
    -------
    ndarray, float32, shape (n_jets, F)
    """
    if jets_arr.ndim > 1:
        jets_arr = ak.flatten(jets_arr, axis=1)
    out = np.zeros((len(jets_arr), len(features)), dtype=np.float32)
    have = set(fields_of(jets_arr))
    sub = None
    for i, f in enumerate(features):
        if f in have:
            out[:, i] = ak.to_numpy(ak.fill_none(jets_arr[f], 0)).astype(np.float32)
        elif f in FEATURE_ALIASES and _stored(f, have):
            num_f, den_f = FEATURE_ALIASES[f]
            num = ak.to_numpy(ak.fill_none(jets_arr[num_f], 0)).astype(np.float64)
            den = ak.to_numpy(ak.fill_none(jets_arr[den_f], 0)).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, i] = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        elif cands is not None and f in _substructure_features():
            if sub is None:
                from ..substructure import substructure

                sub = substructure(ak.flatten(cands, axis=1) if cands.ndim == 3 else cands)
            out[:, i] = np.asarray(sub[f], dtype=np.float32)
        else:
            raise InputsError(f"jets have no feature '{f}' (fields: {sorted(have)})")
    return out


@register
class FeatureInput(InputSpec):
    """``{"kind": "features", "features": [names]}`` (see :func:`jet_features`)."""

    kind = "features"
    KEYS = {"features": None}

    @classmethod
    def validate(cls, block: dict[str, Any]) -> None:
        if not block.get("features"):
            raise InputsError("input kind 'features' needs a list of 'features'")

    @classmethod
    def make(cls, *, jets: str = "FatJet", features: Sequence[str] | None = None, architecture: str | None = None,
             **_ignored: Any) -> dict[str, Any]:
        if not features:
            raise InputsError(f"{architecture or 'the model'} on features needs a list of features")
        return {"kind": cls.kind, "features": list(features), "jets": jets, "shape": [len(features)]}

    @property
    def features(self) -> list[str]:
        return list(self.spec["features"])

    def describe(self) -> str:
        return f"features {', '.join(self.features)}"

    def needs_constituents(self, jet_fields: list[str] | None = None) -> bool:
        if jet_fields is None:
            return False
        have = set(jet_fields)
        return any(not _stored(f, have) for f in self.features)

    def constituent_fields(self) -> tuple[str, ...]:
        return ("charge",)  # n_track counts charged constituents

    def columns(self, events: Any) -> set[tuple[str, str]]:
        jf = set(fields_of(events[self.jets]))
        return {(self.jets, g) for f in self.features for g in FEATURE_ALIASES.get(f, (f,)) if g in jf}

    def check(self, events: Any, jets: str | None = None, layout: str | None = None) -> None:
        jets = jets or self.jets
        if not has_collection(events, jets):
            raise InputsError(f"no '{jets}' collection in the events; the model needs {jets} features")
        have = set(fields_of(events[jets]))
        missing: list[str] = []
        from_cands: list[str] = []
        for f in self.features:
            if _stored(f, have):
                continue
            (from_cands if f in _substructure_features() else missing).append(f)
        if from_cands and layout is None:
            try:
                detect_layout(events, jets)
            except ConstituentsError as err:
                raise ConstituentsError(f"features {from_cands} are computed from constituents: {err}") from None
        if missing:
            raise InputsError(f"the events' {jets} lack the feature(s) {missing} the model needs "
                              f"(branches {', '.join(jets + '_' + f for f in missing)})")

    def build(self, ctx: BuildContext) -> np.ndarray:
        cands = ctx.cands() if self.needs_constituents(ctx.jet_fields()) else None
        return jet_features(ctx.selected_jets(), self.features, cands)
