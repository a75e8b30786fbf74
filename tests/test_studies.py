"""Studies from histograms: summary numbers, decorrelation at the table's working point, plots' content, files."""

from __future__ import annotations

import json

import hist
import numpy as np
import pytest

from coffea_jetimg import metrics, studies
from coffea_jetimg._report_cli import build_markdown
from coffea_jetimg.studies import axes as A


def _score_hist(sig_scores, bkg_scores, sig_msd=None, bkg_msd=None, classes=("qcd", "top"), extra=None,
                msd_label="Soft-drop mass [GeV]", bins=40):
    h = hist.Hist(hist.axis.StrCategory(list(classes), name=A.CLASS),
                  hist.axis.Regular(bins, 0, 1, name=A.SCORE, flow=False,
                                    metadata={"signal_class": "top", "class_names": ["qcd", "top"]}),
                  hist.axis.Variable([200, 400, 3000], name=A.PT), hist.axis.Regular(30, 0, 300, name=A.MSD,
                                                                                    label=msd_label),
                  hist.axis.Variable([0, 2.5], name=A.ABS_ETA, flow=False), hist.axis.Variable([0, 100], name=A.NPV),
                  storage=hist.storage.Int64())
    fills = [("top", sig_scores, sig_msd), ("qcd", bkg_scores, bkg_msd)] + list(extra or [])
    for c, s, m in fills:
        if s is None or c not in classes:
            continue
        m = np.full(len(s), 100.0) if m is None else m
        h.fill(c, s, np.full(len(s), 500.0), m, np.full(len(s), 1.0), np.full(len(s), 20.0))
    return h


def test_perfect_separator_auc_1_and_infinite_rejection_is_a_lower_limit():
    h = _score_hist(np.full(1000, 0.99), np.full(800, 0.01))
    s = studies.summarize({"score": {"m": h}})["models"]["m"]
    assert s["auc"] == pytest.approx(1.0)
    assert s["R50"] == "inf" and s["R50_lower_limit"] == pytest.approx(800)
    assert s["signal"] == "top" and s["background"] == ["qcd"]
    assert studies.format_rejection(s["R50"], s["R50_lower_limit"]) == "> 800"
    md = build_markdown({"models": {"m": s}}, "t")
    row = next(line for line in md.splitlines() if line.startswith("| m |"))
    assert "> 800" in row and "inf" not in row


def test_identical_distributions_auc_half():
    rng = np.random.default_rng(0)
    h = _score_hist(rng.uniform(size=50000), rng.uniform(size=50000))
    s = studies.summarize({"score": {"m": h}})["models"]["m"]
    assert s["auc"] == pytest.approx(0.5, abs=0.01)
    assert s["R50"] == pytest.approx(2.0, rel=0.05) and s["R30"] == pytest.approx(1 / 0.3, rel=0.05)
    lo, hi = s["working_points"]["0.5"]["interval"]
    assert lo < s["R50"] < hi


def test_hist_roc_is_metrics_roc_with_binomial_errors():
    rng = np.random.default_rng(1)
    sig, bkg = rng.beta(5, 2, 20000), rng.beta(2, 5, 20000)
    h = _score_hist(sig, bkg)
    r = studies.score_roc(h, "top", ["qcd"])
    assert 0.85 < metrics.auc(r) < 0.99
    e = r.eff_s[20]
    assert r.err_s[20] == pytest.approx(np.sqrt(e * (1 - e) / 20000))
    assert r.eff_s[0] == 1 and r.eff_s[-1] == 0
    # the same numbers as metrics on the per-jet scores histogrammed with the hist's edges
    edges = h.axes[A.SCORE].edges
    ref = metrics.roc_from_counts(np.histogram(sig, edges)[0], np.histogram(bkg, edges)[0], edges)
    np.testing.assert_allclose(r.eff_b, ref.eff_b)


