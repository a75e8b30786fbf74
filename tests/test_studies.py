"""Studies from histograms: ROC/AUC, rejection, JSD, Pearson maps, merging, files."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from coffea_jetimg import studies


def _score_hist(sig_scores, bkg_scores, sig_msd=None, bkg_msd=None):
    h = hist.Hist(hist.axis.StrCategory(["qcd", "top"], name="class"),
                  hist.axis.Regular(40, 0, 1, name="score", flow=False, metadata={"signal_class": "top"}),
                  hist.axis.Variable([200, 400, 3000], name="pt"), hist.axis.Regular(30, 0, 300, name="msd"),
                  hist.axis.Variable([0, 2.5], name="abs_eta", flow=False), hist.axis.Variable([0, 100], name="npv"),
                  storage=hist.storage.Int64())
    for c, s, m in (("top", sig_scores, sig_msd), ("qcd", bkg_scores, bkg_msd)):
        m = np.full(len(s), 100.0) if m is None else m
        h.fill(c, s, np.full(len(s), 500.0), m, np.full(len(s), 1.0), np.full(len(s), 20.0))
    return h


def test_perfect_separator_auc_1():
    h = _score_hist(np.full(1000, 0.99), np.full(1000, 0.01))
    s = studies.summarize({"score": {"m": h}})["models"]["m"]
    assert s["auc"] == pytest.approx(1.0)
    assert s["R50"] == "inf" and s["signal"] == "top" and s["background"] == ["qcd"]


def test_identical_distributions_auc_half():
    rng = np.random.default_rng(0)
    h = _score_hist(rng.uniform(size=50000), rng.uniform(size=50000))
    s = studies.summarize({"score": {"m": h}})["models"]["m"]
    assert s["auc"] == pytest.approx(0.5, abs=0.01)
    assert s["R50"] == pytest.approx(2.0, rel=0.05) and s["R30"] == pytest.approx(1 / 0.3, rel=0.05)


def test_better_separation_bigger_auc_and_binomial_errors():
    rng = np.random.default_rng(1)
    h = _score_hist(rng.beta(5, 2, 20000), rng.beta(2, 5, 20000))
    r = studies.roc_curve(studies._score_counts(h, ["top"]), studies._score_counts(h, ["qcd"]))
    a = studies.auc(r["eff_s"], r["eff_b"])
    assert 0.85 < a < 0.99
    k = 20
    e = r["eff_s"][k]
    assert r["err_s"][k] == pytest.approx(np.sqrt(e * (1 - e) / 20000))
    assert r["eff_s"][0] == 1 and r["eff_s"][-1] == 0


def test_jsd():
    p = np.array([1.0, 2, 3, 4])
    assert studies.jsd(p, 3 * p) == 0
    assert studies.jsd([1, 0], [0, 1]) == pytest.approx(1.0)
    assert 0 < studies.jsd([1, 1], [1, 2]) < 1


def test_decorrelation_of_mass_sculpting_tagger():
    rng = np.random.default_rng(2)
    n = 20000
    bm = rng.uniform(0, 300, n)
    bs = np.where(bm > 150, 0.9, 0.1)  # background score follows mass: sculpts
    sm = rng.uniform(0, 300, n)
    h = _score_hist(rng.uniform(0.5, 1, n), bs, sm, bm)
    d = studies.decorrelation(h, "top", ["qcd"], 0.5)
    assert d["jsd"] > 0.5
    flat = _score_hist(rng.uniform(0.5, 1, n), rng.uniform(0, 1, n), sm, bm)
    assert studies.decorrelation(flat, "top", ["qcd"], 0.5)["jsd"] < 0.01


def test_pearson_map_of_correlated_pixel_is_one():
    rng = np.random.default_rng(3)
    y = rng.uniform(size=500)
    x = np.zeros((500, 1, 2, 2))
    x[:, 0, 0, 0] = 3 * y + 1      # perfectly correlated
    x[:, 0, 1, 1] = -2 * y         # anti-correlated
    x[:, 0, 0, 1] = rng.uniform(size=500)  # independent
    # moments in two "chunks", merged by addition
    mom = [sum(m) for m in zip(*[(len(y[c]), x[c].sum(0), (x[c] ** 2).sum(0), y[c].sum(), (y[c] ** 2).sum(),
                                  (x[c] * y[c, None, None, None]).sum(0)) for c in (slice(0, 200), slice(200, 500))])]
    r = studies.pearson_map(*mom)[0]
    assert r[0, 0] == pytest.approx(1.0) and r[1, 1] == pytest.approx(-1.0)
    assert abs(r[0, 1]) < 0.15 and np.isnan(r[1, 0])  # constant pixel: undefined


def test_merge_datasets_union_of_classes(tmp_path):
    rng = np.random.default_rng(4)
    a = _score_hist(rng.uniform(size=100), rng.uniform(size=50))[{"class": ["qcd"]}]
    b = _score_hist(rng.uniform(size=70), rng.uniform(size=50))[{"class": ["top"]}]
    m = studies.merge_datasets({"q": {"score": {"m": a}, "cutflow": {"events": 3}},
                                "t": {"score": {"m": b}, "cutflow": {"events": 4}}})
    assert list(m["score"]["m"].axes["class"]) == ["qcd", "top"]
    assert m["score"]["m"][{"class": "top"}].sum(flow=True) == 70 and m["cutflow"]["events"] == 7
    names = studies.write_root(m, tmp_path / "h.root")
    import uproot

    with uproot.open(tmp_path / "h.root") as f:
        assert f["m/top/score"].values().sum() == pytest.approx(70)
    assert "m/qcd/msd_pass" in names
