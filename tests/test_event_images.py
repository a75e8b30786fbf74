"""Madrazo-style event images: ring position, radius, colour, wrap, order, real NanoAOD."""

from __future__ import annotations

import math
import warnings

import awkward as ak
import numpy as np
import pytest

from coffea_jetimg.event_images import COLOURS, EventImageSpec, event_images

W = H = 224
DETA = 6.0 / W
DPHI = 2 * math.pi / H


def _event(electrons=(), muons=(), jets=(), met=(0.0, 0.0)):
    def coll(objs, extra=None):
        return [{"pt": o[0], "eta": o[1], "phi": o[2], "mass": o[3], **({extra: o[4]} if extra else {})} for o in objs]

    return {"Electron": coll(electrons), "Muon": coll(muons), "Jet": coll(jets, "btagDeepFlavB"),
            "MET": {"pt": met[0], "phi": met[1]}}


def _events(*evs):
    return ak.Array(list(evs))


def _ring(img, colour):
    """(rows, cols) of the pixels painted exactly in ``colour``."""
    hit = np.all(np.abs(img - np.array(colour, np.float32)[:, None, None]) < 1e-6, axis=0)
    return np.argwhere(hit)


def _check_ring(pix, eta, phi, energy, c=10.5):
    r = c * math.log(energy)
    cx = (eta + 3.0) / DETA
    cy = (phi + math.pi) / DPHI
    dy = pix[:, 0] + 0.5 - cy
    dy = (dy + H / 2) % H - H / 2  # nearest image in phi
    d = np.hypot(pix[:, 1] + 0.5 - cx, dy)
    assert np.all(np.abs(d - r) <= 0.5 + 1e-6)
    assert len(pix) == pytest.approx(2 * math.pi * r * (2 / math.pi) * 2, rel=0.35) or len(pix) > 4 * r
    return r, cx, cy


def test_single_electron_ring():
    pt, eta, phi, m = 50.0, 0.5, 1.0, 0.000511
    e = math.sqrt((pt * math.cosh(eta)) ** 2 + m * m)
    img = event_images(_events(_event(electrons=[(pt, eta, phi, m)])), EventImageSpec(draw_met=False))
    assert img.shape == (1, 3, H, W) and img.dtype == np.float32
    pix = _ring(img[0], COLOURS["electron"])
    r, cx, cy = _check_ring(pix, eta, phi, e)
    # every non-white pixel is part of this ring, and the centre is empty (a circle, not a disk)
    assert np.count_nonzero(np.any(img[0] < 1, axis=0)) == len(pix)
    assert np.all(img[0, :, int(cy), int(cx)] == 1.0)
    # covers all directions: top, bottom, left and right extremes at ≈ r from the centre
    assert pix[:, 1].max() + 0.5 - cx == pytest.approx(r, abs=1.0)
    assert cx - (pix[:, 1].min() + 0.5) == pytest.approx(r, abs=1.0)
    assert pix[:, 0].max() + 0.5 - cy == pytest.approx(r, abs=1.0)


def test_met_at_eta_zero_and_phi_wrap():
    met_pt, met_phi = 80.0, 3.0  # near +π: the ring wraps to the bottom rows
    img = event_images(_events(_event(met=(met_pt, met_phi))))
    pix = _ring(img[0], COLOURS["met"])
    r, cx, cy = _check_ring(pix, 0.0, met_phi, met_pt)
    assert cx == pytest.approx(W / 2)
    assert np.mean(pix[:, 1] + 0.5) == pytest.approx(W / 2, abs=0.5)  # symmetric about eta = 0
    assert pix[:, 0].min() < 10 and pix[:, 0].max() > H - 10  # wrapped across phi = ±π
    no_met = event_images(_events(_event(met=(met_pt, met_phi))), EventImageSpec(draw_met=False))
    assert np.all(no_met == 1.0)


def test_selection_colours_and_order():
    ev = _event(
        electrons=[(30.0, 0.0, 0.0, 0.0), (10.0, 1.0, 1.0, 0.0)],  # second fails pT > 20
        muons=[(25.0, -1.0, -2.0, 0.1)],
        jets=[(60.0, 0.0, 0.0, 5.0, 0.9),  # b-tagged, same place as the electron
              (40.0, 1.5, 2.0, 5.0, 0.05),  # light
              (100.0, 2.8, -1.0, 5.0, 0.9),  # fails |eta| < 2.4
              (20.0, -1.5, 1.0, 5.0, 0.05)],  # fails pT > 30
        met=(1.0, 0.0),  # E = 1 GeV: R = 0, a dot at (0, 0), inside the electron ring
    )
    img = event_images(_events(ev))[0]
    col = {k: _ring(img, v) for k, v in COLOURS.items()}
    _check_ring(col["muon"], -1.0, -2.0, math.sqrt((25 * math.cosh(1.0)) ** 2 + 0.01))
    _check_ring(col["jet"], 1.5, 2.0, math.sqrt((40 * math.cosh(1.5)) ** 2 + 25))
    e_ele = 30.0
    _check_ring(col["electron"], 0.0, 0.0, e_ele)
    # the b-jet ring (larger) is dark red; where it would cross the electron ring, electron wins
    bj = col["bjet"]
    _check_ring(bj, 0.0, 0.0, math.sqrt(60.0**2 + 25))
    assert len(col["met"]) == 1  # the MET dot
    # nothing else drawn: the failing electron / jets leave no trace
    painted = np.any(img < 1, axis=0).sum()
    assert painted == sum(len(v) for v in col.values())