def test_weighted_storage_uses_the_variances():
    h = hist.Hist(hist.axis.StrCategory(["qcd", "top"], name=A.CLASS), hist.axis.Regular(4, 0, 1, name=A.SCORE,
                  flow=False), hist.axis.Variable([200, 3000], name=A.PT), storage=hist.storage.Weight())
    h.fill("top", [0.9, 0.6], [500, 500], weight=[2.0, 2.0])
    h.fill("qcd", [0.1, 0.6], [500, 500], weight=[3.0, 1.0])
    r = studies.score_roc(h, "top", ["qcd"])
    assert r.n_b == 4 and r.var_b == 10  # 3² + 1²
    assert r.n_b_effective == pytest.approx(1.6)


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


def test_decorrelation_bootstrap_intervals_cover_the_central_values():
    # a partly sculpting background (score rises with mass, with spread): the Poisson bootstrap of
    # the (score x mass) counts gives intervals around the central R50 and 1/JSD, which shrink
    # with 16x the jets by about 4x (1/sqrt(N))
    rng = np.random.default_rng(4)
    widths = {}
    for n in (2000, 32000):
        bm = rng.uniform(0, 300, n)
        bs = np.clip(bm / 300 + rng.normal(0, 0.3, n), 0, 0.999)
        h = _score_hist(rng.uniform(0.3, 1, n), bs, rng.uniform(0, 300, n), bm)
        d = studies.decorrelation(h, "top", ["qcd"], 0.5, n_boot=200, seed=1)
        plain = studies.decorrelation(h, "top", ["qcd"], 0.5)
        assert d["rejection"] == plain["rejection"] and d["inv_jsd"] == plain["inv_jsd"]
        for key, c in (("rejection_boot_interval", d["rejection"]), ("inv_jsd_interval", d["inv_jsd"])):
            lo, hi = d[key]
            assert lo < c < hi, (n, key, lo, c, hi)
        widths[n] = np.diff(d["inv_jsd_interval"])[0] / d["inv_jsd"]
    assert 2.5 < widths[2000] / widths[32000] < 6.5, widths


def test_decorrelation_plot_shows_the_tables_interpolated_rejection(tmp_path):
    # coarse score bins: the nearest bin edge gives ε_S far from 0.5 (0.69 here), so the old
    # nearest-edge rejection differed from the table's interpolated R50
    rng = np.random.default_rng(5)
    bs = rng.beta(2, 3, 5000)
    h = _score_hist(rng.beta(3, 2, 5000), bs, rng.uniform(0, 300, 5000), 100 + 80 * bs + rng.normal(0, 30, 5000),
                    bins=4)
    summ = studies.summarize({"score": {"m": h}})
    r50 = summ["models"]["m"]["R50"]
    dec = summ["models"]["m"]["decorrelation"]
    assert dec["rejection"] == pytest.approx(r50, rel=1e-12) and dec["eff_s"] == 0.5
    roc = studies.score_roc(h, "top", ["qcd"])
    k = int(np.argmin(np.abs(roc.eff_s - 0.5)))
    assert abs(roc.rejection[k] - r50) > 0.05 * r50  # the two computations do differ here
    drawn = studies.plot_decorrelation(summ, tmp_path / "d.png")
    p = drawn["points"]["m"]
    assert p["rejection"] == pytest.approx(r50, rel=1e-12)
    lo, hi = p["interval"]
    assert lo < r50 < hi and drawn["message"] is None
    assert (tmp_path / "d.png").stat().st_size > 0
    marks = studies.plot_roc(h, "m", "top", ["qcd"], tmp_path / "r.png")["working_points"]
    assert marks[0.5] == pytest.approx(r50, rel=1e-12) and marks[0.3] == pytest.approx(summ["models"]["m"]["R30"])


def test_no_signal_jets_is_said_not_drawn_empty(tmp_path):
    rng = np.random.default_rng(6)
    h = _score_hist(None, rng.uniform(size=300), classes=("qcd",))
    summ = studies.summarize({"score": {"m": h}})
    res = summ["models"]["m"]
    assert res["reason"] == "no signal jets" and res["n_signal"] == 0 and "error" not in res
    drawn = studies.plot_decorrelation(summ, tmp_path / "d.png")
    assert drawn["points"] == {} and drawn["message"] == "no signal jets"


