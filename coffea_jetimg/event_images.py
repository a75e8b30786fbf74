"""Whole-event images (Madrazo et al.): every physics object drawn as a ring in (eta, phi).

Canvas
------
``(n_events, 3, n_phi_pix, n_eta_pix)`` float32 RGB in [0, 1] (default 224 x 224), **white
background** (1, 1, 1). Row ``r`` covers phi in ``[-π + r·2π/H, -π + (r+1)·2π/H)``; column ``c``
covers eta in ``[eta_min + c·Δ, eta_min + (c+1)·Δ)``, Δ = (eta_max - eta_min) / W. Show with
``plt.imshow(img.transpose(1, 2, 0), origin="lower", extent=(eta_min, eta_max, -π, π))``.

Objects
-------
Each object is a circumference (ring, 1 px thick; ``antialias=True`` gives a soft ~2 px ring)
of radius ``R = C · ln(E / GeV)`` pixels (``C = 10.5``; objects with E <= 1 GeV are a dot),
centred at the object's (eta, phi); phi wraps (a ring crossing ±π continues on the other
edge), eta clips at the canvas edge. E is the object's energy from (pt, eta, mass); for MET it
is MET pt, drawn at eta = 0 and phi = MET phi.

Colours (RGB) and drawing order (later objects paint over earlier ones):

=========  =================  ====================
order      object             RGB
=========  =================  ====================
1          MET                (0.0, 0.0, 0.0) black
2          non-b jets         (1.0, 0.6, 0.6) light red
3          b-tagged jets      (0.6, 0.0, 0.0) dark red
4          muons              (0.0, 0.8, 0.0) green
5          electrons          (0.0, 0.0, 1.0) blue
=========  =================  ====================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import awkward as ak
import numpy as np

from . import _kernels as K
from ._util import JsonSpec, fields_of as _fields, is_dask as _is_dask
from .kinematics import energy

__all__ = ["EventImageSpec", "event_images", "COLOURS", "DRAW_ORDER"]

#: RGB of each object type.
COLOURS = {
    "met": (0.0, 0.0, 0.0),
    "jet": (1.0, 0.6, 0.6),
    "bjet": (0.6, 0.0, 0.0),
    "muon": (0.0, 0.8, 0.0),
    "electron": (0.0, 0.0, 1.0),
}
#: Drawing order: later paints over earlier.
DRAW_ORDER = ("met", "jet", "bjet", "muon", "electron")


@dataclass(frozen=True)
class EventImageSpec(JsonSpec):
    """Selection and canvas of whole-event images.

    Parameters
    ----------
    npix : (int, int)
        Canvas (n_eta_pix, n_phi_pix) = (width, height).
    eta_range : (float, float)
        Canvas eta edges; phi always spans [-π, π].
    c_radius : float
        C in R = C ln(E/GeV) (pixels).
    electron_pt_min, muon_pt_min, lepton_abs_eta_max : float
        Lepton selection (GeV, |eta|).
    jet_pt_min, jet_abs_eta_max : float
        Jet selection (GeV, |eta|).
    btag_field : str
        Jet field with the b-tag score (``btagDeepFlavB`` in NanoAOD v9+, ``btagCSVV2`` in 2015 Open Data).
    btag_min : float
        Jets with score >= btag_min are b-tagged.
    draw_met : bool
    antialias : bool
    background : float
        Grey level of the background (1 = white).
    """

    npix: tuple[int, int] = (224, 224)
    eta_range: tuple[float, float] = (-3.0, 3.0)
    c_radius: float = 10.5
    electron_pt_min: float = 20.0
    muon_pt_min: float = 20.0
    lepton_abs_eta_max: float = 2.5
    jet_pt_min: float = 30.0
    jet_abs_eta_max: float = 2.4
    btag_field: str = "btagDeepFlavB"
    btag_min: float = 0.3
    draw_met: bool = True
    antialias: bool = False
    background: float = 1.0

    def __post_init__(self):
        npix = tuple(int(v) for v in self.npix)
        if len(npix) != 2 or min(npix) < 1:
            raise ValueError(f"npix must be two positive ints, got {self.npix!r}")
        object.__setattr__(self, "npix", npix)
        er = tuple(float(v) for v in self.eta_range)
        if len(er) != 2 or not er[0] < er[1]:
            raise ValueError(f"eta_range must be (lo, hi) with lo < hi, got {self.eta_range!r}")
        object.__setattr__(self, "eta_range", er)
        for name in ("c_radius", "electron_pt_min", "muon_pt_min", "lepton_abs_eta_max", "jet_pt_min",
                     "jet_abs_eta_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not isinstance(self.btag_field, str) or not self.btag_field:
            raise ValueError(f"btag_field must be a field name, got {self.btag_field!r}")
        if not (0.0 <= float(self.background) <= 1.0):
            raise ValueError(f"background must be in [0, 1], got {self.background!r}")



def _n_objects(coll) -> int:
    return int(ak.sum(ak.num(coll, axis=1)))


def _energy(coll):
    pt = coll.pt
    return energy(pt, coll.eta, coll.mass if "mass" in _fields(coll) else 0.0 * pt)


def _flat_objects(coll, sel, energy):
    """(offsets, eta, phi, E) of the selected objects of a jagged collection."""
    coll = coll[sel]
    energy = energy[sel]
    counts = ak.to_numpy(ak.fill_none(ak.num(coll.pt, axis=1), 0)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    def col(a):
        return np.ascontiguousarray(ak.to_numpy(ak.flatten(a, axis=1)), dtype=np.float64)

    return offsets, col(coll.eta), col(coll.phi), col(energy)


def needed_columns(events, spec: EventImageSpec | None = None) -> list[tuple[str, str]]:
    """The (collection, field) pairs :func:`event_images` reads from ``events`` (eager or dask)."""
    spec = spec or EventImageSpec()
    have = _fields(events)
    want = [("MET", "pt"), ("MET", "phi")] if spec.draw_met else []
    for coll, extra in (("Jet", (spec.btag_field,)), ("Muon", ()), ("Electron", ())):
        if coll in have:
            fields = _fields(events[coll])
            want += [(coll, f) for f in ("pt", "eta", "phi", "mass") + extra if f in fields]
    return want


def _check_fields(events, spec: EventImageSpec) -> None:
    """KeyError naming what :func:`event_images` needs and ``events`` lacks (eager or dask)."""
    have = _fields(events)
    if spec.draw_met and "MET" not in have:
        raise KeyError("events have no MET collection (set draw_met=False to skip it)")
    if "Jet" not in have:
        raise KeyError("events have no Jet collection")
    jf = _fields(events.Jet)
    # a field-less Jet with no jet in any event has an unknown type: nothing to check
    if spec.btag_field not in jf and (jf or _is_dask(events) or _n_objects(events.Jet) > 0):
        raise KeyError(f"Jet has no b-tag field '{spec.btag_field}' (EventImageSpec.btag_field); "
                       f"candidates: {[f for f in jf if 'btag' in f.lower()]}")


def _event_images_dask(events, spec: EventImageSpec):
    """dask-awkward path: the eager function on every partition, touching only
    :func:`needed_columns`."""
    from ._bridge import map_partitions

    w, h = spec.npix
    meta = ak.from_numpy(np.zeros((0, 3, h, w), np.float32))
    return map_partitions(lambda ev: ak.from_numpy(event_images(ev, spec)), events,
                          touch=[needed_columns(events._meta, spec)], meta=meta, label="event-images")


def event_images(events, spec: EventImageSpec | None = None):
    """Madrazo-style RGB event images.

    Parameters
    ----------
    events : ak.Array or dask_awkward.Array
        NanoAOD-like events (coffea NanoEvents) with ``Electron``, ``Muon``, ``Jet`` (pt, eta,
        phi, mass (GeV, rad) and the spec's b-tag field) and ``MET`` (pt, phi). A missing
        lepton collection is skipped; a missing b-tag field raises.
    spec : EventImageSpec, optional

    Returns
    -------
    ndarray float32 (n_events, 3, n_phi_pix, n_eta_pix)
        RGB in [0, 1]; see the module docstring for the axes, colours and drawing order.
        Dask input: a dask-awkward array ``n_events * 3 * n_phi_pix * n_eta_pix * float32``
        (``ak.to_numpy(result.compute())`` gives the eager array).
    """
    spec = spec or EventImageSpec()
    if _is_dask(events):
        _check_fields(events, spec)
        return _event_images_dask(events, spec)
    n_ev = len(events)
    w, h = spec.npix
    out = np.full((n_ev, 3, h, w), spec.background, dtype=np.float32)
    if n_ev == 0:
        return out
    _check_fields(events, spec)
    have = _fields(events)
    eta_lo, eta_hi = spec.eta_range
    layers = []
    if spec.draw_met:
        met = events.MET
        offsets = np.arange(n_ev + 1, dtype=np.int64)
        layers.append(("met", offsets, np.zeros(n_ev), ak.to_numpy(met.phi).astype(np.float64),
                       ak.to_numpy(met.pt).astype(np.float64)))
    jets = events.Jet
    if not _fields(jets) and _n_objects(jets) == 0:  # no jet in any event, type unknown
        jets = None
    if jets is not None:
        jsel = (jets.pt > spec.jet_pt_min) & (abs(jets.eta) < spec.jet_abs_eta_max)
        is_b = jets[spec.btag_field] >= spec.btag_min
        je = _energy(jets)
        layers.append(("jet", *_flat_objects(jets, jsel & ~is_b, je)))
        layers.append(("bjet", *_flat_objects(jets, jsel & is_b, je)))
    for name, coll, ptmin in (("muon", "Muon", spec.muon_pt_min), ("electron", "Electron", spec.electron_pt_min)):
        if coll not in have:
            continue
        c = events[coll]
        if not _fields(c) and _n_objects(c) == 0:
            continue
        sel = (c.pt > ptmin) & (abs(c.eta) < spec.lepton_abs_eta_max)
        layers.append((name, *_flat_objects(c, sel, _energy(c))))
    for name, offsets, eta, phi, layer_energy in layers:
        K.draw_rings_kernel(out, offsets, np.ascontiguousarray(eta, dtype=np.float64),
                            np.ascontiguousarray(phi, dtype=np.float64),
                            np.ascontiguousarray(layer_energy, dtype=np.float64),
                            np.array(COLOURS[name], dtype=np.float64), float(spec.c_radius), eta_lo, eta_hi,
                            bool(spec.antialias))
    return out
