"""The one eager/dask bridge: same results both ways, exactly the named columns read."""

from __future__ import annotations

import awkward as ak
import dask_awkward as dak
import numpy as np
import pytest

import coffea_jetimg as cj
from coffea_jetimg._bridge import flat, map_partitions, per_jet


def _sum_pt_over_eta(ev):
    """A numpy function of two columns of one collection: Σ pT / (1 + |η|) per event."""
    j = ev.FatJet
    w = ak.to_numpy(ak.flatten(j.pt / (1 + abs(j.eta))))
    counts = ak.to_numpy(ak.num(j.pt, axis=1))
    return ak.Array(np.add.reduceat(np.append(w, 0.0), np.r_[0, np.cumsum(counts)[:-1]]) * (counts > 0))


def test_eager_equals_dask_and_reads_only_named_columns(pfnano_file):
    eager = cj.open_events(pfnano_file)
    lazy = cj.open_events(pfnano_file, mode="dask")
    want = map_partitions(_sum_pt_over_eta, eager)
    res = map_partitions(_sum_pt_over_eta, lazy, touch=[[("FatJet", "pt"), ("FatJet", "eta")]], label="t")
    assert isinstance(res, dak.Array)
    np.testing.assert_allclose(ak.to_numpy(res.compute()), ak.to_numpy(want), rtol=1e-12)
    cols = set().union(*dak.necessary_columns(res).values())
    assert {c for c in cols if c.startswith("FatJet_")} == {"FatJet_pt", "FatJet_eta"}
    assert not any(c.startswith(("PFCands", "Jet_")) for c in cols)


def test_meta_from_a_length_zero_run_and_an_explicit_meta(pfnano_file):
    lazy = cj.open_events(pfnano_file, mode="dask")
    calls = []

    def fn(ev):
        calls.append(len(ev))
        return ak.Array(ak.to_numpy(ak.num(ev.FatJet.pt, axis=1)).astype(np.int64))

    res = map_partitions(fn, lazy, touch=[[("FatJet", "pt")]])
    assert calls == [0]  # the meta: one length-zero run, before any data
    assert str(res._meta.type.content) == "int64"
    meta = ak.Array(np.zeros(0, np.float32))
    res2 = map_partitions(lambda ev: ak.Array(np.ones(len(ev), np.float32)), lazy,
                          touch=[[("FatJet", "pt")]], meta=meta)
    assert str(res2._meta.type.content) == "float32"
    assert len(res2.compute()) == len(res.compute())


def test_touch_must_match_the_arrays(pfnano_file):
    lazy = cj.open_events(pfnano_file, mode="dask")
    with pytest.raises(ValueError, match="touch has 2 entries for 1 arrays"):
        map_partitions(lambda ev: ev, lazy, touch=[None, None])


def test_per_jet_regroups_into_the_jet_structure():
    cands = ak.Array([[[{"pt": 1.0, "eta": 0.1, "phi": 0.0, "mass": 0.0}], []],
                      [],
                      [[{"pt": 2.0, "eta": 0.0, "phi": 0.1, "mass": 0.0},
                        {"pt": 3.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]]])

    def fn(arr):
        off, cols = flat(arr, ("pt",))
        return {"sum_pt": np.add.reduceat(np.append(cols["pt"], 0), off[:-1]) * (np.diff(off) > 0)}

    res = per_jet(fn, cands, fields=("pt",))
    assert ak.to_list(res.sum_pt) == [[1.0, 0.0], [], [5.0]]
    lazy = dak.from_awkward(cands, npartitions=2)
    assert ak.to_list(per_jet(fn, lazy, fields=("pt",)).sum_pt.compute()) == [[1.0, 0.0], [], [5.0]]