def test_report_keeps_errors_out_of_the_signal_column():
    summ = {"models": {"bad": {"error": "signal class 'higgs' not among the histogram's classes ['qcd']"},
                       "good": {"signal": "top", "background": ["qcd"], "auc": 0.9, "R30": 12.0, "R50": 5.0,
                                "n_signal": 10, "n_background": 10, "decorrelation": {}}}}
    md = build_markdown(summ, "t")
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert not any("higgs" in line for line in table)
    assert any(line.startswith("| good | top | qcd |") for line in table)
    assert "- `bad`: signal class 'higgs' not among" in md


def test_sliced_mass_labels_what_is_plotted_and_names_extra_classes(tmp_path):
    rng = np.random.default_rng(7)
    w = ("w", rng.uniform(size=200), rng.uniform(60, 100, 200))
    h = _score_hist(rng.uniform(size=500), rng.uniform(size=500), classes=("qcd", "top", "w"), extra=[w],
                    msd_label=A.mass_label("mass"))
    drawn = studies.plot_sliced_mass(h, "m", tmp_path / "s.png", signal="top", background=["qcd"],
                                     datasets={"w": ["top_test"], "top": ["top_test"], "qcd": ["qcd_test"]})
    assert drawn["xlabel"] == "Jet mass [GeV]"
    w_all = [t for t in drawn["legend"] if t.startswith("w (")]
    assert len(w_all) == 1 and "not a model class: hadronic W" in w_all[0] and "in dataset top_test" in w_all[0]
    assert any(t.startswith("w, score<") for t in drawn["legend"])
    assert any(t.startswith("top (signal), all") for t in drawn["legend"])
    assert any(t.startswith("qcd (background), all") for t in drawn["legend"])
    # the fractions drawn are normalised
    assert all(v.sum() == pytest.approx(1.0) for v in drawn["curves"].values())


def _image_output(channel_meta=None):
    """A processor-shaped output with one image key: njets, image sums, pixel-score moments."""
    rng = np.random.default_rng(8)
    cls = hist.axis.StrCategory(["qcd", "top"], name=A.CLASS)
    pix = [hist.axis.Integer(0, 2, name=A.CHANNEL, flow=False, metadata=channel_meta),
           hist.axis.Integer(0, 3, name=A.IY, flow=False), hist.axis.Integer(0, 3, name=A.IX, flow=False)]
    pt = hist.axis.Variable([200, 3000], name=A.PT)
    img = hist.Hist(cls, *pix, storage=hist.storage.Weight())
    xy = hist.Hist(cls, *pix, storage=hist.storage.Double())
    njets = hist.Hist(cls, pt, storage=hist.storage.Int64())
    mom = hist.Hist(cls, pt, storage=hist.storage.Weight())
    for c in ("qcd", "top"):
        x = rng.dirichlet(np.ones(9), size=(50, 2)).reshape(50, 2, 3, 3)  # sum-normalised per channel
        y = rng.uniform(size=50)
        iy, ix = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
        for ch in range(2):
            for j in range(50):
                img.fill(c, ch, iy.ravel(), ix.ravel(), weight=x[j, ch].ravel())
                xy.fill(c, ch, iy.ravel(), ix.ravel(), weight=(x[j, ch] * y[j]).ravel())
        njets.fill(c, np.full(50, 500.0))
        mom.fill(c, np.full(50, 500.0), weight=y)
    h = _score_hist(rng.uniform(size=50), rng.uniform(size=50))
    return {"ds": {"score": {"cnn": h}, "image": {"img0": img}, "pixel_xy": {"cnn": xy},
                   "score_moments": {"cnn": mom}, "njets": njets, "cutflow": {"events": 100}}}


