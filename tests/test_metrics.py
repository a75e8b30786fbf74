"""coffea_jetimg.metrics: ROC from scores and counts, AUC, working points, intervals, JSD, ensembles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coffea_jetimg import metrics as M


def _scores(n=4000, seed=0, sep=1.0):
    rng = np.random.default_rng(seed)
    s = np.concatenate([rng.normal(sep, 1, n), rng.normal(0, 1, n)])
    y = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    return s, y


def test_roc_from_scores_equals_roc_from_a_fine_histogram():
    s, y = _scores()
    s = np.round(s, 3)  # ties, so a bin of width 1e-3 holds at most one distinct value
    edges = np.arange(-6.0005, 7.0, 0.001)
    hs, _ = np.histogram(s[y], edges)
    hb, _ = np.histogram(s[~y], edges)
    r_h = M.roc_from_counts(hs, hb, edges)
    r_s = M.roc_from_scores(s, y)
    assert M.auc(r_h) == pytest.approx(M.auc(r_s), abs=1e-12)
    for eff in (0.1, 0.3, 0.5, 0.77):
        assert M.rejection_at(r_h, eff) == pytest.approx(M.rejection_at(r_s, eff), rel=1e-12)
    # the same set of ROC points (the histogram adds repeats from empty bins)
    pts_h = set(zip(np.round(r_h.eff_s, 12), np.round(r_h.eff_b, 12)))
    pts_s = set(zip(np.round(r_s.eff_s, 12), np.round(r_s.eff_b, 12)))
    assert pts_h == pts_s
    # every threshold of the scores is an edge-threshold of the histogram with equal efficiencies
    assert r_s.eff_s[0] == 1 and r_s.eff_s[-1] == 0 and r_s.thresholds[-1] == np.inf


def test_auc_matches_sklearn_with_ties_and_weights():
    from sklearn.metrics import roc_auc_score

    s, y = _scores(2000, seed=1, sep=0.7)
    s = np.round(s, 1)
    w = np.random.default_rng(2).uniform(0.2, 3.0, s.size)
    assert M.auc(M.roc_from_scores(s, y)) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.auc(M.roc_from_scores(s, y, w)) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)


def test_auc_of_identical_distributions_is_half_and_perfect_is_one():
    same = np.array([5.0, 3, 0, 7, 1])
    assert M.auc(M.roc_from_counts(same, 2 * same)) == pytest.approx(0.5)
    assert M.auc(M.roc_from_counts([0, 0, 10], [10, 0, 0])) == pytest.approx(1.0)
    assert M.auc(M.roc_from_counts([10, 0, 0], [0, 0, 10])) == pytest.approx(0.0)
    assert math.isnan(M.auc(M.roc_from_counts([0, 0], [1, 2])))


def test_rejection_interpolation_hand_case():
    # 4 bins; signal 10/20/30/40, background 40/30/20/10 (totals 100)
    roc = M.roc_from_counts([10, 20, 30, 40], [40, 30, 20, 10], edges=[0, 0.25, 0.5, 0.75, 1.0])
    # thresholds 0, .25, .5, .75, 1: eff_s 1, .9, .7, .4, 0; eff_b 1, .6, .3, .1, 0
    np.testing.assert_allclose(roc.eff_s, [1, 0.9, 0.7, 0.4, 0])
    np.testing.assert_allclose(roc.eff_b, [1, 0.6, 0.3, 0.1, 0])
    wp = M.working_point(roc, 0.5)  # between (0.7, 0.3) and (0.4, 0.1): ε_B = 0.1 + (0.1/0.3)*0.2
    assert wp.eff_b == pytest.approx(0.1 + 0.2 / 3)
    assert wp.rejection == pytest.approx(1 / (0.1 + 0.2 / 3))
    assert (wp.index_low, wp.index_high) == (2, 3) and wp.weight == pytest.approx(2 / 3)
    assert wp.threshold == pytest.approx(0.5 + 0.25 * 2 / 3)
    assert wp.mix(roc.bkg_pass) == pytest.approx(wp.bkg_pass)
    assert M.rejection_at(roc, 0.7) == pytest.approx(1 / 0.3)  # on a point: no interpolation
    lo, hi = wp.interval
    assert lo < wp.rejection < hi
    # on a flat stretch of ε_S the lowest ε_B is taken (the empty signal bin adds background)
    flat = M.roc_from_counts([10, 0, 10], [10, 10, 0])  # eff_s 1, .5, .5, 0; eff_b 1, .5, 0, 0
    assert M.rejection_at(flat, 0.5) == math.inf
    wp0 = M.working_point(flat, 0.5)
    assert wp0.lower_limit == pytest.approx(20) and wp0.interval == (20, math.inf)


def test_weighted_binomial_errors_reduce_to_unweighted():
    roc = M.roc_from_counts([10, 20, 30, 40], [40, 30, 20, 10])
    e = roc.eff_s
    np.testing.assert_allclose(roc.err_s, np.sqrt(e * (1 - e) / 100))
    # weight 2 on every jet: same efficiencies, same relative errors; effective count unchanged
    w2 = M.roc_from_counts([20, 40, 60, 80], [80, 60, 40, 20], sig_variances=[40, 80, 120, 160],
                           bkg_variances=[160, 120, 80, 40])
    np.testing.assert_allclose(w2.err_s, roc.err_s)
    assert w2.n_b_effective == pytest.approx(100)


def test_poisson_interval_matches_garwood_and_scales_with_weights():
    from scipy.stats import chi2

    c = M.ONE_SIGMA
    lo, hi = M.poisson_interval([0.0, 4.0, 25.0])
    assert lo[0] == 0 and hi[0] == pytest.approx(chi2.ppf((1 + c) / 2, 2) / 2)
    assert lo[1] == pytest.approx(chi2.ppf((1 - c) / 2, 8) / 2)
    assert hi[1] == pytest.approx(chi2.ppf((1 + c) / 2, 10) / 2)
    assert lo[2] < 25 - 4 < 25 + 4 < hi[2] + 1  # roughly ±sqrt(25)
    wlo, whi = M.poisson_interval([8.0], [16.0])  # 4 jets of weight 2
    assert wlo[0] == pytest.approx(2 * lo[1]) and whi[0] == pytest.approx(2 * hi[1])


def test_bootstrap_interval_covers_the_true_rejection():
    # true ε_B at ε_S = 0.5 for N(1,1) vs N(0,1): cut at 1, ε_B = 1 - Φ(1)
    true_rej = 1 / (0.5 * math.erfc(1 / math.sqrt(2)))
    covered = 0
    for seed in range(12):
        s, y = _scores(1500, seed=100 + seed)
        res = M.bootstrap_resamples(y, n_boot=60, seed=seed)
        assert all(len(r) == len(y) and y[r].sum() == y.sum() for r in res)  # stratified
        samples, (lo, hi) = M.bootstrap(lambda i: M.rejection_at(M.roc_from_scores(s[i], y[i]), 0.5), res)
        assert lo < np.median(samples) < hi
        covered += lo <= true_rej <= hi
    assert covered >= 6  # nominal 68 %: 8 of 12 expected


def test_bootstrap_from_counts_matches_the_per_jet_bootstrap():
    """The histogram (Poisson) bootstrap of the AUC and of 1/ε_B(0.5) has the per-jet bootstrap's width."""
    s, y = _scores(2000, seed=7)
    edges = np.linspace(s.min() - 1e-9, s.max() + 1e-9, 41)
    hs, hb = np.histogram(s[y], edges)[0].astype(float), np.histogram(s[~y], edges)[0].astype(float)
    res = M.bootstrap_resamples(y, n_boot=300, seed=1)
    for stat_counts, stat_jets in (
            (lambda a, b: M.auc(M.roc_from_counts(a, b)),
             lambda i: M.auc(M.roc_from_counts(*(np.histogram(s[i][y[i] == v], edges)[0] for v in (1, 0))))),
            (lambda a, b: M.rejection_at(M.roc_from_counts(a, b), 0.5),
             lambda i: M.rejection_at(M.roc_from_counts(*(np.histogram(s[i][y[i] == v], edges)[0] for v in (1, 0))),
                                      0.5))):
        cs, (clo, chi) = M.bootstrap_counts(stat_counts, hs, hb, n_boot=300, seed=2)
        js, (jlo, jhi) = M.bootstrap(stat_jets, res)
        assert clo < stat_counts(hs, hb) < chi
        assert 0.75 < (chi - clo) / (jhi - jlo) < 1.33, (chi - clo, jhi - jlo)
    # weights: 4 jets of weight 2 per bin resample like 4 jets, scaled by 2
    samples, _ = M.bootstrap_counts(lambda a, b: a.sum(), [8.0], [1.0], [16.0], [1.0], n_boot=2000, seed=3)
    assert samples.mean() == pytest.approx(8.0, rel=0.05) and set(np.unique(samples) % 2) == {0.0}
    assert samples.std() == pytest.approx(4.0, rel=0.1)


