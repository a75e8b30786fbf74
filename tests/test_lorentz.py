"""Constituent 4-vectors and features: Lorentz algebra, ordering, padding, eager == dask."""

from __future__ import annotations

import math
import warnings

import awkward as ak
import numpy as np
import pytest

from coffea_jetimg.lorentz import FEATURES, constituent_features, constituent_p4s


def _jets(jets):
    return ak.Array([[{"pt": c[0], "eta": c[1], "phi": c[2], "mass": c[3], "charge": c[4] if len(c) > 4 else 0}
                      for c in jet] for jet in jets])


def test_single_massive_constituent_mass():
    for pt, eta, phi, m in ((10.0, 0.3, 1.0, 1.5), (3.0, -2.0, -3.1, 0.938), (25.0, 1.2, 2.0, 4.2)):
        p4 = constituent_p4s(_jets([[(pt, eta, phi, m)]]), 5).astype(np.float64)
        e, px, py, pz = p4[0, :, 0]
        assert e * e - px * px - py * py - pz * pz == pytest.approx(m * m, rel=2e-3, abs=2e-3)
        assert math.hypot(px, py) == pytest.approx(pt, rel=1e-6)
        assert math.atan2(py, px) == pytest.approx(phi, abs=1e-6)
        assert math.asinh(pz / pt) == pytest.approx(eta, abs=1e-6)
    # massless: m² ≈ 0 relative to E²
    p4 = constituent_p4s(_jets([[(50.0, 1.0, 0.2, 0.0)]]), 3).astype(np.float64)[0, :, 0]
    assert abs(p4[0] ** 2 - (p4[1:] ** 2).sum()) < 1e-6 * p4[0] ** 2


def test_ordering_padding_truncation():
    rng = np.random.default_rng(0)
    jets = [[(float(rng.uniform(1, 100)), float(rng.normal()), float(rng.uniform(-3, 3)), 0.1) for _ in range(n)]
            for n in (0, 1, 7, 30)]
    x = _jets(jets)
    p4, mask = constituent_p4s(x, 10, return_mask=True)
    assert p4.shape == (4, 4, 10) and p4.dtype == np.float32 and mask.shape == (4, 10)
    assert mask.sum(axis=1).tolist() == [0, 1, 7, 10]
    assert np.all(p4[~np.broadcast_to(mask[:, None, :], p4.shape)] == 0)  # padding is zeros
    pt = np.hypot(p4[:, 1], p4[:, 2])
    for j, jet in enumerate(jets):
        want = sorted((c[0] for c in jet), reverse=True)[:10]
        np.testing.assert_allclose(pt[j, : len(want)], want, rtol=1e-5)  # descending, hardest kept
    unsorted = constituent_p4s(x, 10, sort=False)
    np.testing.assert_allclose(np.hypot(unsorted[3, 1], unsorted[3, 2]), [c[0] for c in jets[3][:10]], rtol=1e-5)
    with pytest.raises(ValueError, match="n_constituents"):
        constituent_p4s(x, 0)


def test_jet_mass_matches_coffea_vector():
    from coffea.nanoevents.methods import vector

    rng = np.random.default_rng(2)
    counts = rng.integers(1, 40, 30)
    n = counts.sum()
    flat = ak.zip({"pt": rng.uniform(1, 50, n), "eta": rng.normal(0.5, 0.3, n), "phi": rng.normal(3.0, 0.3, n),
                   "mass": rng.choice([0.0, 0.13957, 0.4937], n)})
    x = ak.with_name(ak.unflatten(flat, counts), "PtEtaPhiMLorentzVector", behavior=vector.behavior)
    p4 = constituent_p4s(x, 40).astype(np.float64).sum(axis=2)
    m = np.sqrt(np.maximum(p4[:, 0] ** 2 - (p4[:, 1:] ** 2).sum(axis=1), 0))
    want = ak.to_numpy(x.sum(axis=1).mass)
    np.testing.assert_allclose(m, want, rtol=1e-4)