def test_average_image_titles_use_channel_names_and_colour_bars_are_labelled(tmp_path):
    out = _image_output({"channels": ["charged", "neutral"], "intensity": "pt", "normalize": "sum"})
    merged = studies.merge_datasets(out)
    h = merged["image"]["img0"]
    assert studies.image_channel_names(h, "img0") == ["charged", "neutral"]
    label = studies.image_colorbar_label(h, "img0", "charged")
    assert "fraction" in label and "sums to 1" in label
    # from the model info's image spec when the axis has no metadata
    bare = studies.merge_datasets(_image_output())["image"]["img0"]
    info = {"cnn": {"image": "img0", "input_kind": "image",
                    "image_spec": {"channels": ["pt"] * 2, "intensity": "pt", "normalize": "sum_all"}}}
    assert studies.image_channel_names(bare, "img0", info) == ["pt", "pt"]
    assert "all channels sum to 1" in studies.image_colorbar_label(bare, "img0", "pt", info)
    assert studies.image_channel_names(bare, "img0") == ["channel 0", "channel 1"]
    summ = studies.run_studies(out, tmp_path, model_info={"cnn": {"image": "img0", "input_kind": "image"}})
    assert "plots/average_img0_top_ch1.png" in summ["plots"] and "plots/pearson_cnn_ch0.png" in summ["plots"]
    drawn = studies.plot_image(studies.average_images(h, merged["njets"])["top"][0], "t", tmp_path / "a.png",
                               log=True, colorbar_label=label)
    assert drawn["colorbar_label"] == label and drawn["data"].sum() == pytest.approx(1.0)


def test_pearson_map_is_the_metrics_one():
    assert studies.pearson_map is metrics.pearson_map and studies.jsd is metrics.jsd


def test_merge_datasets_union_of_classes_and_root_follows_axes(tmp_path):
    rng = np.random.default_rng(4)
    a = _score_hist(rng.uniform(size=100), rng.uniform(size=50))[{"class": ["qcd"]}]
    b = _score_hist(rng.uniform(size=70), rng.uniform(size=50))[{"class": ["top"]}]
    out = {"q": {"score": {"m": a}, "cutflow": {"events": 3}}, "t": {"score": {"m": b}, "cutflow": {"events": 4}}}
    m = studies.merge_datasets(out)
    assert list(m["score"]["m"].axes["class"]) == ["qcd", "top"]
    assert m["score"]["m"][{"class": "top"}].sum(flow=True) == 70 and m["cutflow"]["events"] == 7
    names = studies.write_root(m, tmp_path / "h.root")
    import uproot

    with uproot.open(tmp_path / "h.root") as f:
        assert f["m/top/score"].values().sum() == pytest.approx(70)
        assert f["m/top/abs_eta"].values().sum() == pytest.approx(70)  # every axis, none listed by hand
    assert {"m/qcd/msd_pass", "m/qcd/score_vs_npv", "m/qcd/score_vs_msd", "m/qcd/pt"} <= set(names)
    summ = studies.run_studies(out, tmp_path / "run", make_plots=False)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["models"]["m"]["auc"] == pytest.approx(summ["models"]["m"]["auc"])
    assert studies.classes_by_dataset({"q": {"njets": None}}) == {}


def test_confusion_matrix_of_weighted_predictions():
    """The processor's ``predicted`` histograms have Weight storage: the matrix is of the sums of
    weights, rows normalised (a negative-weight jet lowers its cell)."""
    from coffea_jetimg.studies.hists import confusion_matrix

    h = hist.Hist(hist.axis.StrCategory(["qcd", "top"], name=A.CLASS),
                  hist.axis.Integer(0, 2, name=A.PREDICTED, flow=False, metadata={"class_names": ["qcd", "top"]}),
                  storage=hist.storage.Weight())
    h.fill(["qcd", "qcd", "qcd", "top", "top"], [0, 0, 1, 1, 1], weight=[2.0, 1.0, 1.0, 1.5, -0.5])
    truth, pred, m = confusion_matrix(h)
    assert truth == ["qcd", "top"] and pred == ["qcd", "top"]
    np.testing.assert_allclose(m, [[0.75, 0.25], [0.0, 1.0]])
    _, _, raw = confusion_matrix(h, normalize=False)
    np.testing.assert_allclose(raw, [[3.0, 1.0], [0.0, 1.0]])
