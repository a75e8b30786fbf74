"""Jet selection and truth labels: one definition for the generator, training, processors and CLI.

:class:`TruthLabel` is the code the package's generator writes to ``FatJet_truthLabel`` (and the
class names the processors give those codes); :func:`select_jets` is the one jet selection
(pT window, |η|, soft-drop mass window) that training and the processors apply.
"""

from __future__ import annotations

import enum
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["TruthLabel", "TRUTH_NAMES", "OTHER", "DEFAULT_SELECTION", "select_jets", "truth_help"]


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