def test_later_objects_paint_over():
    # electron and muon at the same place and energy: the electron (drawn last) wins
    ev = _event(electrons=[(40.0, 0.0, 0.0, 0.0)], muons=[(40.0, 0.0, 0.0, 0.0)])
    img = event_images(_events(ev), EventImageSpec(draw_met=False))[0]
    assert len(_ring(img, COLOURS["muon"])) == 0 and len(_ring(img, COLOURS["electron"])) > 100


def test_antialias_and_spec():
    ev = _events(_event(electrons=[(40.0, 0.3, -0.5, 0.0)]))
    img = event_images(ev, EventImageSpec(draw_met=False, antialias=True))[0]
    assert np.all((img >= 0) & (img <= 1)) and np.any((img > 0) & (img < 1))
    spec = EventImageSpec(btag_min=0.5, c_radius=8.0, npix=(112, 100))
    assert EventImageSpec.from_json(spec.to_json()) == spec
    assert event_images(ev, spec).shape == (1, 3, 100, 112)
    for name, value in (("npix", (0, 10)), ("c_radius", -1.0), ("eta_range", (3, -3)), ("jet_pt_min", float("nan"))):
        with pytest.raises(ValueError, match=name):
            EventImageSpec(**{name: value})
    with pytest.raises(ValueError, match="bogus"):
        EventImageSpec.from_dict({"bogus": 1})
    with pytest.raises(KeyError, match="btagXYZ"):
        event_images(_events(_event(jets=[(40.0, 0.0, 0.0, 5.0, 0.5)])), EventImageSpec(btag_field="btagXYZ"))
    assert event_images(ev[:0]).shape == (0, 3, H, W)


@pytest.mark.parametrize("name,btag", [("nano_tt_v12.root", "btagDeepFlavB"),
                                       ("nanoAOD_2015_CMS_Open_Data_ttbar.root", "btagCSVV2"),
                                       ("nano_dy.root", "btagDeepFlavB")])
def test_real_nanoaod(cms_dir, name, btag):
    from coffea_jetimg._io import open_events

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = open_events(str(cms_dir / name))
    spec = EventImageSpec(btag_field=btag)
    img = event_images(events, spec)
    assert img.shape == (len(events), 3, H, W) and np.all((img >= 0) & (img <= 1))
    # every event has a MET ring (MET > 1 GeV), black
    black = np.all(img == 0, axis=1).reshape(len(events), -1).any(axis=1)
    met = ak.to_numpy(events.MET.pt)
    assert np.array_equal(black, met > 1.0)
    # selected jets and leptons show up in their colours
    jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]
    n_b = ak.to_numpy(ak.sum(jets[btag] >= spec.btag_min, axis=1))
    dark = np.all(np.abs(img - np.array(COLOURS["bjet"], np.float32)[None, :, None, None]) < 1e-6, axis=1)
    has_dark = dark.reshape(len(events), -1).any(axis=1)
    assert np.all(has_dark <= (n_b > 0))  # never a b-jet ring without a b-tagged jet
    assert has_dark.sum() >= 0.8 * (n_b > 0).sum()  # (a later ring may cover one entirely, rarely)


def test_eager_equals_dask(cms_dir):
    import dask_awkward as dak

    from coffea_jetimg._io import open_events

    path = str(cms_dir / "nano_tt_v12.root")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = open_events(path)
        lazy = open_events(path, mode="dask")
    spec = EventImageSpec(npix=(64, 48))
    img = event_images(events, spec)
    dimg = event_images(lazy, spec)
    assert isinstance(dimg, dak.Array)
    # the optimisation pass reads only what the images need
    cols = {c for c in dak.necessary_columns(dimg).popitem()[1]}
    assert {"MET_pt", "Jet_btagDeepFlavB", "Electron_eta", "Muon_phi"} <= cols
    assert not any(c.startswith(("FatJet", "Tau", "Photon")) for c in cols)
    np.testing.assert_array_equal(ak.to_numpy(dimg.compute()), img)
    with pytest.raises(KeyError, match="btagXYZ"):
        event_images(lazy, EventImageSpec(btag_field="btagXYZ"))