def test_percentile_interval_with_infinities():
    assert M.percentile_interval(np.arange(101.0), coverage=0.5) == (25.0, 75.0)
    lo, hi = M.percentile_interval([1.0, 2.0, np.inf, np.inf])
    assert np.isfinite(lo) and hi == np.inf


def test_jsd_identical_zero_symmetric_bounded():
    p = np.array([1.0, 2, 3, 4])
    assert M.jsd(p, 3 * p) == 0
    q = np.array([4.0, 1, 0, 2])
    assert M.jsd(p, q) == pytest.approx(M.jsd(q, p))
    assert M.jsd([1, 0], [0, 1]) == pytest.approx(1.0)
    assert 0 < M.jsd([1, 1], [1, 2]) < 1
    assert math.isnan(M.jsd([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="differ in size"):
        M.jsd([1, 2], [1, 2, 3])


def test_pearson_map_from_chunked_moments():
    rng = np.random.default_rng(3)
    y = rng.uniform(size=500)
    x = np.zeros((500, 2, 2))
    x[:, 0, 0] = 3 * y + 1
    x[:, 1, 1] = -2 * y
    x[:, 0, 1] = rng.uniform(size=500)
    parts = [(len(y[c]), x[c].sum(0), (x[c] ** 2).sum(0), y[c].sum(), (y[c] ** 2).sum(),
              (x[c] * y[c, None, None]).sum(0)) for c in (slice(0, 200), slice(200, 500))]
    r = M.pearson_map(*[sum(m) for m in zip(*parts)])
    assert r[0, 0] == pytest.approx(1.0) and r[1, 1] == pytest.approx(-1.0)
    assert r[0, 1] == pytest.approx(np.corrcoef(x[:, 0, 1], y)[0, 1], abs=1e-9)
    assert np.isnan(r[1, 0])


def test_ensemble_mean():
    a = np.array([[0.2, 0.8], [0.6, 0.4]])
    b = np.array([[0.4, 0.6], [0.0, 1.0]])
    np.testing.assert_allclose(M.ensemble_mean([a, b]), [[0.3, 0.7], [0.3, 0.7]])
    with pytest.raises(ValueError, match="shape"):
        M.ensemble_mean([a, b[:1]])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="scores: contains 1 non-finite"):
        M.roc_from_scores([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="edges: expected 3"):
        M.roc_from_counts([1, 2], [1, 2], edges=[0, 1])
    with pytest.raises(ValueError, match="eff_s"):
        M.working_point(M.roc_from_counts([1], [1]), 1.5)


def test_bootstrap_resamples_draw_like_the_analysis_scripts():
    # analysis/top_tagging.py drew (signal, background) index pairs from one default_rng(seed)
    y = np.array([1, 0, 0, 1, 0, 1, 1, 0, 0], bool)
    rng = np.random.default_rng(3)
    i_s, i_b = np.flatnonzero(y), np.flatnonzero(~y)
    old = [np.concatenate([rng.choice(i_s, i_s.size), rng.choice(i_b, i_b.size)]) for _ in range(5)]
    new = M.bootstrap_resamples(y, n_boot=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(old, new))
    assert M.percentile_interval(np.arange(101.0), coverage=0.68) == pytest.approx((16.0, 84.0))
