"""Jet selection and truth labels: one definition for the generator, training, processors and CLI.

:class:`TruthLabel` is the code the package's generator writes to ``FatJet_truthLabel`` (and the
class names the processors give those codes); :func:`select_jets` is the one jet selection
(pT window, |η|, soft-drop mass window) that training and the processors apply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Mapping, Sequence

import awkward as ak
import numpy as np

__all__ = ["TruthLabel", "TRUTH_NAMES", "OTHER", "PARTON_FLAVOUR_NAMES", "TruthSource", "TRUTH_SOURCES",
           "truth_source", "DEFAULT_SELECTION", "select_jets", "truth_help"]


class TruthLabel(enum.IntEnum):
    """``FatJet_truthLabel`` codes written by :mod:`coffea_jetimg.generate`.

    ``TOP``: a fully contained hadronic top (t, b, q, q' within ΔR < R of the jet axis);
    ``W``: a contained hadronic W (W, q, q'); ``QCD``: anything else.
    """

    QCD = 0
    TOP = 1
    W = 2

    @property
    def class_name(self) -> str:
        """The class name the processors and training use (``'qcd'``, ``'top'``, ``'w'``)."""
        return self.name.lower()


#: ``truthLabel`` code → class name, the processors' default.
TRUTH_NAMES: dict[int, str] = {int(t): t.class_name for t in TruthLabel}
#: Class of jets whose truth code has no name.
OTHER = "other"

#: NanoAOD's ``Jet_partonFlavour`` |code| → class: quarks (d, u, s, c, b) and gluons; other codes
#: (0: no parton matched) are ``'unmatched'``.
PARTON_FLAVOUR_NAMES: dict[int, str] = {**{q: "quark" for q in range(1, 6)}, 21: "gluon"}


@dataclass(frozen=True)
class TruthSource:
    """Where a jet's truth class comes from: an integer jet field and its code → class names.

    Parameters
    ----------
    field : str
        The jet field (``truthLabel``, ``partonFlavour``).
    names : dict of int to str
        Code → class name.
    absolute : bool
        Name ``|code|`` (signed PDG-style flavours).
    unmatched : str
        Class of codes without a name (negative codes too, unless ``absolute``).
    """

    field: str
    names: Mapping[int, str] = _field(default_factory=dict)
    absolute: bool = False
    unmatched: str = OTHER

    def classes(self) -> list[str]:
        """The class names it gives, in order, its unmatched class last."""
        return list(dict.fromkeys([*self.names.values(), self.unmatched]))

    def index(self, codes: Any, class_names: Sequence[str]) -> Any:
        """Index into ``class_names`` of each code (numpy int array); -1 where the class is absent."""
        where = {c: i for i, c in enumerate(class_names)}
        other = where.get(self.unmatched, -1)
        codes = np.abs(codes) if self.absolute else np.asarray(codes)
        size = max(int(codes.max()) + 1 if len(codes) else 1, max(self.names, default=0) + 1)
        lut = np.array([where.get(self.names.get(k, self.unmatched), other) for k in range(size)], dtype=np.int32)
        return np.where(codes >= 0, lut[np.clip(codes, 0, size - 1)], other).astype(np.int32)


#: The truth sources the processors and ``run --truth`` know, in the order ``auto`` tries them.
TRUTH_SOURCES: dict[str, TruthSource] = {
    "truthLabel": TruthSource("truthLabel", TRUTH_NAMES),
    "partonFlavour": TruthSource("partonFlavour", PARTON_FLAVOUR_NAMES, absolute=True, unmatched="unmatched"),
}


def truth_source(choice: str | TruthSource | None, jet_fields: Sequence[str], signal_classes: Sequence[str] = (),
                 sources: Mapping[str, TruthSource] | None = None) -> TruthSource | None:
    """The truth source of jets with fields ``jet_fields``, or ``None`` (the dataset's label).

    ``choice`` ``'auto'`` (or ``None``): ``truthLabel`` when the jets have it; otherwise the first of
    :data:`TRUTH_SOURCES` whose field the jets have and whose classes include every one of
    ``signal_classes`` (a quark/gluon tagger on jets with ``partonFlavour``); otherwise ``None``.
    A name or a :class:`TruthSource` is used when the jets have its field, else ``None``.
    ``sources`` replaces :data:`TRUTH_SOURCES` (e.g. with other ``truthLabel`` names).
    """
    sources = TRUTH_SOURCES if sources is None else sources
    if isinstance(choice, TruthSource):
        return choice if choice.field in jet_fields else None
    if choice not in (None, "auto"):
        if choice not in sources:
            raise ValueError(f"unknown truth source {choice!r}; known: auto, {', '.join(sources)}")
        src = sources[choice]
        return src if src.field in jet_fields else None
    for name, src in sources.items():
        if src.field not in jet_fields:
            continue
        if name == "truthLabel" or (signal_classes and set(signal_classes) <= set(src.classes())):
            return src
    return None


#: The processors' default selection: pT ≥ 200 GeV, |η| < 2.4, no mass window.
DEFAULT_SELECTION: dict[str, Any] = {"pt": (200.0, None), "abs_eta": 2.4, "msd": None}


def truth_help() -> str:
    """``'0 qcd, 1 top, 2 w'``: the codes, for CLI help texts."""
    return ", ".join(f"{int(t)} {t.class_name}" for t in TruthLabel)


#: A ``[min, max)`` window in GeV; ``None`` for an open side.
_Window = tuple[float | None, float | None]


def select_jets(jets: Any, pt: _Window | None = (200.0, None), abs_eta: float | None = 2.4,
                msd: _Window | None = None, return_steps: bool = False) -> Any:
    """Jet selection mask.

    Parameters
    ----------
    jets : ak.Array or dask_awkward.Array, or an object with numpy ``pt``, ``eta`` (and ``fields``)
        ``[n_events * var *] {pt, eta, msoftdrop}`` (``msoftdrop`` only with ``msd``; plain ``mass``
        is used when the jets have no ``msoftdrop``).
    pt : (float or None, float or None) or None
        pT window in GeV, ``[min, max)``; ``None`` for an open side.
    abs_eta : float or None
        Maximum |η|.
    msd : (float or None, float or None) or None
        Soft-drop mass window in GeV, ``[min, max)``.
    return_steps : bool
        Also return the cumulative masks after each cut, for the cutflow.

    Returns
    -------
    mask : same shape as ``jets.pt``, bool
    steps : list of (name, mask), only with ``return_steps``
    """
    # numpy columns (flat jets) stay numpy; awkward and dask-awkward stay theirs
    mask = np.ones(len(jets.pt), bool) if isinstance(jets.pt, np.ndarray) else ak.ones_like(jets.pt, dtype=bool)
    steps: list[tuple[str, Any]] = []
    if pt is not None:
        mask = _window(mask, jets.pt, *pt)
        steps.append(("pt", mask))
    if abs_eta is not None:
        mask = mask & (abs(jets.eta) < abs_eta)
        steps.append(("abs_eta", mask))
    if msd is not None:
        m = jets.msoftdrop if "msoftdrop" in (getattr(jets, "fields", None) or []) else jets.mass
        mask = _window(mask, m, *msd)
        steps.append(("msd", mask))
    return (mask, steps) if return_steps else mask


def _window(mask: Any, values: Any, lo: float | None, hi: float | None) -> Any:
    """``mask`` and ``lo <= values < hi``; ``None`` leaves that side open."""
    if lo is not None:
        mask = mask & (values >= lo)
    if hi is not None:
        mask = mask & (values < hi)
    return mask
