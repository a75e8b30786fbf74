"""Pythia 8 settings for the physics processes that ``coffea-jetimg generate`` knows.

Jet processes (``top``, ``qcd``, ``w``, ``quark``, ``gluon``) are 2 → 2 processes whose
``PhaseSpace:pTHatMin/Max`` follow the requested jet pT range: the hard-process pT window is
``[0.85 * pt_min, 1.15 * pt_max]`` (GeV), wide enough that jets which lose or gain pT in the
shower still fill ``[pt_min, pt_max]``. Event-level processes (``ttbar``, ``wjets``, ``dy``)
take ``pt_min``/``pt_max`` as the same pTHat window only when given.

All instances run with hadronisation and multiparton interactions on (realism), quiet output,
and ``Random:setSeed = on`` with an explicit seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PROCESSES", "Process", "pythia_settings", "pileup_settings", "make_pythia", "pthat_window"]

#: ``(pTHatMin, pTHatMax)`` = ``(PTHAT_LOW * pt_min, PTHAT_HIGH * pt_max)`` for jet processes.
PTHAT_LOW = 0.85
PTHAT_HIGH = 1.15

_HADRONIC_W = ["24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
_INVISIBLE_Z = ["23:onMode = off", "23:onIfAny = 12 14 16"]


@dataclass(frozen=True)
class Process:
    """One process: its Pythia settings and whether it is a jet sample or event-level."""

    name: str
    description: str
    settings: tuple[str, ...]
    jet_sample: bool
    default_pt: tuple[float | None, float | None] = (None, None)
    extra: dict = field(default_factory=dict)


PROCESSES: dict[str, Process] = {
    p.name: p
    for p in [
        Process(
            "top",
            "hadronic ttbar (both W -> qq'), boosted top FatJets",
            ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W),
            True,
            (500.0, 700.0),
        ),
        Process("qcd", "QCD dijets (HardQCD:all)", ("HardQCD:all = on",), True, (500.0, 700.0)),
        Process(
            "w",
            "WZ with W -> qq' and Z -> nunu: boosted hadronic W FatJets",
            ("WeakDoubleBoson:ffbar2ZW = on", *_HADRONIC_W, *_INVISIBLE_Z),
            True,
            (500.0, 700.0),
        ),
        Process(
            "quark",
            "Z(->nunu) + quark jet (WeakBosonAndParton:qg2gmZq), as Komiske et al.",
            ("WeakBosonAndParton:qg2gmZq = on", "WeakZ0:gmZmode = 2", *_INVISIBLE_Z),
            True,
            (500.0, 700.0),
        ),
        Process(
            "gluon",
            "Z(->nunu) + gluon jet (WeakBosonAndParton:qqbar2gmZg), as Komiske et al.",
            ("WeakBosonAndParton:qqbar2gmZg = on", "WeakZ0:gmZmode = 2", *_INVISIBLE_Z),
            True,
            (500.0, 700.0),
        ),
        Process(
            "ttbar",
            "semileptonic ttbar (W+ -> qq', W- -> l nu, l = e, mu, tau)",
            (
                "Top:gg2ttbar = on",
                "Top:qqbar2ttbar = on",
                "24:onMode = off",
                "24:onPosIfAny = 1 2 3 4 5",
                "24:onNegIfAny = 11 13 15",
            ),
            False,
        ),
        Process(
            "wjets",
            "W(-> l nu) + jet (WeakBosonAndParton:qqbar2Wg, qg2Wq), pTHat > 20 GeV by default",
            (
                "WeakBosonAndParton:qqbar2Wg = on",
                "WeakBosonAndParton:qg2Wq = on",
                "24:onMode = off",
                "24:onIfAny = 11 13 15",
            ),
            False,
            (20.0, None),
        ),
        Process(
            "dy",
            "Z/gamma*(-> ee, mumu) + jet, m > 50 GeV (WeakBosonAndParton:qqbar2gmZg, qg2gmZq)",
            (
                "WeakBosonAndParton:qqbar2gmZg = on",
                "WeakBosonAndParton:qg2gmZq = on",
                "23:onMode = off",
                "23:onIfAny = 11 13",
                "23:mMin = 50.",
            ),
            False,
            (20.0, None),
        ),
    ]
}


def _check_process(process: str) -> Process:
    try:
        return PROCESSES[process]
    except KeyError:
        raise ValueError(f"unknown process {process!r}; choose one of: {', '.join(PROCESSES)}") from None


def pthat_window(process: str, pt_min: float | None, pt_max: float | None) -> tuple[float | None, float | None]:
    """The Pythia ``(pTHatMin, pTHatMax)`` in GeV for a requested jet pT range.

    Parameters
    ----------
    process : str
        Key of :data:`PROCESSES`.
    pt_min, pt_max : float or None
        Requested jet pT range in GeV; ``None`` takes the process default.

    Returns
    -------
    tuple of (float or None, float or None)
        ``None`` leaves Pythia's default.
    """
    proc = _check_process(process)
    lo = proc.default_pt[0] if pt_min is None else float(pt_min)
    hi = proc.default_pt[1] if pt_max is None else float(pt_max)
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"pt-min ({lo} GeV) must be smaller than pt-max ({hi} GeV)")
    if lo is not None and lo < 0:
        raise ValueError(f"pt-min must be >= 0, got {lo}")
    if proc.jet_sample:
        return (PTHAT_LOW * lo if lo is not None else None, PTHAT_HIGH * hi if hi is not None else None)
    return lo, hi


def _common(ecm: float, seed: int) -> list[str]:
    return [
        f"Beams:eCM = {float(ecm)}",
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Random:setSeed = on",
        f"Random:seed = {int(seed)}",
        # long-lived particles decay as in CMS generator-level: K0S, Lambda etc. decay
        "ParticleDecays:limitTau0 = on",
        "ParticleDecays:tau0Max = 10",
    ]


def pythia_settings(process: str, ecm: float, pt_min: float | None, pt_max: float | None, seed: int) -> list[str]:
    """The ``readString`` lines for the hard-scatter Pythia instance."""
    proc = _check_process(process)
    lo, hi = pthat_window(process, pt_min, pt_max)
    out = _common(ecm, seed) + list(proc.settings)
    if lo is not None:
        out.append(f"PhaseSpace:pTHatMin = {lo}")
    if hi is not None:
        out.append(f"PhaseSpace:pTHatMax = {hi}")
    return out


def pileup_settings(ecm: float, seed: int) -> list[str]:
    """The ``readString`` lines for the pileup (minimum-bias) Pythia instance."""
    return _common(ecm, seed) + ["SoftQCD:nonDiffractive = on"]


def make_pythia(settings: list[str]):
    """An initialised, quiet ``pythia8mc.Pythia`` with ``settings``.

    Raises
    ------
    RuntimeError
        If Pythia rejects a setting or fails to initialise.
    """
    import os

    import pythia8mc as pythia8

    data = os.environ.get("PYTHIA8DATA")
    where = f"PYTHIA8DATA={data!r}" if data else "PYTHIA8DATA unset: pythia8mc's installed share/Pythia8/xmldoc"
    py = pythia8.Pythia("", False)  # no banner
    if not py.settings.isFlag("Print:quiet"):  # every setting would be 'rejected': name the real cause
        raise RuntimeError(f"Pythia found no settings database (Index.xml) in its data folder ({where}); "
                           "pythia8mc's data files are missing: set PYTHIA8DATA to a share/Pythia8/xmldoc folder")
    for line in settings:
        if not py.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    if not py.init():
        raise RuntimeError(f"Pythia failed to initialise (its messages above say why; data folder: {where}) "
                           "with settings:\n  " + "\n  ".join(settings))
    return py
