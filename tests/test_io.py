"""Opening files: the schema mends (PV without x/y/z, missing event IDs) and check_file's messages."""

from __future__ import annotations

import pickle

import awkward as ak
import numpy as np
import pytest
import uproot

from coffea_jetimg._io import InputFileError, check_file, open_events, schema_class
from coffea_jetimg.errors import JetImgError


@pytest.mark.parametrize("name,n", [("zero_events.root", 0), ("nan_and_unwrapped_phi.root", 5)])
def test_pv_without_position_opens(bad_dir, name, n):
    """PV_npvs without PV_x/y/z: coffea's VertexArray refused to exist; now PV is a plain record."""
    ev = open_events(str(bad_dir / name))
    assert len(ev) == n and ev.PV.fields == ["npvs"]
    if n:
        raw = uproot.open(bad_dir / name)["Events"]["PV_npvs"].array(library="np")
        np.testing.assert_array_equal(ak.to_numpy(ev.PV.npvs), raw)


def test_pv_with_position_keeps_coffea_behaviour(pfnano_file):
    ev = open_events(pfnano_file, mode="virtual")
    assert type(ev.PV).__name__ == "VertexArray" and ev.PV.pos.z.ndim == 1


def test_schema_classes_pickle_and_subclass_coffea():
    from coffea.nanoevents import NanoAODSchema, PFNanoAODSchema

    for schema, base in (("pfnano", PFNanoAODSchema), ("nanoaod", NanoAODSchema)):
        for allow in (False, True):
            cls = schema_class(schema, allow)
            assert issubclass(cls, base) and pickle.loads(pickle.dumps(cls)) is cls
            assert cls.error_missing_event_ids is (not allow)
    with pytest.raises(ValueError, match="unknown schema 'x'"):
        schema_class("x")


@pytest.fixture(scope="module")
def no_event_ids(tmp_path_factory, pfnano_file) -> str:
    """pfnano.root's FatJet + PV + PF candidates, without run/luminosityBlock/event."""
    src = uproot.open(pfnano_file)["Events"]
    keep = [k for k in src.keys() if k.split("_")[0] in ("FatJet", "FatJetPFCands", "PFCands", "PV")
            and not k.startswith("n")]
    arrs = src.arrays(keep, library="ak", how=dict)
    out = {}
    for coll in ("FatJet", "FatJetPFCands", "PFCands"):
        out[coll] = ak.zip({k[len(coll) + 1:]: v for k, v in arrs.items() if k.startswith(coll + "_")})
    for k, v in arrs.items():
        if k.startswith("PV_"):
            out[k] = v
    path = tmp_path_factory.mktemp("noid") / "no_event_ids.root"
    with uproot.recreate(path) as f:
        f["Events"] = out
    return str(path)


def test_missing_event_ids_names_the_option(no_event_ids):
    with pytest.raises(InputFileError, match="allow-missing-event-ids") as err:
        open_events(no_event_ids)
    assert "run, luminosityBlock, event" in str(err.value) and isinstance(err.value, JetImgError)
    with pytest.warns(RuntimeWarning, match="no event-ID branches"):
        ev = open_events(no_event_ids, allow_missing_event_ids=True)
    assert len(ev) == 10 and "FatJet" in ev.fields


def test_check_file_messages(cms_dir, pfnano_file):
    with pytest.raises(InputFileError, match="is a directory"):
        check_file(str(cms_dir))
    with pytest.raises(InputFileError, match=r"has no tree 'Evnts'; its trees: \['Events'"):
        check_file(pfnano_file, "Evnts")
    assert check_file(pfnano_file, "Events")[1] == 10


# ---- RNTuple (uproot >= 5.7 writes it; NanoAOD is moving to it) --------------------------------

@pytest.fixture(scope="module")
def rntuple_pair(tmp_path_factory, pfnano_file):
    """pfnano.root's FatJet/PF-candidate/PV/event-ID branches as a TTree file and as an RNTuple."""
    src = uproot.open(pfnano_file)["Events"]
    keep = [k for k in src.keys() if k.split("_")[0] in ("FatJet", "FatJetPFCands", "PFCands", "PV",
                                                          "nFatJet", "nFatJetPFCands", "nPFCands",
                                                          "run", "luminosityBlock", "event")]
    arrs = src.arrays(keep, library="ak", how=dict)
    d = tmp_path_factory.mktemp("rntuple")
    with uproot.recreate(d / "events_rntuple.root") as f:
        f["Events"] = arrs  # a dict of arrays: uproot >= 5.7 writes an RNTuple
    r = uproot.open(d / "events_rntuple.root")["Events"]
    if not isinstance(r, uproot.behaviors.RNTuple.RNTuple):
        pytest.skip("this uproot does not write RNTuple")
    return pfnano_file, str(d / "events_rntuple.root")


@pytest.mark.parametrize("mode", ["eager", "virtual", "dask"])
def test_rntuple_reads_like_the_ttree(rntuple_pair, mode):
    """dask mode used to fail at compute (``'RField' object has no attribute 'title'``)."""
    from coffea_jetimg import constituents

    ttree, rntuple = rntuple_pair
    out = []
    for path in (ttree, rntuple):
        c = constituents(open_events(path, mode=mode), "FatJet", fields=("puppiWeight",))
        out.append(c.compute() if mode == "dask" else c)
    assert ak.sum(ak.num(out[0], axis=2)) > 500
    for f in ("pt", "eta", "phi", "mass", "puppiWeight"):
        assert ak.all(out[0][f] == out[1][f]), f


def test_primed_rntuple_field_lists_equal_uproots(rntuple_pair):
    """The one-pass child lists (_prime_rntuple_fields) are uproot's own, field for field."""
    from coffea_jetimg._io import _prime_rntuple_fields

    _, rntuple = rntuple_pair
    fast = uproot.open(rntuple)["Events"]
    _prime_rntuple_fields(fast)
    own = uproot.behaviors.RNTuple.HasFields.fields.fget  # uproot's quadratic scan, run afresh
    checked = 0
    for f in fast.all_fields:
        primed = [x.name for x in f.fields]
        f._fields = None
        assert primed == [x.name for x in own(f)], f.name
        checked += 1
    assert checked > 100 and check_file(rntuple)[1] == 10
