"""Constituents of real jets: PFNano (both layouts), Delphes, eager vs dask, bad input."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

import coffea_jetimg as cj
from coffea_jetimg._constituents import ConstituentsError, _group_by_jet, detect_layout, flat_jet_constituents
from coffea_jetimg.lorentz import constituent_p4s


@pytest.fixture(scope="module")
def pfnano_events(pfnano_file):
    return cj.open_events(pfnano_file)


def _p4_sum(c, weight=None):
    w = 1.0 if weight is None else weight
    px = ak.sum(w * c.pt * np.cos(c.phi), axis=-1)
    py = ak.sum(w * c.pt * np.sin(c.phi), axis=-1)
    return np.hypot(px, py)


def test_pfnano_puppi_sum_matches_raw_jet_pt(pfnano_events):
    """CMS PUPPI AK8 jets: Σ(constituent pT × puppiWeight) equals the raw jet pT."""
    ev = pfnano_events
    assert detect_layout(ev, "FatJet") == "pfnano"
    c = cj.constituents(ev, "FatJet")
    assert ak.all(ak.num(c, axis=1) == ak.num(ev.FatJet, axis=1))
    raw = ev.FatJet.pt * (1 - ev.FatJet.rawFactor)
    ratio = ak.to_numpy(ak.flatten(_p4_sum(c, c.puppiWeight) / raw))
    assert len(ratio) >= 20
    assert np.mean(np.abs(ratio - 1) < 0.03) > 0.9, ratio
    # the link really selects this jet's candidates: a shuffled assignment breaks the sum
    assert np.median(np.abs(ratio - 1)) < 0.01


def test_pfnano_fields_and_types(pfnano_events):
    c = cj.constituents(pfnano_events, "Jet")
    for f in ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz", "puppiWeight"):
        assert f in c.fields
    # Lorentz behaviour from coffea: the sum of constituents is a 4-vector with a mass
    tot = ak.sum(cj.constituents(pfnano_events, "FatJet"), axis=2)
    assert ak.all(tot.mass >= 0)


def _write_tree(path, arrays):
    with uproot.recreate(path) as f:
        t = f.mktree("Events", {k: v.type.content for k, v in arrays.items()})
        t.extend(arrays)


def test_older_inline_pfnano_layout(pfnano_events, tmp_path):
    """Older PFNano stored kinematics inline in FatJetPFCands_*: same constituents."""
    ev = pfnano_events
    link = ev.FatJetPFCands
    pf = ev.PFCands[link.pFCandsIdx]
    arrays = {
        "run": ev.run, "luminosityBlock": ev.luminosityBlock, "event": ev.event,
        "FatJet": ak.zip({f: ev.FatJet[f] for f in ("pt", "eta", "phi", "mass")}),
        "FatJetPFCands": ak.zip(
            {"pt": pf.pt, "eta": pf.eta, "phi": pf.phi, "mass": pf.mass, "charge": pf.charge, "jetIdx": link.jetIdx}
        ),
    }
    path = str(tmp_path / "old_layout.root")
    _write_tree(path, arrays)
    old = cj.open_events(path)
    assert detect_layout(old, "FatJet") == "pfnano-inline"
    c_old = cj.constituents(old, "FatJet")
    c_new = cj.constituents(ev, "FatJet")
    assert ak.almost_equal(c_old.pt, c_new.pt)
    assert ak.almost_equal(c_old.eta, c_new.eta)


def test_delphes_constituents_sum_to_jet(delphes_file):
    ev = cj.open_events(delphes_file)
    assert detect_layout(ev, "ParticleFlowJet08") == "delphes"
    c = cj.constituents(ev, "ParticleFlowJet08")
    jets = ev.ParticleFlowJet08
    n_refs = ak.num(jets.Constituents.refs, axis=2)
    # every reference resolves, except those to zero-pT EFlowTracks: Delphes writes Eta = 999.9
    # for them, and they are dropped (this file has some: the test would not see a regression)
    n_dropped = int(ak.sum(n_refs - ak.num(c, axis=2)))
    assert ak.all(ak.num(c, axis=2) <= n_refs) and n_dropped > 0
    tr = ev.EFlowTrack
    assert n_dropped <= int(ak.sum(tr.PT <= 0)) and ak.all(abs(tr.Eta[tr.PT <= 0]) > 100)
    assert ak.all(c.pt > 0) and ak.all(abs(c.eta) < 10)
    p4 = constituent_p4s(c, 40)  # LoLa's input: finite for every jet
    assert np.isfinite(p4).all() and p4.shape[0] == int(ak.sum(ak.num(jets.PT, axis=1)))
    tot = ak.sum(c, axis=2)
    pt_ratio = ak.to_numpy(ak.flatten(tot.pt / jets.PT))
    np.testing.assert_allclose(pt_ratio, 1.0, atol=1e-3)
    assert set(np.unique(ak.to_numpy(ak.flatten(c.charge, axis=None)))) <= {-1, 0, 1}


@pytest.mark.parametrize("jets", ["FatJet", "Jet"])
def test_eager_equals_dask_and_reads_few_columns(pfnano_file, pfnano_events, jets):
    import dask_awkward as dak

    lazy = cj.open_events(pfnano_file, mode="dask")
    cd = cj.constituents(lazy, jets)
    cols = set().union(*dak.necessary_columns(cd).values())
    assert f"{jets}PFCands_pFCandsIdx" in cols and "PFCands_pt" in cols
    assert not any(c.startswith("PFCands_trk") for c in cols)  # only what we use is read
    assert len(cols) < 20
    assert ak.almost_equal(cd.compute(), cj.constituents(pfnano_events, jets))


def test_delphes_eager_equals_dask(delphes_file):
    lazy = cj.open_events(delphes_file, mode="dask")
    eager = cj.open_events(delphes_file)
    assert ak.almost_equal(
        cj.constituents(lazy, "ParticleFlowJet08").compute(), cj.constituents(eager, "ParticleFlowJet08")
    )


def test_fields_subset_reads_and_gathers_only_those(pfnano_file, pfnano_events):
    """``fields=`` keeps the 4-vector plus the named fields, with the same values, and the dask
    graph then loads only those PFCands branches."""
    import dask_awkward as dak

    full = cj.constituents(pfnano_events, "FatJet")
    sub = cj.constituents(pfnano_events, "FatJet", fields=("charge",))
    assert sub.fields == ["pt", "eta", "phi", "mass", "charge"]
    for f in sub.fields:
        assert ak.almost_equal(sub[f], full[f]), f
    assert cj.constituents(pfnano_events, "FatJet", fields=()).fields == ["pt", "eta", "phi", "mass"]
    # still Lorentz vectors
    assert ak.all(ak.sum(sub, axis=2).mass >= 0)

    lazy = cj.open_events(pfnano_file, mode="dask")
    cols = set().union(*dak.necessary_columns(cj.constituents(lazy, "FatJet", fields=("charge",))).values())
    pf_cols = {c for c in cols if c.startswith("PFCands_")}
    assert pf_cols == {"PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "PFCands_charge"}, pf_cols
    all_cols = set().union(*dak.necessary_columns(cj.constituents(lazy, "FatJet")).values())
    assert {"PFCands_pdgId", "PFCands_puppiWeight", "PFCands_d0"} <= all_cols


def test_delphes_fields_subset(delphes_file):
    ev = cj.open_events(delphes_file)
    full = cj.constituents(ev, "ParticleFlowJet08")
    sub = cj.constituents(ev, "ParticleFlowJet08", fields=["charge"])
    assert sub.fields == ["pt", "eta", "phi", "mass", "charge"]
    for f in sub.fields:
        assert ak.almost_equal(sub[f], full[f]), f
    lazy = cj.open_events(delphes_file, mode="dask")
    dsub = cj.constituents(lazy, "ParticleFlowJet08", fields=["charge"])
    assert ak.almost_equal(dsub.compute(), sub)


def test_unknown_field_is_named(pfnano_events):
    with pytest.raises(ValueError, match="'charges'.*known: pt, eta"):
        cj.constituents(pfnano_events, "FatJet", fields=("charges",))


def test_masked_and_sliced_events(pfnano_events):
    ev = pfnano_events
    keep = np.arange(len(ev)) % 2 == 0
    masked = cj.constituents(ak.mask(ev, keep), "FatJet")
    full = cj.constituents(ev, "FatJet")
    assert ak.all(ak.num(masked, axis=1)[~keep] == 0)
    assert ak.almost_equal(masked[keep], full[keep])
    # an index-sliced (reordered) selection keeps each jet's own candidates
    order = np.array([3, 1, 7])
    assert ak.almost_equal(cj.constituents(ev[order], "FatJet"), full[order])
    assert len(cj.constituents(ev[:0], "FatJet")) == 0


def test_group_by_jet_helper():
    # 2 events: 2 jets and 0 jets; candidates listed out of jet order, one with an unknown jet
    out = _group_by_jet(
        np.array([2, 0]), np.array([0, 0, 0, 0]), np.array([1, 0, 1, 5]), {"pt": np.array([1.0, 2.0, 3.0, 4.0])}
    )
    assert out.pt.tolist() == [[[2.0], [1.0, 3.0]], []]


def test_jet_order_keeps_stored_order_without_a_copy():
    from coffea_jetimg._constituents import _jet_order

    # candidates already jet by jet, all valid: nothing to take, the columns are used as they are
    take, gjet = _jet_order(np.array([2, 1]), np.array([0, 0, 0, 1]), np.array([0, 1, 1, 0]))
    assert take is None and gjet.tolist() == [0, 1, 1, 2]
    # out of order with an unknown jet: stable order by jet, the unknown one dropped
    take, gjet = _jet_order(np.array([2, 1]), np.array([0, 0, 1, 0, 0]), np.array([1, 0, 0, 7, 1]))
    assert take.tolist() == [1, 0, 4, 2] and gjet.tolist() == [0, 1, 1, 2]
    take, gjet = _jet_order(np.array([3]), np.zeros(0, int), np.zeros(0, int))
    assert len(take) == 0 and len(gjet) == 0


def test_flat_jet_constituents_offsets(pfnano_events):
    c = cj.constituents(pfnano_events, "FatJet")
    offsets, cols = flat_jet_constituents(c)
    assert offsets[-1] == len(cols["pt"]) == ak.count(c.pt)
    np.testing.assert_array_equal(np.diff(offsets), ak.to_numpy(ak.flatten(ak.num(c, axis=2))))
    # None jets (e.g. from a masked selection) count as empty
    jets = ak.flatten(c, axis=1)
    opt = ak.mask(jets, np.arange(len(jets)) % 3 != 0)
    off2, _ = flat_jet_constituents(opt)
    assert np.all(np.diff(off2)[::3] == 0)


# ---------------------------------------------------------------- files without constituents


def test_plain_nanoaod_without_candidates_names_branches(cms_dir):
    ev = cj.open_events(str(cms_dir / "nano_tt_v12.root"))
    with pytest.raises(ConstituentsError, match="FatJetPFCands_pFCandsIdx"):
        cj.constituents(ev, "FatJet")


def test_missing_collection_is_named(cms_dir):
    ev = cj.open_events(str(cms_dir / "nano_dy.root"))  # FatJet branches, never a FatJet
    with pytest.raises(ConstituentsError, match="FatJetPFCands_pFCandsIdx"):
        cj.constituents(ev, "FatJet")
    with pytest.raises(ConstituentsError, match="no 'AK15Jet' collection"):
        cj.constituents(ev, "AK15Jet")


def test_missing_constituents_fail_before_dask_work(cms_dir):
    lazy = cj.open_events(str(cms_dir / "nano_tt_v12.root"), mode="dask")
    with pytest.raises(ConstituentsError):
        cj.constituents(lazy, "FatJet")


# ---------------------------------------------------------------- the bad-input corpus


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty.root", "empty"),
        ("not_root.root", "not a ROOT file"),
        ("truncated.root", "truncated|cannot be"),
        ("does_not_exist.root", "does not exist"),
    ],
)
def test_unreadable_files_give_clear_error(bad_dir, name, message):
    path = str(bad_dir / name)
    with pytest.raises(cj.InputFileError, match=message) as err:
        cj.open_events(path)
    assert name in str(err.value)


def test_zero_events_file_gives_empty_output(bad_dir):
    ev = cj.open_events(str(bad_dir / "zero_events.root"))
    c = cj.constituents(ev, "FatJet")
    assert len(c) == 0
    offsets, cols = flat_jet_constituents(c)
    assert offsets.tolist() == [0] and len(cols["pt"]) == 0


def test_nan_and_unwrapped_phi_are_cleaned(bad_dir, pfnano_file):
    ev = cj.open_events(str(bad_dir / "nan_and_unwrapped_phi.root"))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        c = cj.constituents(ev, "FatJet")
    assert any("non-finite" in str(w.message) for w in rec)
    flat = ak.flatten(ak.flatten(c, axis=2), axis=1)
    assert np.all(np.isfinite(ak.to_numpy(flat.pt)))
    phi = ak.to_numpy(flat.phi)
    assert np.all((phi > -np.pi - 1e-6) & (phi <= np.pi + 1e-6))
    # everything else is kept: same candidates as the clean file, less the NaN ones
    good = cj.constituents(cj.open_events(pfnano_file, entry_stop=len(ev)), "FatJet")
    n_good = ak.count(good.pt)
    assert n_good - 40 < ak.count(c.pt) < n_good
