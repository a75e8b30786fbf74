"""The holdout evaluation's rejection and bootstrap arithmetic (analysis/top_tagging_holdout.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

import top_tagging as T
import top_tagging_holdout as H


def test_rejection_counts_background_above_the_working_point_cut():
    sig = np.arange(1000) / 1000.0  # ε_S = 0.3 exactly at the cut 0.700 (signal 0.700 .. 0.999)
    bkg = np.linspace(0.0, 1.0, 201)  # 0.005 steps: 61 values at or above it (0.700 .. 1.000)
    s = np.concatenate([sig, bkg])
    y = np.concatenate([np.ones(len(sig), bool), np.zeros(len(bkg), bool)])
    r, n_pass = T.rejection(s, y, 0.3)
    assert n_pass == int((bkg >= 0.7 - 1e-12).sum()) == 61
    assert r == pytest.approx(201 / 61)
    r0, n0 = T.rejection(np.concatenate([sig, np.zeros(50)]), np.concatenate([y[:1000], np.zeros(50, bool)]), 0.3)
    assert n0 == 0 and r0 == float("inf")


def test_the_tables_use_the_librarys_metrics():
    """The analysis figures are those of coffea_jetimg.metrics (one computation of the ROC,
    the working point and the bootstrap), not a second copy."""
    from coffea_jetimg import metrics as M

    y, s = _toy(n_s=500, n_b=3000)
    res = H.metrics({"y": y, "bdt": s}, n_boot=30, seed=4)["bdt"]
    roc = M.roc_from_scores(s, y.astype(bool))
    assert res["auc"] == pytest.approx(M.auc(roc), abs=1e-12)
    for eff in (0.3, 0.5):
        wp = M.working_point(roc, eff)
        assert res[f"inv_eff_bkg_at_{eff:g}"] == pytest.approx(wp.rejection)
        boot = [M.working_point(M.roc_from_scores(s[i], y[i].astype(bool)), eff).rejection
                for i in M.bootstrap_resamples(y.astype(bool), 30, seed=4)]
        assert res[f"inv_eff_bkg_at_{eff:g}_68cl"] == pytest.approx(list(M.percentile_interval(boot, 0.68)))


def _toy(n_s=4000, n_b=40000, seed=3):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.ones(n_s, np.int8), np.zeros(n_b, np.int8)])
    s = np.concatenate([rng.normal(2.0, 1.0, n_s), rng.normal(0.0, 1.0, n_b)])
    return y, s


def test_ratio_of_a_model_to_itself_is_one_and_order_only_matters():
    y, s = _toy()
    scores = {"y": y, "bdt": s, "same": s.copy(), "monotone": 1 / (1 + np.exp(-3 * s))}
    res = H.metrics(scores, n_boot=40)
    for name in ("same", "monotone"):
        assert res[name]["inv_eff_bkg_at_0.3"] == pytest.approx(res["bdt"]["inv_eff_bkg_at_0.3"])
        assert res[name]["ratio_to_bdt_at_0.3"] == pytest.approx(1.0)
        assert res[name]["ratio_to_bdt_at_0.3_68cl"] == pytest.approx([1.0, 1.0])
        assert res[name]["auc"] == pytest.approx(res["bdt"]["auc"])
    lo, hi = res["bdt"]["inv_eff_bkg_at_0.3_68cl"]
    assert lo < res["bdt"]["inv_eff_bkg_at_0.3"] < hi  # a real interval around the value


def test_better_model_has_ratio_above_one_and_ensemble_of_one_model_is_that_model():
    y, s = _toy()
    rng = np.random.default_rng(9)
    noisy = s + rng.normal(0.0, 1.0, len(s))  # a worse tagger
    scores = {"y": y, "bdt": noisy, "good": s}
    H.add_ensembles(scores, ["twice=good+good"])
    res = H.metrics(scores, n_boot=40)
    assert res["good"]["ratio_to_bdt_at_0.3"] > 1.5
    assert res["good"]["ratio_to_bdt_at_0.3_68cl"][0] > 1.0
    np.testing.assert_array_equal(scores["twice"], s)
    with pytest.raises(SystemExit, match="missing"):
        H.add_ensembles(scores, ["e=good+missing"])


def test_compare_pairs_give_the_paired_ratio_and_unknown_names_are_refused():
    y, s = _toy()
    rng = np.random.default_rng(9)
    noisy = s + rng.normal(0.0, 1.0, len(s))
    res = H.metrics({"y": y, "bdt": noisy, "good": s}, n_boot=40, pairs=[("good", "bdt"), ("bdt", "good")])
    fwd, back = res["good"]["paired"]["bdt"]["0.3"], res["bdt"]["paired"]["good"]["0.3"]
    assert fwd[0] == pytest.approx(res["good"]["ratio_to_bdt_at_0.3"])  # the same as the ratio to the BDT
    assert fwd[1:] == pytest.approx(res["good"]["ratio_to_bdt_at_0.3_68cl"])
    assert back[0] == pytest.approx(1 / fwd[0]) and back[2] < 1.0  # the inverse, interval below 1
    with pytest.raises(KeyError, match="'nope'"):
        H.metrics({"y": y, "bdt": noisy}, n_boot=5, pairs=[("nope", "bdt")])


def test_repeated_models_are_dropped_once_named():
    y, s = _toy(n_s=50, n_b=200)
    scores = {"y": y, "a:bdt": s, "b:bdt": s.copy(), "b:cnn": s + 1e-3, "c:bdt": s.copy()}
    same = H.drop_repeats(scores, keep=["c:bdt"])
    assert same == {"b:bdt": "a:bdt"}
    assert list(scores) == ["y", "a:bdt", "b:cnn", "c:bdt"]


def test_no_ratio_when_no_background_jet_passes_the_bdt():
    # a perfect BDT: no QCD jet above its cut, so its rejection is unbounded and a ratio to it unknown
    y, s = _toy(n_s=500, n_b=2000)
    perfect = np.where(y == 1, 10.0 + s, -10.0 + s)
    res = H.metrics({"y": y, "bdt": perfect, "model": s}, n_boot=20)
    assert res["bdt"]["n_background_pass_at_0.3"] == 0
    assert not any(k.startswith("ratio_to_bdt") for k in res["model"])
    assert res["model"]["n_background_pass_at_0.3"] > 0


def test_paired_comparison_keeps_only_jets_the_smaller_run_never_saw():
    import top_tagging_paired as P

    from coffea_jetimg.train import split_indices

    n, m = 200, 80
    idx, te = P.clean_test_jets(n, m, seed=1)
    assert set(idx) <= set(te) and len(idx) < len(te)
    # the smaller run's arrays: top 0..m-1 then QCD 0..m-1; its train+val jets, as indices of the big arrays
    tr, va, _ = split_indices(2 * m, (0.7, 0.15, 0.15), seed=1)
    seen = {int(k) if k < m else int(k) - m + n for k in np.concatenate([tr, va])}
    assert not seen & set(idx.tolist())
    # a test jet beyond the first m of its class was never in the smaller sample: always kept
    new = [k for k in te if (m <= k < n) or k >= n + m]
    assert set(new) <= set(idx.tolist())


def test_scores_of_earlier_runs_join_only_on_the_same_jets(tmp_path):
    y, s = _toy(n_s=500, n_b=5000)
    old = tmp_path / "old.npz"
    np.savez_compressed(old, y=y, **{"a:deeptop": s, "a:bdt": s * 0.5})
    scores = {"y": y.copy(), "b:deeptop": s + 1.0, "a:bdt": s * 0.5}
    assert H.merge_scores(scores, [old]) == ["a:deeptop"]  # a:bdt is already here, the same
    assert np.array_equal(scores["a:deeptop"], s)
    res = H.metrics(scores, n_boot=20, reference="a:bdt", pairs=[("b:deeptop", "a:deeptop")])
    assert res["b:deeptop"]["inv_eff_bkg_at_0.3"] == pytest.approx(res["a:deeptop"]["inv_eff_bkg_at_0.3"])
    other = tmp_path / "other.npz"
    np.savez_compressed(other, y=y[::-1].copy(), **{"c:deeptop": s})
    with pytest.raises(SystemExit, match="other.npz.*labels differ"):
        H.merge_scores(scores, [other])
    clash = tmp_path / "clash.npz"
    np.savez_compressed(clash, y=y, **{"b:deeptop": s})
    with pytest.raises(SystemExit, match="clash.npz.*'b:deeptop' is already here"):
        H.merge_scores(scores, [clash])


def test_study_settings_come_from_the_config_file_and_flags_override_it(tmp_path):
    cfg = Path(__file__).resolve().parents[1] / "analysis" / "configs" / "top_tagging.toml"
    args, src = T.parse_settings(["--config", str(cfg), "--epochs", "6", "--no-reuse"])
    assert (args.jets_per_class, args.swa_start, args.deeptop_filters) == (100000, 4, 16)  # from the file
    assert args.deeptop_channels == ["charged", "neutral"] and args.models == ["bdt", "deeptop"]
    assert args.epochs == 6 and args.reuse is False and src["epochs"] == src["reuse"] == "flag"
    assert args.batch_size == 128 and src["batch_size"] == "default"
    configs = T.train_configs(args, model_seed=1)  # the study's TrainConfigs, checked by TrainConfig
    assert configs["deeptop"].image_overrides["normalize"] == "sum_all" and configs["deeptop"].max_seconds == 32 * 60
    assert configs["lola"].weight_decay == 1e-3 and configs["lola"].model_kwargs["hidden"] == [100, 50]
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nepoch = 3\n")
    with pytest.raises(SystemExit, match=r"bad\.toml: unknown setting\(s\) training\.epoch"):
        T.parse_settings(["--config", str(bad)])
    bad.write_text("[deeptop]\nnormalize = 'median'\n")
    with pytest.raises(SystemExit):
        T.parse_settings(["--config", str(bad)])