def test_kernel_sums_match_vector():
    """The kernels' jet-level Lorentz algebra against scikit-hep vector (the library under coffea's
    behaviours): each constituent's (E, px, py, pz), the jet axis, pT and E of the features, and
    substructure's jet mass and width axis, on massive constituents spread in eta and across φ = ±π."""
    import vector

    from coffea_jetimg.substructure import jet_mass

    rng = np.random.default_rng(5)
    counts = rng.integers(1, 30, 40)
    n = int(counts.sum())
    jet_of = np.repeat(np.arange(len(counts)), counts)
    cols = {"pt": rng.uniform(1, 80, n), "eta": rng.uniform(-2.5, 2.5, len(counts))[jet_of] + rng.normal(0, 0.3, n),
            "phi": np.pi + rng.normal(0, 0.3, n), "mass": rng.choice([0.0, 0.13957, 0.4937, 1.5], n)}
    cols["phi"] = np.where(cols["phi"] > np.pi, cols["phi"] - 2 * np.pi, cols["phi"])
    x = ak.unflatten(ak.zip(cols), counts)
    v = vector.zip({k: x[k] for k in ("pt", "eta", "phi", "mass")})
    # per constituent: the padded (E, px, py, pz) rows, in input order
    p4 = constituent_p4s(x, 30, sort=False).astype(np.float64)
    for i, want in enumerate((v.E, v.px, v.py, v.pz)):
        got = ak.flatten(ak.Array([p4[j, i, :c] for j, c in enumerate(counts)]))
        np.testing.assert_allclose(ak.to_numpy(got), ak.to_numpy(ak.flatten(want)), rtol=2e-6, atol=2e-5)
    # per jet: the sum
    tot = vector.array({k: ak.to_numpy(ak.sum(getattr(v, k), axis=1)) for k in ("px", "py", "pz", "E")})
    f = constituent_features(x, 30, features=("deta", "dphi", "log_pt_rel", "log_e_rel", "pt", "e"), sort=False,
                             return_mask=False).astype(np.float64)
    lead = lambda a: a[:, 0]  # noqa: E731  (the first constituent of each jet)
    first = vector.array({k: ak.to_numpy(x[k][:, 0]) for k in ("pt", "eta", "phi", "mass")})
    np.testing.assert_allclose(lead(f[:, 0]), first.eta - tot.eta, atol=2e-5)
    np.testing.assert_allclose(lead(f[:, 1]), first.deltaphi(tot), atol=2e-5)
    np.testing.assert_allclose(np.exp(lead(f[:, 2])), first.pt / tot.pt, rtol=2e-5)
    np.testing.assert_allclose(np.exp(lead(f[:, 3])), first.E / tot.E, rtol=2e-5)
    np.testing.assert_allclose(jet_mass(x), tot.mass, rtol=1e-9, atol=1e-5)  # vector: signed m for m² < 0


def test_features_relative_to_axis():
    # a jet across phi = ±π
    jet = [(40.0, 0.5, 3.1, 0.0, 1), (20.0, 0.6, -3.1, 0.0, -1), (5.0, 0.4, 3.0, 0.0, 0)]
    f, mask = constituent_features(_jets([jet, []]), 4, features=tuple(FEATURES))
    assert f.shape == (2, len(FEATURES), 4) and mask.tolist() == [[True, True, True, False], [False] * 4]
    names = list(FEATURES)
    row = {k: f[0, i] for i, k in enumerate(names)}
    assert np.all(np.abs(row["dphi"][:3]) < 0.2)  # wrapped
    assert row["pt"][:3].tolist() == [40.0, 20.0, 5.0]
    assert row["charge"][:3].tolist() == [1, -1, 0]
    np.testing.assert_allclose(row["dr"], np.hypot(row["deta"], row["dphi"]), rtol=1e-6)
    np.testing.assert_allclose(np.exp(row["log_pt"][:3]), [40, 20, 5], rtol=1e-5)
    # pt_jet and E_jet from the 4-vector sum
    px = sum(c[0] * math.cos(c[2]) for c in jet)
    py = sum(c[0] * math.sin(c[2]) for c in jet)
    ejet = sum(c[0] * math.cosh(c[1]) for c in jet)
    np.testing.assert_allclose(np.exp(row["log_pt_rel"][:3]) * math.hypot(px, py), [40, 20, 5], rtol=1e-5)
    np.testing.assert_allclose(np.exp(row["log_e_rel"][:3]) * ejet, row["e"][:3], rtol=1e-5)
    assert np.all(f[:, :, 3] == 0) and np.all(f[1] == 0)
    # jet axis given explicitly
    g, _ = constituent_features(_jets([jet]), 3, features=("deta", "dphi"), jet_eta=[0.0], jet_phi=[math.pi])
    np.testing.assert_allclose(g[0, 0], [0.5, 0.6, 0.4], rtol=1e-6)
    np.testing.assert_allclose(g[0, 1], [3.1 - math.pi, 2 * math.pi - 3.1 - math.pi, 3.0 - math.pi], atol=1e-6)
    with pytest.raises(ValueError, match="features"):
        constituent_features(_jets([jet]), 3, features=("mass_squared",))


def test_none_and_empty_inputs():
    arr = ak.Array([[[{"pt": 10.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}, None], []], None, [None]])
    p4, mask = constituent_p4s(arr, 3, return_mask=True)
    assert p4.shape == (3, 4, 3) and mask.sum(axis=1).tolist() == [1, 0, 0] and np.isfinite(p4).all()
    empty = ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]])[:0]
    assert constituent_p4s(empty, 5).shape == (0, 4, 5)
    f, m = constituent_features(empty, 5)
    assert f.shape == (0, 8, 5) and m.shape == (0, 5)


def test_eager_equals_dask(pfnano_file):
    from coffea_jetimg._io import open_events
    from coffea_jetimg import constituents

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = constituents(open_events(pfnano_file))
        lazy = constituents(open_events(pfnano_file, mode="dask"))
    p4, mask = constituent_p4s(eager, 50, return_mask=True)
    f, fm = constituent_features(eager, 50)
    assert np.isfinite(p4).all() and np.isfinite(f).all() and mask.sum() > 100
    dp4, dmask = constituent_p4s(lazy, 50, return_mask=True)
    df, dfm = constituent_features(lazy, 50)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(dp4.compute(), axis=1)), p4, rtol=1e-6)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(dmask.compute(), axis=1)), mask)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(df.compute(), axis=1)), f, rtol=1e-6)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(dfm.compute(), axis=1)), fm)
